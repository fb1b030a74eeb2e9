"""API of the community's ethnic-unity work (民族团结进步创建, issue 20). Rules live in
:mod:`gridsvc.community.services`; these views only parse and present.

- /api/v1/community/teams/            五员 / 一格十员 / 志愿者服务队 / 便民服务队 members
- /api/v1/community/teams/{id}/hours/ POST a day's service hours (志愿服务时长)
- /api/v1/community/teams/{id}/leave/ POST 请假 / 销假 (routing passes a 调处员 on leave over)
- /api/v1/community/service-logs/     the day-by-day 志愿服务时长 (?membership=&from=&to=)
- /api/v1/community/activities/       活动与宣传; {id}/photos/ POST a photo (multipart),
                                      {id}/photos/{photo}/file/ the file (scoped)
- /api/v1/community/screening/        五员一日一报 (POST = my report today; 零报告 included)
- /api/v1/community/screening/day/    the day's sum: expected, reported, missing, 人次
- /api/v1/community/campaigns/        排查 campaigns (a pending return per grid); {id}/coverage/
- /api/v1/community/campaign-returns/ a grid's returns; {id}/file/ findings or 零报告
- /api/v1/community/petitions/        信访 log (petitioner's name masked below the street);
                                      {id}/resolve/ closes it (办结), linking a case
- /api/v1/community/venue-visits/     religious-venue liaison visits
- /api/v1/community/venue-contacts/   a venue's contact people (phone masked below staff)
- /api/v1/community/venue-tasks/      the monthly joint venue visits due (a venue visit rule)
- /api/v1/community/pairings/         结对帮扶, 共建单位, 在职党员报到, 微心愿;
                                      {id}/help/ the help given (GET, POST)
- /api/v1/community/ratings/          评比 (POST again = revise: 动态管理)
- /api/v1/community/figures/          the month's 创建 figures (``?month=YYYY-MM``, ``?grid=``)
- /api/v1/community/sign-offs/        the ethnic-affairs desk's sign-off on ethnic cases
- /api/v1/community/mediations/       调处员 mediation sessions of dispute cases
- /api/v1/community/group-members/    residents in the group ledgers (离退休老领导 …)
- /api/v1/community/languages/        residents' languages, need of an interpreter;
                                      interpreters/?household= whom to send along
- /api/v1/community/member-languages/ languages members speak (preferred on assignment)
- /api/v1/community/interpreter-calls/ interpreters attached to cases and visit tasks
- /api/v1/community/changes/          the phone's feed of activities, screening, venue visits,
                                      venue tasks, group members, languages …
- /api/v1/community/batch/            the phone's offline batch of those (Idempotency-Key)
- /api/v1/community/ledgers/{id}/     the community's 台账 (xlsx, audited)
- /api/v1/community/reports/          the street's plan / monthly / summary to the district;
                                      {id}/acknowledge/ the district's 签收
- /api/v1/community/district/         the district's streets side by side
- /api/v1/community/district-officers/ the 创建 office's members of the districts read in full

Everything is read through the staff part of the caller's scope: neighbours (楼长, 单元长,
物业, 业委会) list nothing and get 403 on the sums; writes are staff only. Ids in bodies are
resolved through that scope (a foreign id is 400 "not found").
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import date
from typing import Any

from django.urls import path
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from gridsvc.assistance.services import shown_amount
from gridsvc.audit.services import record_unmasked_reads
from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.visibility import MASK, Tier, suppress_small, tier_for
from gridsvc.community import services
from gridsvc.community.models import (
    FIVE_ROLE_DUTIES,
    Activity,
    ActivityPhoto,
    Campaign,
    CampaignReturn,
    GroupMember,
    InterpreterCall,
    Language,
    Mediation,
    MemberLanguage,
    Pairing,
    PairingHelp,
    Petition,
    Rating,
    ResidentLanguage,
    ScreeningReport,
    ServiceLog,
    SignOff,
    TeamMembership,
    UnityReport,
    VenueContact,
    VenueTask,
    VenueVisit,
    VenueVisitPhoto,
)
from gridsvc.community.photos import (
    add_activity_photo,
    add_venue_visit_photo,
    readable_activity,
    readable_venue_visit,
)
from gridsvc.community.rules import shown_petition
from gridsvc.community.venues import present_venue_contact
from gridsvc.reports.services import YEAR_MAX, YEAR_MIN, parse_year
from gridsvc.territory.models import Grid
from gridsvc.territory.textmask import amounts_in_text

from . import batch
from .assistance import amounts_clear
from .attachments import AnyAccept, serve
from .privacy import unmask_grant
from .visits.serializers import CrsField, NumberField, PhotosField, from_1970


def _id(source: str, help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        source=source, required=False, allow_null=True, help_text=help_text
    )


# ---------------------------------------------------------------- response shapes (schema)
# The endpoints below answer plain dicts built in gridsvc.community.services; these
# serializers only describe them for the OpenAPI schema (tests/test_community_report_rows.py
# checks each declared shape against a real answer, key for key).
class ScreeningMissingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()


class ScreeningDaySerializer(serializers.Serializer):
    """``screening/day/``: the 五员 一日一报 of one day in the caller's territory."""

    date = serializers.DateField()
    summary = serializers.CharField(help_text="the street's sentence (截至…共投入X余人次…)")
    expected = serializers.IntegerField(help_text="五员 on the teams that day")
    reported = serializers.IntegerField(help_text="of them, reported (零报告 counts)")
    zero_reports = serializers.IntegerField()
    findings = serializers.IntegerField()
    missing = ScreeningMissingSerializer(many=True)
    persons_this_year = serializers.IntegerField(help_text="人次 since 1 January")
    findings_this_year = serializers.IntegerField()


class UnityFiguresSerializer(serializers.Serializer):
    """创建 figures over a territory and period (``services.figures``), as the work report's
    ``unity`` section carries them."""

    activities = serializers.IntegerField()
    activity_participants = serializers.IntegerField()
    materials = serializers.IntegerField(help_text="宣传资料份数")
    screening_reports = serializers.IntegerField()
    zero_reports = serializers.IntegerField()
    screening_findings = serializers.IntegerField()
    screening_persons = serializers.IntegerField()
    petitions = serializers.IntegerField()
    petitions_ethnic_religious = serializers.IntegerField()
    group_petitions = serializers.IntegerField()
    venue_visits = serializers.IntegerField()
    venue_hazards = serializers.IntegerField()
    venue_tasks_due = serializers.IntegerField(
        help_text="宗教场所联合走访 due: the venue tasks of the periods starting in the period"
    )
    venue_tasks_done = serializers.IntegerField()
    venue_tasks_late = serializers.IntegerField(help_text="逾期 or 漏访 (overdue or missed)")
    pairings_active = serializers.IntegerField()
    pairing_help = serializers.IntegerField(help_text="结对帮扶 help records dated in the period")
    pairing_help_amount = serializers.FloatField(
        allow_null=True,
        help_text="元, money or goods' value; null below the street tier when it went to 1–4"
        " households (it would tell what each was given)",
    )
    volunteer_hours = serializers.FloatField()
    five_star_households = serializers.IntegerField(help_text="rated in the year, not revoked")
    screening_persons_year = serializers.IntegerField()
    screening_summary = serializers.CharField()
    mediations = serializers.IntegerField()
    mediations_agreed = serializers.IntegerField()
    ethnic_sign_offs = serializers.IntegerField()
    campaign_returns = serializers.IntegerField(help_text="returns due of the running campaigns")
    campaign_returns_filed = serializers.IntegerField()
    interpreter_calls = serializers.IntegerField(help_text="请翻译随行 on cases and visit tasks")
    group_members = serializers.IntegerField(
        help_text="群体台账人员: residents in the four group ledgers at the period's end"
    )
    group_members_retired_leader = serializers.IntegerField(help_text="离退休老领导")
    group_members_self_employed = serializers.IntegerField(help_text="个体户/企业家")
    group_members_returned_overseas = serializers.IntegerField(help_text="归国华侨/留学生")
    group_members_new_stratum = serializers.IntegerField(help_text="新的社会阶层")
    interpreter_needed = serializers.IntegerField(
        help_text="residents needing an interpreter (需翻译) at the period's end"
    )
    disputes_to_mediator = serializers.IntegerField(
        help_text="disputes whose routing or escalation in the period reached the 五员 调处员"
    )
    member_languages = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="language name → 五员/一格十员 members speaking it besides 汉语 (period's end)",
    )
    members_interpreting = serializers.IntegerField(
        help_text="五员/一格十员 members speaking a language besides 汉语 (can interpret)"
    )


class UnityMonthFiguresSerializer(UnityFiguresSerializer):
    """``figures/``: the month's 创建 figures."""

    month = serializers.CharField(help_text="YYYY-MM")


#: where a street's 创建 report stands (one enum in the schema: settings ENUM_NAME_OVERRIDES)
REPORT_STATES = ["missing", "submitted", "acknowledged"]


class DistrictStreetSerializer(serializers.Serializer):
    street = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    figures = UnityFiguresSerializer()
    plan = serializers.ChoiceField(choices=REPORT_STATES)
    summary = serializers.ChoiceField(choices=REPORT_STATES)
    monthly = serializers.ChoiceField(
        choices=REPORT_STATES, allow_null=True, help_text="null when the year is asked"
    )


class DistrictOverviewSerializer(serializers.Serializer):
    """``district/``: the district's streets side by side."""

    district = serializers.CharField()
    district_name = serializers.CharField()
    year = serializers.IntegerField()
    month = serializers.IntegerField(allow_null=True)
    streets = DistrictStreetSerializer(many=True)


class InterpreterNeedSerializer(serializers.Serializer):
    resident = serializers.IntegerField()
    languages = serializers.ListField(child=serializers.CharField(), help_text="names")


class InterpreterOfferSerializer(serializers.Serializer):
    membership = serializers.IntegerField()
    language = serializers.CharField()
    language_name = serializers.CharField()
    member = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()


class HouseholdInterpretersSerializer(serializers.Serializer):
    """``languages/interpreters/?household=``: who to send along to a household."""

    household = serializers.IntegerField()
    residents = InterpreterNeedSerializer(many=True)
    interpreters = InterpreterOfferSerializer(many=True)
    missing_languages = serializers.ListField(child=serializers.CharField())


class CampaignCoverageSerializer(serializers.Serializer):
    """``campaigns/{id}/coverage/``: the grids' returns of a campaign."""

    campaign = serializers.IntegerField()
    grids = serializers.IntegerField()
    returned = serializers.IntegerField(help_text="filed (零报告 counts)")
    zero_reports = serializers.IntegerField()
    findings = serializers.IntegerField()
    coverage = serializers.FloatField(allow_null=True, help_text="returned / grids; null: none")
    missing = serializers.ListField(child=serializers.CharField(), help_text="grid codes")


class PointGeometrySerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["Point"])
    coordinates = serializers.ListField(
        child=serializers.FloatField(), min_length=2, max_length=2, help_text="[lon, lat] WGS84"
    )


class ActivityFeaturePropertiesSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    kind_name = serializers.CharField()
    title = serializers.CharField()
    date = serializers.DateField()
    participants = serializers.IntegerField()
    materials = serializers.IntegerField()
    grid = serializers.IntegerField(allow_null=True)
    community = serializers.IntegerField()
    located_by = serializers.ChoiceField(choices=["point", "grid", "community"])


class ActivityFeatureSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["Feature"])
    geometry = PointGeometrySerializer()
    properties = ActivityFeaturePropertiesSerializer()


class ActivityGridCountSerializer(serializers.Serializer):
    grid = serializers.IntegerField()
    activities = serializers.IntegerField()
    participants = serializers.IntegerField()


class ActivityFeatureCollectionSerializer(serializers.Serializer):
    """``activities/map/``: a GeoJSON FeatureCollection of the activities, with ``by_grid``."""

    type = serializers.ChoiceField(choices=["FeatureCollection"])
    features = ActivityFeatureSerializer(many=True)
    by_grid = ActivityGridCountSerializer(many=True)


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
        "updated_at",
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
            "on_leave",
        ]
        read_only_fields = ["created_at", "valid_to", "on_leave"]


class _StoredPhotoSerializer(serializers.ModelSerializer):
    """A photo kept by :mod:`gridsvc.community.photos` (an activity's, a venue visit's);
    ``url`` is its scoped download (never ``/media/``): ``file_route`` named by ``owner`` (the
    owner's id attribute, also the route's keyword)."""

    file_route = ""
    owner = ""
    url = serializers.SerializerMethodField(
        help_text="the file, for callers who may read what it belongs to"
    )

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, obj: ActivityPhoto | VenueVisitPhoto) -> str:
        from django.urls import reverse

        url = reverse(self.file_route, kwargs={self.owner: getattr(obj, self.owner), "pk": obj.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url


PHOTO_FIELDS = ["id", "url", "content_type", "size", "sha256", "exif_time", "created_at"]


class ActivityPhotoSerializer(_StoredPhotoSerializer):
    """A photo of an activity."""

    file_route, owner = "community-activity-photo-file", "activity_id"

    class Meta:
        model = ActivityPhoto
        fields = PHOTO_FIELDS
        read_only_fields = PHOTO_FIELDS


class ActivitySerializer(LocatedSerializer):
    place = _id("place_id", "a place on the map (清真寺, 活动室 …)")
    photos = ActivityPhotoSerializer(
        many=True, read_only=True, help_text="add one: POST activities/{id}/photos/ (multipart)"
    )

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
            "photos",
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
    client_uuid = serializers.UUIDField(
        required=False, allow_null=True, help_text="the phone's id: a retry is stored once"
    )

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
            "client_uuid",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]


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
        """The petitioner's name masked below the street, in the subject too; phones and ID
        numbers in the subject masked (:func:`gridsvc.community.rules.shown_petition`)."""
        data = super().to_representation(instance)
        request = self.context.get("request")
        tier = tier_for(request.user) if request is not None else Tier.NONE
        data["petitioner"], data["subject"] = shown_petition(
            instance.petitioner, instance.subject, tier
        )
        return data


class VenueVisitPhotoSerializer(_StoredPhotoSerializer):
    """A photo of a venue visit."""

    file_route, owner = "community-venue-visit-photo-file", "visit_id"

    class Meta:
        model = VenueVisitPhoto
        fields = PHOTO_FIELDS
        read_only_fields = PHOTO_FIELDS


class _FixAxis(NumberField):
    """``lon`` or ``lat`` of a venue visit's fix: sent in ``crs``, answered from the stored
    point (WGS84; null without a fix)."""

    def __init__(self, axis: str, **kwargs: object) -> None:
        self.axis = axis
        super().__init__(required=False, allow_null=True, **kwargs)  # type: ignore[arg-type]

    def get_attribute(self, instance: VenueVisit) -> float | None:
        point = instance.location
        return None if point is None else (point.x if self.axis == "x" else point.y)


class VenueVisitSerializer(LocatedSerializer):
    """A venue visit; sent with the phone's fix (``lon``/``lat`` in ``crs``, ``accuracy_m``)
    and ``photos`` (``[{data: base64}]``, JPEG/PNG ≤ 5 MB each, ≤ 10) as a household visit is
    sent; answered with the fix as judged (``lon``/``lat`` WGS84, ``distance_m`` from the
    venue, ``far_off``) and the photos kept (``photos``: id, url, type, size, sha256)."""

    place = _id("place_id", "the religious venue (Place of kind mosque / religious_venue)")
    grid = serializers.IntegerField(source="grid_id", read_only=True, allow_null=True)
    community = serializers.IntegerField(source="community_id", read_only=True)
    lon = _FixAxis("x", min_value=-180, max_value=180, help_text="the GPS fix (answered in WGS84)")
    lat = _FixAxis("y", min_value=-90, max_value=90)
    crs = CrsField(
        required=False, default="wgs84", write_only=True, help_text="of lon/lat (default wgs84)"
    )
    accuracy_m = NumberField(required=False, allow_null=True, min_value=0, max_value=100_000)
    photos = PhotosField(
        write_only=True,
        help_text="sent: [{data: base64}] (≤ 10); answered: the photos kept"
        " (id, url, content_type, size, sha256)",
    )

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
            "lon",
            "lat",
            "crs",
            "accuracy_m",
            "accuracy_grade",
            "location_source",
            "distance_m",
            "far_off",
            "photos",
        ]
        read_only_fields = [
            "created_at",
            "accuracy_grade",
            "location_source",
            "distance_m",
            "far_off",
        ]

    def validate(self, attrs: dict) -> dict:
        """Both ``lon`` and ``lat`` or neither (the visits' rule), turned into WGS84."""
        from gridsvc.visits.ingest import ItemError, convert_to_wgs84

        lon, lat = attrs.get("lon"), attrs.get("lat")
        if (lat is None) != (lon is None):
            raise ValidationError(
                {"lat" if lat is None else "lon": "give both lat and lon, or neither"}
            )
        crs = attrs.pop("crs", "wgs84") or "wgs84"
        if lon is not None:
            try:
                attrs["lon"], attrs["lat"] = convert_to_wgs84(lon, lat, crs)
            except ItemError as exc:
                raise ValidationError(exc.errors) from None
        return attrs

    def to_representation(self, instance: VenueVisit) -> dict:
        data = super().to_representation(instance)
        data["photos"] = VenueVisitPhotoSerializer(
            instance.photos.all(), many=True, context=self.context
        ).data
        return data


class PairingSerializer(LocatedSerializer):
    member = _id("member_id", "the paired member (cadre, party member)")
    member_name = serializers.SerializerMethodField(help_text="the paired member's name")
    household = _id("household_id", "the household helped")
    help_count = serializers.SerializerMethodField(help_text="help records (帮扶记录) so far")
    last_help_on = serializers.SerializerMethodField(help_text="the last help record's day")

    def get_member_name(self, obj: Pairing) -> str | None:
        m = obj.member
        return (m.display_name or m.username) if m is not None else None

    def get_help_count(self, obj: Pairing) -> int:
        # annotated by services.with_help_summary; a pairing just made has none
        return int(getattr(obj, "help_count", 0) or 0)

    def get_last_help_on(self, obj: Pairing) -> date | None:
        return getattr(obj, "last_help_on", None)

    class Meta:
        model = Pairing
        fields = [
            *LocatedSerializer.LOCATED_FIELDS,
            "kind",
            "member",
            "member_name",
            "partner",
            "household",
            "started",
            "ended",
            "help_given",
            "help_count",
            "last_help_on",
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


_PHOTO_UPLOAD = {
    "multipart/form-data": {
        "type": "object",
        "properties": {"photo": {"type": "string", "format": "binary"}},
        "required": ["photo"],
    }
}


class _PhotosMixin:
    """Records carrying photos kept by :mod:`gridsvc.community.photos` (activities, venue
    visits), one definition for each: listed with their photos, ``POST {id}/photos/`` adds one
    (multipart ``photo``: 201; the same bytes again, a phone's retry, are the stored photo: 200),
    and a :class:`_StoredPhotoFileView` serves one's file. Driven by ``photo_serializer`` (its
    ``Meta.model`` the photo model, its ``file_route`` the file's route name and ``owner`` that
    route's keyword), ``add_photo`` (the store function), ``readable`` (the record if the caller
    may read it, else None), ``file_prefix`` (the served file's name) and ``upload_doc`` (the
    POST's description)."""

    photo_serializer: type[_StoredPhotoSerializer]
    add_photo: Callable[[Any, Any, bytes], tuple[Any, bool]]
    readable: Callable[[Any, Any], Any]
    file_prefix: str
    upload_doc: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        extend_schema_view(
            photos=extend_schema(
                request=_PHOTO_UPLOAD,
                responses={201: cls.photo_serializer, 200: cls.photo_serializer},
                description=inspect.cleandoc(cls.upload_doc),
            )
        )(cls)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return super().get_queryset().prefetch_related("photos")  # type: ignore[misc]

    @action(detail=True, methods=["post"], url_path="photos")
    def photos(self, request, pk=None):  # type: ignore[no-untyped-def]
        record = self.get_object()  # type: ignore[attr-defined]
        upload = request.FILES.get("photo")
        if upload is None:
            raise ValidationError({"photo": "a file is required (multipart, field photo)"})
        photo, created = type(self).add_photo(request.user, record, upload.read())
        return Response(
            self.photo_serializer(photo, context={"request": request}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ServiceHoursSerializer(serializers.Serializer):
    date = serializers.DateField(required=False, help_text="default today")
    hours = serializers.DecimalField(max_digits=5, decimal_places=1)
    note = serializers.CharField(required=False, allow_blank=True, max_length=200)
    client_uuid = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="made on the phone when recorded: a retry adds no hours (200, not 201)",
    )


class LeaveSerializer(serializers.Serializer):
    on_leave = serializers.BooleanField(help_text="true: 请假; false: back at work (销假)")


class TeamMembershipViewSet(_WorkViewSet):
    """五员 (several members per role), 一格十员, 志愿者服务队, 便民服务队; POST
    ``{id}/hours/`` logs a day's service hours (志愿服务时长)."""

    @extend_schema(
        request=ServiceHoursSerializer,
        responses={201: TeamMembershipSerializer, 200: TeamMembershipSerializer},
    )
    @action(detail=True, methods=["post"], url_path="hours")
    def hours(self, request, pk=None):  # type: ignore[no-untyped-def]
        membership = self.get_object()
        body = ServiceHoursSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        _, created = services.log_service_once(
            request.user,
            membership,
            day=data.get("date") or services.timezone.localdate(),
            hours=data["hours"],
            note=data.get("note", ""),
            client_uuid=data.get("client_uuid"),
        )
        membership.refresh_from_db()
        return Response(
            self.get_serializer(membership).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=LeaveSerializer, responses={200: TeamMembershipSerializer})
    @action(detail=True, methods=["post"], url_path="leave")
    def leave(self, request, pk=None):  # type: ignore[no-untyped-def]
        """请假 / 销假: ``{"on_leave": true|false}``; routing passes a 调处员 on leave over."""
        membership = self.get_object()
        body = LeaveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.set_on_leave(request.user, membership, body.validated_data["on_leave"])
        return Response(self.get_serializer(membership).data)

    base_queryset = TeamMembership.objects.all()
    serializer_class = TeamMembershipSerializer
    filterset_fields = ["team", "role", "grid", "community"]
    record = staticmethod(
        lambda m, d: services.add_team_member(
            m, **{("person" if k == "member" else k): v for k, v in d.items()}
        )
    )


class ActivityViewSet(_PhotosMixin, _WorkViewSet):
    """活动与宣传: 座谈会, 民族节日, 宣传资料, 公益日 …; GET ``map/?from=&to=`` the map layer."""

    base_queryset = Activity.objects.all()
    serializer_class = ActivitySerializer
    filterset_fields = ["kind", "grid", "date"]
    record = staticmethod(services.record_activity)
    photo_serializer = ActivityPhotoSerializer
    add_photo = staticmethod(add_activity_photo)
    readable = staticmethod(readable_activity)
    file_prefix = "activity"
    upload_doc = """Attach a photo (JPEG/PNG ≤ 5 MB, checked by content) to an activity you may read:
        201; the same photo again (a phone's retry) is the stored one: 200. A phone recording
        offline uploads its photos after the batch returned the activity's ``id``."""

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, description="default: 1 January"),
            OpenApiParameter("to", OpenApiTypes.DATE, description="inclusive; default: today"),
        ],
        responses={200: ActivityFeatureCollectionSerializer},
    )
    @action(detail=False, methods=["get"], url_path="map")
    def map(self, request):  # type: ignore[no-untyped-def]
        """Activities as GeoJSON points (WGS84) with ``by_grid`` counts for the heat layer."""
        from datetime import timedelta

        _staff_or_403(request)
        today = services.timezone.localdate()
        try:
            start = date.fromisoformat(request.query_params.get("from") or f"{today.year}-01-01")
            last = date.fromisoformat(request.query_params.get("to") or today.isoformat())
        except ValueError:
            raise ValidationError({"from": "dates YYYY-MM-DD"}) from None
        return Response(services.activity_map(request.user, start, last + timedelta(days=1)))


class ServiceLogSerializer(serializers.ModelSerializer):
    """One day's 志愿服务时长 of a team membership (``teams/{id}/hours/`` adds one)."""

    street = serializers.IntegerField(source="street_id", read_only=True)
    community = serializers.IntegerField(source="community_id", read_only=True)
    grid = serializers.IntegerField(source="grid_id", read_only=True, allow_null=True)
    membership = serializers.IntegerField(source="membership_id", read_only=True)
    recorded_by = serializers.IntegerField(source="recorded_by_id", read_only=True)

    class Meta:
        model = ServiceLog
        fields = [
            "id", "street", "community", "grid", "membership", "date", "hours", "note",
            "recorded_by", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


def _query_date(request, name: str) -> date | None:  # type: ignore[no-untyped-def]
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationError({name: "a date YYYY-MM-DD"}) from None


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("membership", OpenApiTypes.INT, description="one team membership"),
            OpenApiParameter("from", OpenApiTypes.DATE, description="first day (inclusive)"),
            OpenApiParameter("to", OpenApiTypes.DATE, description="last day (inclusive)"),
        ]
    )
)
class ServiceLogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """志愿服务时长 day by day, read like the teams (the staff part of your territory;
    neighbours list nothing), newest first; ``?membership=&from=&to=`` narrow it."""

    base_queryset = ServiceLog.objects.all()
    serializer_class = ServiceLogSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return ServiceLog.objects.none()
        raw = self.request.query_params.get("membership")
        try:
            membership = int(raw) if raw not in (None, "") else None
        except ValueError:
            raise ValidationError({"membership": "a team membership id"}) from None
        return services.service_logs(
            self.request.user,
            membership=membership,
            start=_query_date(self.request, "from"),
            last=_query_date(self.request, "to"),
        )


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
            client_uuid=data.get("client_uuid"),
        )


class CampaignSerializer(LocatedSerializer):
    class Meta:
        model = Campaign
        fields = [*LocatedSerializer.LOCATED_FIELDS, "kind", "name", "start", "end"]
        read_only_fields = ["created_at"]


class CampaignReturnSerializer(serializers.ModelSerializer):
    campaign = serializers.IntegerField(source="campaign_id", read_only=True)
    # the campaign's name and period on the return itself: a grid member may not list a
    # community-wide campaign (campaigns/), yet the phone names the return and hides it once
    # the campaign has ended
    campaign_name = serializers.CharField(
        source="campaign.name", read_only=True, help_text="the campaign's name (排查活动名称)"
    )
    campaign_start = serializers.DateField(
        source="campaign.start", read_only=True, help_text="the campaign's first day"
    )
    campaign_end = serializers.DateField(
        source="campaign.end",
        read_only=True,
        help_text="the campaign's last day: after it the return is no longer to file",
    )
    grid = serializers.IntegerField(source="grid_id", read_only=True, allow_null=True)
    filed_by = serializers.IntegerField(source="filed_by_id", read_only=True, allow_null=True)
    client_uuid = serializers.UUIDField(
        required=False,
        allow_null=True,
        write_only=True,
        help_text="made on the phone when recorded: a retry of any filing applied to the return"
        " changes nothing (duplicate)",
    )
    client_time = serializers.DateTimeField(
        required=False,
        allow_null=True,
        validators=[from_1970],
        help_text="when the filing in force was recorded on the phone (corrected by"
        " X-Device-Time); a filing recorded earlier is refused (409 naming client_time)",
    )

    class Meta:
        model = CampaignReturn
        fields = [
            "id",
            "campaign",
            "campaign_name",
            "campaign_start",
            "campaign_end",
            "grid",
            "filed_at",
            "filed_by",
            "zero_report",
            "findings",
            "findings_count",
            "client_uuid",
            "client_time",
        ]
        read_only_fields = ["filed_at"]


class FiledReturnSerializer(CampaignReturnSerializer):
    """The answer to ``campaign-returns/{id}/file/``."""

    duplicate = serializers.BooleanField(
        read_only=True, help_text="true: that client_uuid was applied before; nothing changed"
    )

    class Meta(CampaignReturnSerializer.Meta):
        fields = [*CampaignReturnSerializer.Meta.fields, "duplicate"]


class CampaignViewSet(_WorkViewSet):
    """Screening campaigns (矛盾纠纷排查化解月, 排查不稳定因素) over a community or a grid;
    starting one creates a pending return per grid (``campaign-returns/``); GET
    ``{id}/coverage/``: returned / missing grids in your territory."""

    base_queryset = Campaign.objects.all()
    serializer_class = CampaignSerializer
    filterset_fields = ["kind"]
    record = staticmethod(services.start_campaign)

    @extend_schema(responses={200: CampaignCoverageSerializer})
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
        # the campaign's name and period are shown on each row: joined, not a query per row
        return (
            services.visible(CampaignReturn, self.request.user)
            .select_related("campaign")
            .order_by("campaign_id", "grid_id")
        )

    @extend_schema(request=CampaignReturnSerializer, responses={200: FiledReturnSerializer})
    @action(detail=True, methods=["post"], url_path="file")
    def file(self, request, pk=None):  # type: ignore[no-untyped-def]
        """File the return (filing again replaces it). With ``client_uuid``: a retry of any
        filing applied to this return answers the stored return with ``duplicate`` true;
        with ``client_time``: a filing recorded before the one in force is 409 naming
        ``client_time``; one recorded after the campaign's last day is 409 naming
        ``campaign`` (``campaign_ended``)."""
        ret = self.get_object()
        body = CampaignReturnSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        ret, applied = services.file_return(
            request.user,
            ret,
            zero_report=data.get("zero_report", True),
            findings=data.get("findings", ""),
            findings_count=data.get("findings_count", 0),
            client_uuid=data.get("client_uuid"),
            client_time=data.get("client_time"),
            while_running=True,
        )
        return Response({**CampaignReturnSerializer(ret).data, "duplicate": not applied})


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


class VenueVisitViewSet(_PhotosMixin, _WorkViewSet):
    """Religious-venue liaison visits (每个月和清真寺共同走访), hazards found; with the phone's
    GPS fix (``far_off`` beyond the household visits' distance) and photos."""

    base_queryset = VenueVisit.objects.all()
    serializer_class = VenueVisitSerializer
    filterset_fields = ["place", "date", "hazard_found", "far_off"]
    record = staticmethod(services.record_venue_visit)
    photo_serializer = VenueVisitPhotoSerializer
    add_photo = staticmethod(add_venue_visit_photo)
    readable = staticmethod(readable_venue_visit)
    file_prefix = "venue-visit"
    upload_doc = """Attach a photo (JPEG/PNG ≤ 5 MB, checked by content) to a venue visit you may read:
        201; the same photo again (a phone's retry) is the stored one: 200."""


class VenueContactSerializer(LocatedSerializer):
    place = _id("place_id", "the religious venue (Place of kind mosque / religious_venue)")
    grid = serializers.IntegerField(source="grid_id", read_only=True, allow_null=True)
    community = serializers.IntegerField(source="community_id", read_only=True)
    masked = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="keys not shown in clear"
    )

    class Meta:
        model = VenueContact
        fields = [*LocatedSerializer.LOCATED_FIELDS, "place", "name", "role", "phone", "masked"]
        read_only_fields = ["created_at"]

    def to_representation(self, instance):  # type: ignore[no-untyped-def]
        data = super().to_representation(instance)
        request = self.context.get("request")
        tier = tier_for(request.user) if request is not None else Tier.NONE
        return present_venue_contact(data, instance.phone, tier)


class VenueContactViewSet(_WorkViewSet):
    """A religious venue's contacts (阿訇, 管委会负责人 …) with their phones (masked below the
    staff tier like residents' phones)."""

    base_queryset = VenueContact.objects.all()
    serializer_class = VenueContactSerializer
    filterset_fields = ["place", "grid"]
    record = staticmethod(services.record_venue_contact)


class VenueTaskSerializer(serializers.ModelSerializer):
    rule = serializers.IntegerField(source="rule_id", read_only=True)
    place = serializers.IntegerField(source="place_id", read_only=True)
    place_name = serializers.CharField(source="place.name", read_only=True)
    grid = serializers.IntegerField(source="grid_id", read_only=True, allow_null=True)
    community = serializers.IntegerField(source="community_id", read_only=True)
    assigned_member = serializers.IntegerField(
        source="assigned_member_id", read_only=True, allow_null=True
    )
    assigned_member_name = serializers.SerializerMethodField(
        help_text="the visitor's display name, when the caller may read the post they hold for"
        " it (as /positions/ shows it) or is the visitor; else null"
    )
    done_by = serializers.IntegerField(
        source="done_by_id", read_only=True, allow_null=True, help_text="the venue visit"
    )

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_assigned_member_name(self, obj: VenueTask) -> str | None:
        if obj.assigned_member_id is None:
            return None
        return self._assignee_names(obj).get(obj.pk)

    def _assignee_names(self, obj: VenueTask) -> dict[int, str | None]:
        """Task id → the visitor's name, for the tasks being shown (one pass for a list): only
        where the post the task is assigned through is one the caller reads under /positions/
        (the same scope), or the caller is the visitor. Staff names are not resident data,
        but a grid member reading a task assigned up the chain learns no more than before."""
        from gridsvc.accounts.models import Member
        from gridsvc.chain.models import Position

        from .scoping import request_scope

        cache: dict[int, str | None] = self.context.setdefault("_venue_assignees", {})  # type: ignore[attr-defined]
        if obj.pk in cache:
            return cache
        request = self.context.get("request")
        user = getattr(request, "user", None)
        parent = self.parent if isinstance(self.parent, serializers.ListSerializer) else None
        shown_now = parent.instance if parent is not None and parent.instance is not None else [obj]
        tasks = [t for t in shown_now if t.pk not in cache]
        if obj not in tasks:
            tasks.append(obj)
        for t in tasks:
            cache[t.pk] = None
        if user is None or not getattr(user, "is_authenticated", False):
            return cache
        readable = set(
            request_scope(request)
            .filter(
                Position.objects.filter(
                    pk__in={t.assigned_position_id for t in tasks if t.assigned_position_id}
                )
            )
            .values_list("pk", flat=True)
        )
        shown = [
            t
            for t in tasks
            if t.assigned_member_id
            and (t.assigned_member_id == user.pk or t.assigned_position_id in readable)
        ]
        names = {
            m.pk: str(m)
            for m in Member.objects.filter(pk__in={t.assigned_member_id for t in shown})
        }
        for t in shown:
            cache[t.pk] = names.get(t.assigned_member_id or 0)
        return cache

    class Meta:
        model = VenueTask
        fields = [
            "id",
            "rule",
            "place",
            "place_name",
            "community",
            "grid",
            "period",
            "period_start",
            "period_end",
            "due_on",
            "assigned_member",
            "assigned_member_name",
            "assigned_level",
            "status",
            "done_by",
            "updated_at",
        ]
        read_only_fields = fields


class VenueTaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The joint monthly venue visits due (每个月和清真寺共同走访): one per venue and period of a
    visit rule targeting ``religious_venues``, in the caller's work territory and their own;
    a venue visit (``venue-visits/``) in the period completes it (an overdue one too). The
    daily run moves open tasks to ``overdue`` (逾期) after ``due_on`` and undone ones to
    ``missed`` (漏访) after the period end + the rule's grace days. ``?mine=1``: the
    caller's own."""

    serializer_class = VenueTaskSerializer
    filterset_fields = ["place", "status", "period", "assigned_member"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return VenueTask.objects.none()
        qs = services.visible(VenueTask, self.request.user).select_related("place")
        if self.request.query_params.get("mine") in ("1", "true"):
            qs = qs.filter(assigned_member=self.request.user)
        return qs.order_by("due_on", "id")


class AssistanceAmountField(serializers.DecimalField):
    """An amount of assistance (元, ``LOW_INCOME``): written as a decimal, read as the
    assistance API reads its amounts — ``"**"`` unless in clear under an unmask grant
    (:func:`api.assistance.amounts_clear`), never in clear in the phone's feed."""

    def to_representation(self, value):  # type: ignore[no-untyped-def]
        return shown_amount(value, amounts_clear(self.context))


class AssistanceAmountFieldSchema(OpenApiSerializerFieldExtension):
    """In requests a decimal; in responses a string that may be ``"**"`` (masked)."""

    target_class = AssistanceAmountField

    def map_serializer_field(self, auto_schema, direction):  # type: ignore[no-untyped-def]
        if direction == "request":
            return auto_schema._map_serializer_field(self.target, direction, True)
        return {"type": "string", "example": "**"}


class PairingHelpSerializer(LocatedSerializer):
    pairing = serializers.IntegerField(source="pairing_id", read_only=True)
    grid = serializers.IntegerField(source="grid_id", read_only=True, allow_null=True)
    community = serializers.IntegerField(source="community_id", read_only=True)
    date = serializers.DateField(required=False, help_text="default today")
    visit = _id("visit_id", "the visit it was given on (to the pairing's household)")
    hours = serializers.DecimalField(
        max_digits=5, decimal_places=1, required=False, allow_null=True, help_text="hours spent"
    )
    amount = AssistanceAmountField(
        max_digits=9,
        decimal_places=2,
        required=False,
        allow_null=True,
        help_text='元; read as "**" unless under an unmask grant (?unmask=1, audited)',
    )

    class Meta:
        model = PairingHelp
        fields = [
            *LocatedSerializer.LOCATED_FIELDS,
            "pairing",
            "date",
            "what",
            "visit",
            "hours",
            "amount",
        ]
        read_only_fields = ["created_at"]

    def to_representation(self, instance):  # type: ignore[no-untyped-def]
        """Where the amount is masked, the amount written into ``what`` ("送现金500元") is
        masked too (a mask beside the amount in clear is no mask)."""
        data = super().to_representation(instance)
        if not amounts_clear(self.context):
            data["what"] = amounts_in_text(instance.what, [instance.amount], MASK)
        return data


class PairingHelpBatchSerializer(PairingHelpSerializer):
    """A batch item ``pairing_help``: as ``pairings/{id}/help/``, naming the pairing."""

    pairing = serializers.IntegerField(source="pairing_id", help_text="the pairing")


class PairingViewSet(_WorkViewSet):
    """结对帮扶, 共建单位, 在职党员报到, 微心愿; ``{id}/help/`` the help given (records: the day,
    what was done, the visit, hours, amount)."""

    base_queryset = Pairing.objects.all()
    serializer_class = PairingSerializer
    filterset_fields = ["kind", "household", "grid"]
    record = staticmethod(services.record_pairing)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return services.with_help_summary(super().get_queryset())

    @extend_schema(methods=["GET"], request=None, responses={200: PairingHelpSerializer(many=True)})
    @extend_schema(
        methods=["POST"],
        request=PairingHelpSerializer,
        responses={201: PairingHelpSerializer, 200: PairingHelpSerializer},
    )
    @action(detail=True, methods=["get", "post"], url_path="help", pagination_class=None)
    def help(self, request, pk=None):  # type: ignore[no-untyped-def]
        """GET: the help given under the pairing, newest first. POST: record help given
        (``date`` default today, ``what``, optional ``visit``, ``hours``, ``amount``); the
        same ``client_uuid`` again is the stored record (200)."""
        pairing = self.get_object()
        ctx = {"request": request}
        if request.method == "GET":
            rows = list(pairing.help_records.order_by("-date", "-id"))
            return _help_answer(request, rows, PairingHelpSerializer(rows, many=True, context=ctx))
        body = PairingHelpSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = _service_data(body.validated_data)
        row, created = services.record_pairing_help(request.user, {**data, "pairing": pairing.pk})
        return _help_answer(
            request,
            [row],
            PairingHelpSerializer(row, context=ctx),
            status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


def _help_answer(request, rows, serializer, code=status.HTTP_200_OK):  # type: ignore[no-untyped-def]
    """The help records' answer; the amounts shown in clear (under an unmask grant) are each
    an audited ``unmasked_read`` of the record, as the assistance API audits its reads."""
    data = serializer.data
    grant = unmask_grant(request)
    shown = [r.pk for r in rows if r.amount is not None]
    if grant is not None and shown and amounts_clear(serializer.context):
        record_unmasked_reads(
            request.user, "pairing_help", shown, ["amount"], grant,
            ip=request.META.get("REMOTE_ADDR"),
        )  # fmt: skip
    return Response(data, status=code)


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
        responses={200: ScreeningDaySerializer},
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
        responses={200: UnityMonthFiguresSerializer},
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        scope = _narrow_to_grid(request, _staff_or_403(request))
        raw = request.query_params.get("month")
        try:
            first = date.fromisoformat(f"{raw}-01") if raw else services.timezone.localdate()
        except ValueError:
            raise ValidationError({"month": "must be YYYY-MM"}) from None
        figures = services.monthly_figures(scope, first.year, first.month, tier_for(request.user))
        return Response({"month": f"{first.year:04d}-{first.month:02d}", **figures})


# ---------------------------------------------------------------- cases: sign-off, 调处
class SignOffSerializer(LocatedSerializer):
    case = serializers.IntegerField(source="case_id", help_text="the case (in your territory)")
    grid = serializers.IntegerField(source="grid_id", read_only=True, allow_null=True)
    community = serializers.IntegerField(source="community_id", read_only=True)

    class Meta:
        model = SignOff
        fields = [*LocatedSerializer.LOCATED_FIELDS, "case", "confirmed", "note"]
        read_only_fields = ["created_at"]


class SignOffViewSet(_WorkViewSet):
    """民族宗教工作站确认: the street's ethnic-affairs desk signs off a case of the ``ethnic``
    category (or flagged 涉及民族宗教因素), as its closing rule asks; ``confirmed`` false
    records why it is not yet stable. The latest sign-off of a case stands."""

    base_queryset = SignOff.objects.all()
    serializer_class = SignOffSerializer
    filterset_fields = ["case", "confirmed"]

    @staticmethod
    def record(member, data):  # type: ignore[no-untyped-def]
        return services.sign_off(
            member,
            data.get("case"),
            confirmed=data.get("confirmed", True),
            note=data.get("note", ""),
        )


class UnityMediationSerializer(LocatedSerializer):
    case = serializers.IntegerField(source="case_id", help_text="the dispute case")
    mediator = serializers.IntegerField(source="mediator_id", read_only=True)
    grid = serializers.IntegerField(source="grid_id", read_only=True, allow_null=True)
    community = serializers.IntegerField(source="community_id", read_only=True)
    date = serializers.DateField(required=False, help_text="default today")

    class Meta:
        model = Mediation
        fields = [
            *LocatedSerializer.LOCATED_FIELDS,
            "case",
            "mediator",
            "date",
            "outcome",
            "note",
        ]
        read_only_fields = ["created_at"]


class MediationViewSet(_WorkViewSet):
    """调处: the community's 调处员 (五员) or mediation committee record a mediation session
    of a dispute case with its outcome (达成协议, 继续调处, 调处不成)."""

    base_queryset = Mediation.objects.all()
    serializer_class = UnityMediationSerializer
    filterset_fields = ["case", "outcome", "grid"]
    record = staticmethod(services.record_mediation)


class GroupMemberSerializer(LocatedSerializer):
    resident = serializers.IntegerField(source="resident_id", help_text="the resident")
    resident_name = serializers.CharField(source="resident.name", read_only=True)
    grid = serializers.IntegerField(source="grid_id", read_only=True, allow_null=True)
    community = serializers.IntegerField(source="community_id", read_only=True)

    class Meta:
        model = GroupMember
        fields = [
            *LocatedSerializer.LOCATED_FIELDS,
            "resident",
            "resident_name",
            "group",
            "detail",
        ]
        read_only_fields = ["created_at"]


class GroupMemberViewSet(_WorkViewSet):
    """Residents in the group ledgers the seeds keep: 离退休老领导, 个体户/企业家,
    归国华侨/留学生, 新的社会阶层 (POST again: the detail is updated)."""

    base_queryset = GroupMember.objects.all()
    serializer_class = GroupMemberSerializer
    filterset_fields = ["group", "grid"]
    record = staticmethod(services.add_group_member)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return super().get_queryset().select_related("resident")


# ---------------------------------------------------------------- languages
class ResidentLanguageSerializer(LocatedSerializer):
    resident = serializers.IntegerField(source="resident_id", help_text="the resident")
    languages = serializers.ListField(
        child=serializers.ChoiceField(choices=Language.choices), help_text="languages spoken"
    )
    interpreter_needed = serializers.BooleanField(
        required=False, help_text="default: true when 汉语 is not among the languages"
    )
    grid = serializers.IntegerField(source="grid_id", read_only=True, allow_null=True)
    community = serializers.IntegerField(source="community_id", read_only=True)

    class Meta:
        model = ResidentLanguage
        fields = [*LocatedSerializer.LOCATED_FIELDS, "resident", "languages", "interpreter_needed"]
        read_only_fields = ["created_at"]


class ResidentLanguageViewSet(_WorkViewSet):
    """A resident's languages and the need for an interpreter (004: 汉、维、哈三种语言); GET
    ``interpreters/?household=`` tells whom to send along to a household (民族语言翻译员 of its
    community for the languages its residents need)."""

    base_queryset = ResidentLanguage.objects.all()
    serializer_class = ResidentLanguageSerializer
    filterset_fields = ["interpreter_needed", "grid"]
    record = staticmethod(services.record_languages)

    @extend_schema(
        parameters=[OpenApiParameter("household", OpenApiTypes.INT, required=True)],
        responses={200: HouseholdInterpretersSerializer},
    )
    @action(detail=False, methods=["get"], url_path="interpreters")
    def interpreters(self, request):  # type: ignore[no-untyped-def]
        _staff_or_403(request)
        raw = request.query_params.get("household")
        try:
            household = int(raw) if raw else None
        except ValueError:
            raise ValidationError({"household": "a household id"}) from None
        if household is None:
            raise ValidationError({"household": "required"})
        return Response(services.interpreters_for(request.user, household))


class MemberLanguageSerializer(serializers.ModelSerializer):
    person = serializers.IntegerField(
        source="member_id",
        required=False,
        help_text="the member (holding a position in your territory); default: yourself",
    )
    languages = serializers.ListField(
        child=serializers.ChoiceField(choices=Language.choices),
        help_text="languages spoken besides 汉语 (an empty list clears them)",
    )
    recorded_by = serializers.IntegerField(source="recorded_by_id", read_only=True)

    class Meta:
        model = MemberLanguage
        fields = ["id", "person", "languages", "recorded_by", "updated_at"]
        read_only_fields = ["updated_at"]


class MemberLanguageViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """The languages members speak besides 汉语: a case or visit going to a household whose
    residents need an interpreter prefers a member who speaks it, and an interpreter is called
    only when the assignee does not. POST again replaces them. Members in your territory."""

    serializer_class = MemberLanguageSerializer
    filterset_fields = ["member"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        from gridsvc.chain.models import Position

        if getattr(self, "swagger_fake_view", False):
            return MemberLanguage.objects.none()
        scope = services.work_scope(self.request.user)
        if scope.empty:
            return MemberLanguage.objects.none()
        held = scope.filter(Position.objects.held_at()).values("member_id")
        return MemberLanguage.objects.filter(member__in=held).order_by("id")

    def create(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        row, created = services.record_member_languages(
            request.user, {"person": data.get("member_id"), "languages": data["languages"]}
        )
        return Response(
            self.get_serializer(row).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class InterpreterCallSerializer(LocatedSerializer):
    case = serializers.IntegerField(source="case_id", read_only=True, allow_null=True)
    visit_task = serializers.IntegerField(source="visit_task_id", read_only=True, allow_null=True)
    household = serializers.IntegerField(source="household_id", read_only=True)
    interpreter = serializers.IntegerField(
        source="interpreter_id", read_only=True, allow_null=True, help_text="the team membership"
    )
    interpreter_name = serializers.SerializerMethodField()
    assignee = serializers.IntegerField(source="assignee_id", read_only=True, allow_null=True)
    language = serializers.CharField(
        read_only=True, help_text="the language code (as in languages/): zh, ug, kk, sce …"
    )

    def get_interpreter_name(self, obj: InterpreterCall) -> str | None:
        t = obj.interpreter
        if t is None:
            return None
        return str(t.member) if t.member_id else t.name

    class Meta:
        model = InterpreterCall
        fields = [
            *LocatedSerializer.LOCATED_FIELDS,
            "case",
            "visit_task",
            "household",
            "language",
            "interpreter",
            "interpreter_name",
            "assignee",
        ]
        read_only_fields = fields


class InterpreterCallViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Interpreters attached to cases and visit tasks (请翻译随行): made by the assignment when
    the assignee does not speak the language a resident of the household needs. Read-only; an
    interpreter also sees the calls made to them."""

    serializer_class = InterpreterCallSerializer
    filterset_fields = ["case", "visit_task", "language", "grid"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        from django.db.models import Q

        if getattr(self, "swagger_fake_view", False):
            return InterpreterCall.objects.none()
        user = self.request.user
        mine = (
            Q(interpreter__member=user)
            if getattr(user, "is_authenticated", False)
            else Q(pk__in=[])
        )
        visible = services.visible(InterpreterCall, user).values("pk")
        return (
            InterpreterCall.objects.filter(Q(pk__in=visible) | mine)
            .select_related("interpreter__member")
            .order_by("-created_at", "-id")
        )


# ---------------------------------------------------------------- phone: feed and batch
class CommunityFeedSerializer(serializers.Serializer):
    cursor = serializers.CharField(help_text="send as ?since= next time (opaque)")
    has_more = serializers.BooleanField(help_text="call again at once with the new cursor")
    reset = serializers.BooleanField(
        help_text="the caller's work territory changed since the cursor: drop every community "
        "row held before applying this page; the feed starts again as a first sync"
    )
    activities = ActivitySerializer(many=True)
    screening = ScreeningReportSerializer(many=True)
    venue_visits = VenueVisitSerializer(many=True)
    teams = TeamMembershipSerializer(many=True)
    campaign_returns = CampaignReturnSerializer(many=True)
    petitions = PetitionSerializer(many=True)
    pairings = PairingSerializer(many=True)
    interpreter_calls = InterpreterCallSerializer(many=True)
    ratings = RatingSerializer(many=True)
    mediations = UnityMediationSerializer(many=True)
    sign_offs = SignOffSerializer(many=True)
    venue_tasks = VenueTaskSerializer(many=True)
    group_members = GroupMemberSerializer(many=True)
    resident_languages = ResidentLanguageSerializer(many=True)
    pairing_help = PairingHelpSerializer(many=True)


class CommunityChangesView(APIView):
    """The phone's feed of community records (活动, 五员一日一报, 宗教场所走访; and 队伍, 排查反馈,
    信访, 结对, 翻译随行, 评比, 调处, 民族宗教工作站确认, 宗教场所共同走访任务, 群体台账人员,
    居民语言) in the caller's work territory (their own screening reports and venue tasks
    too): without ``since`` all of them, with it what was saved after it (a venue task whose
    status or visitor changed comes again); replace rows by ``id``. ``limit`` rows per stream
    (1–500). Rows are shown as the REST lists show them without an unmask grant: pairing
    help amounts are always ``**`` here, as in the assistance feed."""

    @extend_schema(
        parameters=batch.FEED_PARAMETERS,
        responses={200: CommunityFeedSerializer},
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        from gridsvc.visits.sync import BadCursor

        since = request.query_params.get("since")
        if services.work_scope(request.user).empty:
            # no post left: a phone that synced before is told once to drop what it holds
            if not since or not services.cursor_holds_other_territory(request.user, since):
                _staff_or_403(request)
        limit = batch.feed_limit(request.query_params)
        try:
            rows, cursor, more, reset = services.changes(request.user, since, limit)
        except BadCursor as exc:
            raise ValidationError({"since": str(exc)}) from None
        # amounts of assistance (pairing help) are never in clear on the phone, as in the
        # assistance feed
        ctx = {"request": request, "force_masked": True}
        return Response(
            {
                "cursor": cursor,
                "has_more": more,
                "reset": reset,
                **{
                    key: serializer(rows[key], many=True, context=ctx).data
                    for key, serializer in FEED_SERIALIZERS.items()
                },
            }
        )


FEED_SERIALIZERS = {
    "activities": ActivitySerializer,
    "screening": ScreeningReportSerializer,
    "venue_visits": VenueVisitSerializer,
    "teams": TeamMembershipSerializer,
    "campaign_returns": CampaignReturnSerializer,
    "petitions": PetitionSerializer,
    "pairings": PairingSerializer,
    "interpreter_calls": InterpreterCallSerializer,
    "ratings": RatingSerializer,
    "mediations": UnityMediationSerializer,
    "sign_offs": SignOffSerializer,
    "venue_tasks": VenueTaskSerializer,
    "group_members": GroupMemberSerializer,
    "resident_languages": ResidentLanguageSerializer,
    "pairing_help": PairingHelpSerializer,
}


class CampaignReturnBatchSerializer(serializers.Serializer):
    """A batch item ``campaign_return``: a grid's findings or 零报告 for a campaign (as
    ``campaign-returns/{id}/file/``; filing again replaces the return, unless recorded on the
    phone before the filing in force; a retry of any filing applied before is ``duplicate``)."""

    campaign = serializers.IntegerField(help_text="the campaign (its return in your territory)")
    grid = serializers.IntegerField(
        required=False, allow_null=True, help_text="the grid; optional when you see one return"
    )
    zero_report = serializers.BooleanField(default=True, help_text="零报告: nothing found")
    findings = serializers.CharField(required=False, allow_blank=True, default="")
    findings_count = serializers.IntegerField(required=False, min_value=0, default=0)
    client_time = serializers.DateTimeField(
        required=False,
        allow_null=True,
        validators=[from_1970],
        help_text="when it was recorded on the phone: a filing recorded before the one in"
        " force is rejected (never replaces it)",
    )
    client_uuid = serializers.UUIDField(required=False, allow_null=True)


class ServiceLogBatchSerializer(serializers.Serializer):
    """A batch item ``service_log``: a day's 志愿服务时长 of a team membership (as
    ``teams/{id}/hours/``)."""

    membership = serializers.IntegerField(help_text="the team membership (in your territory)")
    date = serializers.DateField(required=False, help_text="default today")
    hours = serializers.DecimalField(max_digits=5, decimal_places=1)
    note = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    client_uuid = serializers.UUIDField(required=False, allow_null=True)


BATCH_SERIALIZERS = {
    "activity": ActivitySerializer,
    "screening": ScreeningReportSerializer,
    "venue_visit": VenueVisitSerializer,
    "campaign_return": CampaignReturnBatchSerializer,
    "service_log": ServiceLogBatchSerializer,
    "pairing_help": PairingHelpBatchSerializer,
    "petition": PetitionSerializer,
    "mediation": UnityMediationSerializer,
}
CommunityBatchSerializer, CommunityBatchResultSerializer = batch.batch_serializers(
    "Community",
    BATCH_SERIALIZERS,
    "the record, as for its own POST (activities/, screening/, venue-visits/; campaign_return:"
    " campaign, grid, zero_report, findings, findings_count as campaign-returns/{id}/file/;"
    " service_log: membership, date, hours, note as teams/{id}/hours/; pairing_help: pairing,"
    " date, what, visit, hours, amount as pairings/{id}/help/; petition: as petitions/;"
    " mediation: case, date, outcome, note as mediations/ — only the community's 调处员 or"
    " mediation committee)",
)


class CommunityBatchView(APIView):
    """The phone's offline batch of community records (activity, screening, venue_visit,
    campaign_return, service_log, pairing_help, petition, mediation), each with its
    ``client_uuid``: one result per item, in
    order, each naming its item's ``client_uuid`` — ``accepted`` (stored now, ``id``),
    ``duplicate`` (already stored, ``id``), ``rejected`` (``errors`` per field, and ``code``
    when the rule names its reason). One bad item never loses the others, and stores nothing
    of itself. Send an ``Idempotency-Key``: a retried batch answers as the first time.

    Items are judged at the time they were recorded (交接后补传, as the visits): a record made
    while the member held the post and sent after the post ended (a hand-over) is stored,
    within the visits' upload window (30 days), and its result says ``late: true`` (its place
    is no longer the member's; the successor sees it). One recorded after the post ended, or
    for a grid the member never held, is ``rejected`` with ``code: not_in_territory``. Only a
    member with no staff post now nor one left within the window is refused the whole batch
    (403)."""

    @extend_schema(
        request=CommunityBatchSerializer, responses={200: CommunityBatchResultSerializer}
    )
    def post(self, request):  # type: ignore[no-untyped-def]
        if not services.may_send_offline(request.user):
            raise PermissionDenied("community work is for grid, community and street staff")
        body = batch.run_batch(
            request.data,
            CommunityBatchSerializer,
            parse=lambda kind, data, key: BATCH_SERIALIZERS[kind](
                data={**data, "client_uuid": str(key)}, context={"request": request}
            ),
            store=lambda kind, data, key: services.record_offline(
                request.user, kind, _service_data(data)
            ),
            refused=services.CommunityError,
            present=_batch_row,
        )
        # every result names its item (a rejected one too), not only by its place in the list
        for item, result in zip(request.data["items"], body["results"], strict=True):
            result.setdefault("client_uuid", str(item["client_uuid"]))
        return Response(body)


def _batch_row(kind: str, row: object) -> dict:
    """What a stored item's result adds (the phone's outbox shows it): ``late: true`` when
    stored on a post the member held when recording it and has left since, and for a venue visit the
    fix as judged (``far_off``, ``distance_m`` from the venue) and the photos kept."""
    extra: dict = {"late": True} if getattr(row, "late_upload", False) else {}
    if isinstance(row, VenueVisit):
        extra.update(
            far_off=row.far_off,
            distance_m=row.distance_m,
            photos=row.photos.count(),
        )
    return extra


class _StoredPhotoFileView(APIView):
    """A stored photo's file (``photos_of``: the records' viewset, a :class:`_PhotosMixin`),
    for callers who may read its record; anyone else gets 404, as for the record."""

    content_negotiation_class = AnyAccept
    photos_of: type[_PhotosMixin]

    @extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY, 304: None, 404: None})
    def get(self, request, pk: int, **owner: int):  # type: ignore[no-untyped-def]
        of = self.photos_of
        owner_field = of.photo_serializer.owner  # the route's keyword: activity_id, visit_id
        record = of.readable(request.user, owner[owner_field])
        photo = (
            of.photo_serializer.Meta.model.objects.filter(pk=pk, **{owner_field: record.pk}).first()
            if record is not None
            else None
        )
        if photo is None:
            raise NotFound()
        return serve(photo.image, f"{of.file_prefix}-{record.pk}-{photo.pk}", photo.sha256, request)


class ActivityPhotoFileView(_StoredPhotoFileView):
    """An activity photo's file, for callers who may read the activity (the staff part of
    their territory); anyone else gets 404, as for the activity. Served as the visit photos
    are (type from the stored bytes, ``nosniff``, sandboxed)."""

    photos_of = ActivityViewSet


class VenueVisitPhotoFileView(_StoredPhotoFileView):
    """A venue visit photo's file, for callers who may read the visit (the staff part of their
    territory); anyone else gets 404, as for the visit. Served as the activity photos are."""

    photos_of = VenueVisitViewSet


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class CommunityLedgerView(APIView):
    """The community's 台账 as xlsx (少数民族人员, 困难家庭, 下岗失业, 活动与宣传, 排查, 信访,
    志愿者, 宗教场所, 离退休老领导, 个体户企业家, 归国华侨留学生, 新的社会阶层), masked and
    audited; for community and street staff (a grid's staff: ``/reports/ledgers/{grid}/``)."""

    @extend_schema(
        parameters=[OpenApiParameter("year", OpenApiTypes.INT)],
        responses={(200, XLSX): OpenApiTypes.BINARY},
    )
    def get(self, request, community: int):  # type: ignore[no-untyped-def]
        from django.http import HttpResponse

        from gridsvc.community.ledgers import community_workbook, visible_community
        from gridsvc.dataio.ledgers import LedgerRefused

        try:
            comm = visible_community(community, request.user)
        except LedgerRefused as exc:
            raise PermissionDenied(str(exc)) from None
        if comm is None:
            raise NotFound("no such community in your territory")
        raw = request.query_params.get("year")
        year = parse_year(raw) if raw else None
        content = community_workbook(comm, request.user, year=year)
        resp = HttpResponse(content, content_type=XLSX)
        resp["Content-Disposition"] = f'attachment; filename="ledgers-{comm.code}.xlsx"'
        return resp


# ---------------------------------------------------------------- reporting upward (item 9)
class UnityReportSerializer(serializers.ModelSerializer):
    street = serializers.IntegerField(
        source="street_id", required=False, help_text="your street (default: the one you hold)"
    )
    submitted_by = serializers.IntegerField(source="submitted_by_id", read_only=True)
    acknowledged_by = serializers.IntegerField(
        source="acknowledged_by_id", read_only=True, allow_null=True
    )
    year = serializers.IntegerField(min_value=YEAR_MIN, max_value=YEAR_MAX)
    month = serializers.IntegerField(
        required=False, min_value=0, max_value=12, help_text="1–12 for a month's report"
    )

    class Meta:
        model = UnityReport
        fields = [
            "id",
            "street",
            "year",
            "kind",
            "month",
            "text",
            "figures",
            "submitted_by",
            "submitted_at",
            "acknowledged_by",
            "acknowledged_at",
            "acknowledgement",
        ]
        read_only_fields = ["figures", "submitted_at", "acknowledged_at", "acknowledgement"]


class UnityReportListView(APIView):
    """The street's 创建 reports to the district: ``plan`` (年初有计划), ``monthly``, ``summary``
    (年终有总结). GET: the reports of your streets, or your district's; POST (street
    dispatcher, ethnic-affairs desk): submit or replace one not yet acknowledged, with the
    street's figures as they stand."""

    @extend_schema(responses={200: UnityReportSerializer(many=True)})
    def get(self, request):  # type: ignore[no-untyped-def]
        rows = services.visible_reports(request.user).select_related("street")
        return Response(UnityReportSerializer(rows, many=True).data)

    @extend_schema(
        request=UnityReportSerializer,
        responses={201: UnityReportSerializer, 200: UnityReportSerializer},
    )
    def post(self, request):  # type: ignore[no-untyped-def]
        body = UnityReportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        report, created = services.submit_report(request.user, _service_data(body.validated_data))
        return Response(
            UnityReportSerializer(report).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class AcknowledgeSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, help_text="the district's note")


class UnityReportAcknowledgeView(APIView):
    """签收: an officer of the report's district acknowledges it."""

    @extend_schema(request=AcknowledgeSerializer, responses={200: UnityReportSerializer})
    def post(self, request, pk: int):  # type: ignore[no-untyped-def]
        report = services.visible_reports(request.user).filter(pk=pk).first()
        if report is None:
            raise NotFound("no such report for you")
        body = AcknowledgeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.acknowledge_report(request.user, report, body.validated_data.get("note", ""))
        return Response(UnityReportSerializer(report).data)


class DistrictOverviewView(APIView):
    """The district's streets side by side (for its 创建 office): each street's figures for
    the month (``month``) or the year, and where its plan, summary and month's report stand."""

    @extend_schema(
        parameters=[
            OpenApiParameter("code", OpenApiTypes.STR, description="the district (6 digits)"),
            OpenApiParameter("year", OpenApiTypes.INT),
            OpenApiParameter("month", OpenApiTypes.INT, description="1–12; none: the year"),
        ],
        responses={200: DistrictOverviewSerializer},
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        codes = services.district_codes(request.user)
        code = request.query_params.get("code") or (next(iter(codes)) if len(codes) == 1 else "")
        year = parse_year(request.query_params.get("year") or services.timezone.localdate().year)
        try:
            month = int(request.query_params.get("month") or 0)
        except ValueError:
            raise ValidationError({"month": "1–12"}) from None
        if not 0 <= month <= 12:
            raise ValidationError({"month": "1–12"})
        if not code:
            raise PermissionDenied("for the district's 创建 office")
        return Response(services.district_overview(request.user, code, year, month))


class DistrictOfficerSerializer(serializers.Serializer):
    """``district-officers/``: a member of a district's 创建 office: a district post
    (区创建办, a chain position of type ``district_officer``) held now."""

    id = serializers.IntegerField(help_text="the post (a chain position: /api/v1/positions/)")
    member = serializers.IntegerField(source="member_id")
    name = serializers.SerializerMethodField()
    district_code = serializers.CharField(source="district.code")
    district_name = serializers.CharField(source="district.name")
    on_leave = serializers.BooleanField(help_text="on leave: acknowledges nothing meanwhile")

    def get_name(self, obj: Position) -> str:
        return str(obj.member)


class DistrictOfficerListView(APIView):
    """The 创建 office's members (the district posts held now, on leave or not) of the
    districts the caller reads in full (``services.readable_districts``: their own district's
    officers); a street office, which reads its district by name only, and everyone else get
    an empty list."""

    @extend_schema(responses={200: DistrictOfficerSerializer(many=True)})
    def get(self, request):  # type: ignore[no-untyped-def]
        _, full = services.readable_districts(request.user)
        rows = (
            Position.objects.held_at()
            .filter(position_type=PositionType.DISTRICT_OFFICER, district__in=full)
            .select_related("member", "district")
            .order_by("district__code", "id")
        )
        return Response(DistrictOfficerSerializer(rows, many=True).data)


urlpatterns: list = [
    path(
        "community/district-officers/",
        DistrictOfficerListView.as_view(),
        name="community-district-officers",
    ),
    path("community/screening/day/", ScreeningDayView.as_view(), name="community-screening-day"),
    path("community/figures/", FiguresView.as_view(), name="community-figures"),
    path("community/changes/", CommunityChangesView.as_view(), name="community-changes"),
    path("community/batch/", CommunityBatchView.as_view(), name="community-batch"),
    path(
        "community/activities/<int:activity_id>/photos/<int:pk>/file/",
        ActivityPhotoFileView.as_view(),
        name=ActivityPhotoSerializer.file_route,
    ),
    path(
        "community/venue-visits/<int:visit_id>/photos/<int:pk>/file/",
        VenueVisitPhotoFileView.as_view(),
        name=VenueVisitPhotoSerializer.file_route,
    ),
    path("community/reports/", UnityReportListView.as_view(), name="community-reports"),
    path(
        "community/reports/<int:pk>/acknowledge/",
        UnityReportAcknowledgeView.as_view(),
        name="community-report-acknowledge",
    ),
    path("community/district/", DistrictOverviewView.as_view(), name="community-district"),
    path(
        "community/ledgers/<int:community>/",
        CommunityLedgerView.as_view(),
        name="community-ledgers",
    ),
]
root_urlpatterns: list = []


def register(router) -> None:  # type: ignore[no-untyped-def]
    """Register this domain's viewsets on the /api/v1/ router."""
    router.register("community/teams", TeamMembershipViewSet, basename="community-team")
    router.register("community/service-logs", ServiceLogViewSet, basename="community-service-log")
    router.register("community/activities", ActivityViewSet, basename="community-activity")
    router.register("community/screening", ScreeningReportViewSet, basename="community-screening")
    router.register("community/campaigns", CampaignViewSet, basename="community-campaign")
    router.register(
        "community/campaign-returns", CampaignReturnViewSet, basename="community-campaign-return"
    )
    router.register("community/petitions", PetitionViewSet, basename="community-petition")
    router.register("community/venue-visits", VenueVisitViewSet, basename="community-venue-visit")
    router.register(
        "community/venue-contacts", VenueContactViewSet, basename="community-venue-contact"
    )
    router.register("community/venue-tasks", VenueTaskViewSet, basename="community-venue-task")
    router.register("community/pairings", PairingViewSet, basename="community-pairing")
    router.register("community/ratings", RatingViewSet, basename="community-rating")
    router.register("community/sign-offs", SignOffViewSet, basename="community-sign-off")
    router.register("community/mediations", MediationViewSet, basename="community-mediation")
    router.register(
        "community/group-members", GroupMemberViewSet, basename="community-group-member"
    )
    router.register(
        "community/member-languages", MemberLanguageViewSet, basename="community-member-language"
    )
    router.register(
        "community/interpreter-calls", InterpreterCallViewSet, basename="community-interpreter-call"
    )
    router.register("community/languages", ResidentLanguageViewSet, basename="community-language")
