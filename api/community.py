"""API of the community's ethnic-unity work (民族团结进步创建, issue 20). Rules live in
:mod:`gridsvc.community.services`; these views only parse and present.

- /api/v1/community/teams/            五员 / 一格十员 / 志愿者服务队 / 便民服务队 members
- /api/v1/community/teams/{id}/hours/ POST a day's service hours (志愿服务时长)
- /api/v1/community/activities/       活动与宣传
- /api/v1/community/screening/        五员一日一报 (POST = my report today; 零报告 included)
- /api/v1/community/screening/day/    the day's sum: expected, reported, missing, 人次
- /api/v1/community/campaigns/        排查 campaigns (a pending return per grid); {id}/coverage/
- /api/v1/community/campaign-returns/ a grid's returns; {id}/file/ findings or 零报告
- /api/v1/community/petitions/        信访 log (petitioner's name masked below the street);
                                      {id}/resolve/ closes it (办结), linking a case
- /api/v1/community/venue-visits/     religious-venue liaison visits
- /api/v1/community/pairings/         结对帮扶, 共建单位, 在职党员报到, 微心愿
- /api/v1/community/ratings/          评比 (POST again = revise: 动态管理)
- /api/v1/community/figures/          the month's 创建 figures (``?month=YYYY-MM``, ``?grid=``)

Everything is read through the staff part of the caller's scope: neighbours (楼长, 单元长,
物业, 业委会) list nothing and get 403 on the sums; writes are staff only. Ids in bodies are
resolved through that scope (a foreign id is 400 "not found").
"""

from __future__ import annotations

from datetime import date

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from gridsvc.chain.visibility import Tier, suppress_small, tier_for
from gridsvc.community import services
from gridsvc.community.models import (
    FIVE_ROLE_DUTIES,
    Activity,
    Campaign,
    CampaignReturn,
    Pairing,
    Petition,
    Rating,
    ScreeningReport,
    TeamMembership,
    VenueVisit,
)
from gridsvc.territory.codes import mask_name
from gridsvc.territory.models import Grid


def _id(source: str, help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        source=source, required=False, allow_null=True, help_text=help_text
    )


class LocatedSerializer(serializers.ModelSerializer):
    grid = _id("grid_id", "the grid (in the caller's territory); blank: the whole community")
    community = _id("community_id", "the community, for a community-wide record")
    street = serializers.IntegerField(source="street_id", read_only=True)
    recorded_by = serializers.IntegerField(source="recorded_by_id", read_only=True)
    client_uuid = serializers.UUIDField(
        required=False, allow_null=True, help_text="the phone's id: a retry is stored once"
    )

    LOCATED_FIELDS = [
        "id",
        "street",
        "community",
        "grid",
        "recorded_by",
        "created_at",
        "client_uuid",
    ]


def _service_data(validated: dict) -> dict:
    """Serializer ``x_id`` sources → the service's plain names."""
    return {(k[:-3] if k.endswith("_id") else k): v for k, v in validated.items()}


class TeamMembershipSerializer(LocatedSerializer):
    person = _id("member_id", "the member's account (holding a position in the territory)")
    duties = serializers.SerializerMethodField(help_text="the 五员 role's duties")

    def get_duties(self, obj: TeamMembership) -> str:
        return FIVE_ROLE_DUTIES.get(obj.role, "") if obj.team == "five_members" else ""

    class Meta:
        model = TeamMembership
        fields = [
            *LocatedSerializer.LOCATED_FIELDS,
            "team",
            "role",
            "person",
            "name",
            "duties",
            "valid_from",
            "valid_to",
            "hours",
        ]
        read_only_fields = ["created_at", "valid_to"]


class ActivitySerializer(LocatedSerializer):
    place = _id("place_id", "a place on the map (清真寺, 活动室 …)")

    class Meta:
        model = Activity
        fields = [
            *LocatedSerializer.LOCATED_FIELDS,
            "kind",
            "title",
            "date",
            "place",
            "point",
            "organiser",
            "partners",
            "participants",
            "ethnic_mix",
            "materials",
            "answer_sheets",
            "banners",
            "note",
        ]
        read_only_fields = ["created_at"]

    def to_representation(self, instance):  # type: ignore[no-untyped-def]
        """The ethnic mix is a sensitive count: below the street, 1–4 is shown as null ("<5")."""
        data = super().to_representation(instance)
        request = self.context.get("request")
        tier = tier_for(request.user) if request is not None else Tier.NONE
        data["ethnic_mix"] = {
            k: suppress_small(v, tier) for k, v in (instance.ethnic_mix or {}).items()
        }
        return data


class ScreeningReportSerializer(serializers.ModelSerializer):
    member = serializers.IntegerField(source="member_id", read_only=True)
    community = serializers.IntegerField(source="community_id", read_only=True)
    date = serializers.DateField(required=False, help_text="default today")

    class Meta:
        model = ScreeningReport
        fields = [
            "id",
            "member",
            "community",
            "date",
            "zero_report",
            "findings",
            "findings_count",
            "persons",
            "created_at",
        ]
        read_only_fields = ["created_at"]


class PetitionSerializer(LocatedSerializer):
    case = _id("case_id", "the case this petition became")
    handled_by = _id("handled_by_id", "who handles it (default: the recorder)")
    group_risk = serializers.BooleanField(read_only=True, help_text="集体访 (5 or more people)")

    class Meta:
        model = Petition
        fields = [
            *LocatedSerializer.LOCATED_FIELDS,
            "date",
            "petitioner",
            "subject",
            "ethnic_religious",
            "group_size",
            "group_risk",
            "handled_by",
            "case",
            "status",
        ]
        read_only_fields = ["created_at"]

    def to_representation(self, instance):  # type: ignore[no-untyped-def]
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or tier_for(request.user) < Tier.STREET:
            data["petitioner"] = mask_name(instance.petitioner)
        return data


class VenueVisitSerializer(LocatedSerializer):
    place = _id("place_id", "the religious venue (Place of kind mosque / religious_venue)")
    grid = serializers.IntegerField(source="grid_id", read_only=True, allow_null=True)
    community = serializers.IntegerField(source="community_id", read_only=True)

    class Meta:
        model = VenueVisit
        fields = [
            *LocatedSerializer.LOCATED_FIELDS,
            "place",
            "date",
            "joint",
            "participants",
            "hazard_found",
            "hazards",
            "note",
        ]
        read_only_fields = ["created_at"]


class PairingSerializer(LocatedSerializer):
    member = _id("member_id", "the paired member (cadre, party member)")
    household = _id("household_id", "the household helped")

    class Meta:
        model = Pairing
        fields = [
            *LocatedSerializer.LOCATED_FIELDS,
            "kind",
            "member",
            "partner",
            "household",
            "started",
            "ended",
            "help_given",
        ]
        read_only_fields = ["created_at"]


class RatingSerializer(LocatedSerializer):
    household = _id("household_id", "the household rated")
    grid = serializers.IntegerField(source="grid_id", read_only=True, allow_null=True)
    community = serializers.IntegerField(source="community_id", read_only=True)

    class Meta:
        model = Rating
        fields = [
            *LocatedSerializer.LOCATED_FIELDS,
            "household",
            "year",
            "title",
            "stars",
            "criteria",
            "revoked",
            "revised_at",
        ]
        read_only_fields = ["created_at", "revised_at"]


class _WorkViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """List/detail in the staff part of the caller's scope; POST through a service."""

    base_queryset = None  # set per subclass
    record = staticmethod(lambda member, data: None)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        model = self.base_queryset.model
        if getattr(self, "swagger_fake_view", False):
            return model.objects.none()
        return services.visible(model, self.request.user).order_by(*model._meta.ordering or ["id"])

    def create(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row, created = type(self).record(request.user, _service_data(serializer.validated_data))
        return Response(
            self.get_serializer(row).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ServiceHoursSerializer(serializers.Serializer):
    date = serializers.DateField(required=False, help_text="default today")
    hours = serializers.DecimalField(max_digits=5, decimal_places=1)
    note = serializers.CharField(required=False, allow_blank=True, max_length=200)


class TeamMembershipViewSet(_WorkViewSet):
    """五员 (several members per role), 一格十员, 志愿者服务队, 便民服务队; POST
    ``{id}/hours/`` logs a day's service hours (志愿服务时长)."""

    @extend_schema(request=ServiceHoursSerializer, responses={201: TeamMembershipSerializer})
    @action(detail=True, methods=["post"], url_path="hours")
    def hours(self, request, pk=None):  # type: ignore[no-untyped-def]
        membership = self.get_object()
        body = ServiceHoursSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        services.log_service(
            request.user,
            membership,
            day=data.get("date") or services.timezone.localdate(),
            hours=data["hours"],
            note=data.get("note", ""),
        )
        membership.refresh_from_db()
        return Response(self.get_serializer(membership).data, status=status.HTTP_201_CREATED)

    base_queryset = TeamMembership.objects.all()
    serializer_class = TeamMembershipSerializer
    filterset_fields = ["team", "role", "grid", "community"]
    record = staticmethod(
        lambda m, d: services.add_team_member(
            m, **{("person" if k == "member" else k): v for k, v in d.items()}
        )
    )


class ActivityViewSet(_WorkViewSet):
    """活动与宣传: 座谈会, 民族节日, 宣传资料, 公益日 …"""

    base_queryset = Activity.objects.all()
    serializer_class = ActivitySerializer
    filterset_fields = ["kind", "grid", "date"]
    record = staticmethod(services.record_activity)


class ScreeningReportViewSet(_WorkViewSet):
    """五员一日一报: POST my screening report (零报告: ``zero_report`` true, no findings);
    sending again the same day replaces it."""

    base_queryset = ScreeningReport.objects.all()
    serializer_class = ScreeningReportSerializer
    filterset_fields = ["date", "member", "zero_report"]

    @staticmethod
    def record(member, data):  # type: ignore[no-untyped-def]
        return services.file_screening(
            member,
            day=data.get("date"),
            zero_report=data.get("zero_report", True),
            findings=data.get("findings", ""),
            findings_count=data.get("findings_count", 0),
            persons=data.get("persons", 1),
        )


class CampaignSerializer(LocatedSerializer):
    class Meta:
        model = Campaign
        fields = [*LocatedSerializer.LOCATED_FIELDS, "kind", "name", "start", "end"]
        read_only_fields = ["created_at"]


class CampaignReturnSerializer(serializers.ModelSerializer):
    campaign = serializers.IntegerField(source="campaign_id", read_only=True)
    grid = serializers.IntegerField(source="grid_id", read_only=True, allow_null=True)
    filed_by = serializers.IntegerField(source="filed_by_id", read_only=True, allow_null=True)

    class Meta:
        model = CampaignReturn
        fields = [
            "id",
            "campaign",
            "grid",
            "filed_at",
            "filed_by",
            "zero_report",
            "findings",
            "findings_count",
        ]
        read_only_fields = ["filed_at"]


class CampaignViewSet(_WorkViewSet):
    """Screening campaigns (矛盾纠纷排查化解月, 排查不稳定因素) over a community or a grid;
    starting one creates a pending return per grid (``campaign-returns/``); GET
    ``{id}/coverage/``: returned / missing grids in your territory."""

    base_queryset = Campaign.objects.all()
    serializer_class = CampaignSerializer
    filterset_fields = ["kind"]
    record = staticmethod(services.start_campaign)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"], url_path="coverage")
    def coverage(self, request, pk=None):  # type: ignore[no-untyped-def]
        campaign = self.get_object()
        return Response(services.campaign_coverage(campaign, services.work_scope(request.user)))


class CampaignReturnViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """A grid's returns to campaigns (pending until filed); POST ``{id}/file/`` with findings
    or a 零报告 (``zero_report`` true)."""

    base_queryset = CampaignReturn.objects.all()
    serializer_class = CampaignReturnSerializer
    filterset_fields = ["campaign", "grid"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return CampaignReturn.objects.none()
        return services.visible(CampaignReturn, self.request.user).order_by(
            "campaign_id", "grid_id"
        )

    @extend_schema(request=CampaignReturnSerializer, responses={200: CampaignReturnSerializer})
    @action(detail=True, methods=["post"], url_path="file")
    def file(self, request, pk=None):  # type: ignore[no-untyped-def]
        ret = self.get_object()
        body = CampaignReturnSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        services.file_return(
            request.user,
            ret,
            zero_report=data.get("zero_report", True),
            findings=data.get("findings", ""),
            findings_count=data.get("findings_count", 0),
        )
        return Response(self.get_serializer(ret).data)


class ResolvePetitionSerializer(serializers.Serializer):
    case = serializers.IntegerField(
        required=False, allow_null=True, help_text="the case it became (in your territory)"
    )


class PetitionViewSet(_WorkViewSet):
    """信访: visitor/petition log, linked to a case when it becomes one; POST
    ``{id}/resolve/`` closes it (办结)."""

    base_queryset = Petition.objects.all()
    serializer_class = PetitionSerializer
    filterset_fields = ["status", "ethnic_religious", "grid", "date"]
    record = staticmethod(services.log_petition)

    @extend_schema(request=ResolvePetitionSerializer, responses={200: PetitionSerializer})
    @action(detail=True, methods=["post"], url_path="resolve")
    def resolve(self, request, pk=None):  # type: ignore[no-untyped-def]
        petition = self.get_object()
        body = ResolvePetitionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.resolve_petition(request.user, petition, case=body.validated_data.get("case"))
        return Response(self.get_serializer(petition).data)


class VenueVisitViewSet(_WorkViewSet):
    """Religious-venue liaison visits (每个月和清真寺共同走访), hazards found."""

    base_queryset = VenueVisit.objects.all()
    serializer_class = VenueVisitSerializer
    filterset_fields = ["place", "date", "hazard_found"]
    record = staticmethod(services.record_venue_visit)


class PairingViewSet(_WorkViewSet):
    """结对帮扶, 共建单位, 在职党员报到, 微心愿."""

    base_queryset = Pairing.objects.all()
    serializer_class = PairingSerializer
    filterset_fields = ["kind", "household", "grid"]
    record = staticmethod(services.record_pairing)


class RatingViewSet(_WorkViewSet):
    """评比 (五星级文明户 …); POST the same household, year and title again to revise."""

    base_queryset = Rating.objects.all()
    serializer_class = RatingSerializer
    filterset_fields = ["year", "title", "revoked", "grid"]
    record = staticmethod(services.rate_household)


def _staff_or_403(request):  # type: ignore[no-untyped-def]
    scope = services.work_scope(request.user)
    if scope.empty:
        raise PermissionDenied("community work is for grid, community and street staff")
    return scope


def _narrow_to_grid(request, scope):  # type: ignore[no-untyped-def]
    raw = request.query_params.get("grid")
    if raw in (None, ""):
        return scope
    from gridsvc.chain.scope import Scope

    try:
        grid = scope.filter(Grid.objects.all()).filter(pk=int(raw)).first()
    except ValueError:
        raise ValidationError({"grid": "a grid id"}) from None
    if grid is None:
        raise NotFound("no such grid in your territory")
    return Scope(grid_ids={grid.pk})


class ScreeningDayView(APIView):
    """The 五员 screening of one day (``?date=``, default today) in the caller's territory:
    how many are on the teams, how many reported (零报告 counts), who is missing, findings,
    and 人次 since the start of the year."""

    @extend_schema(
        parameters=[OpenApiParameter("date", OpenApiTypes.DATE)],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        scope = _staff_or_403(request)
        raw = request.query_params.get("date")
        try:
            day = date.fromisoformat(raw) if raw else services.timezone.localdate()
        except ValueError:
            raise ValidationError({"date": "must be a date YYYY-MM-DD"}) from None
        return Response(services.screening_day(scope, day))


class FiguresView(APIView):
    """The month's 创建 figures over the caller's territory (or ``?grid=`` in it), as the
    monthly work report reads them."""

    @extend_schema(
        parameters=[
            OpenApiParameter("month", OpenApiTypes.STR, description="YYYY-MM (default this month)"),
            OpenApiParameter("grid", OpenApiTypes.INT),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        scope = _narrow_to_grid(request, _staff_or_403(request))
        raw = request.query_params.get("month")
        try:
            first = date.fromisoformat(f"{raw}-01") if raw else services.timezone.localdate()
        except ValueError:
            raise ValidationError({"month": "must be YYYY-MM"}) from None
        figures = services.monthly_figures(scope, first.year, first.month)
        return Response({"month": f"{first.year:04d}-{first.month:02d}", **figures})


urlpatterns: list = [
    path("community/screening/day/", ScreeningDayView.as_view(), name="community-screening-day"),
    path("community/figures/", FiguresView.as_view(), name="community-figures"),
]
root_urlpatterns: list = []


def register(router) -> None:  # type: ignore[no-untyped-def]
    """Register this domain's viewsets on the /api/v1/ router."""
    router.register("community/teams", TeamMembershipViewSet, basename="community-team")
    router.register("community/activities", ActivityViewSet, basename="community-activity")
    router.register("community/screening", ScreeningReportViewSet, basename="community-screening")
    router.register("community/campaigns", CampaignViewSet, basename="community-campaign")
    router.register(
        "community/campaign-returns", CampaignReturnViewSet, basename="community-campaign-return"
    )
    router.register("community/petitions", PetitionViewSet, basename="community-petition")
    router.register("community/venue-visits", VenueVisitViewSet, basename="community-venue-visit")
    router.register("community/pairings", PairingViewSet, basename="community-pairing")
    router.register("community/ratings", RatingViewSet, basename="community-rating")
