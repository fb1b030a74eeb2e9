"""API for people's services (民生服务): assistance applications as a workflow.

- /api/v1/assistance/                     list (scoped: staff tiers only; neighbours get
                                          none) with ``?kind=``, ``?status=``,
                                          ``?household=``, ``?recheck_overdue=1``; POST
                                          starts one (``client_uuid`` from the phone: a retry
                                          returns the stored one, 200)
- /api/v1/assistance/{id}/                one application with its events
- /api/v1/assistance/gaps/                应保尽保: eligible without application, overdue
                                          re-checks (counts per grid; households under a grant)
- /api/v1/assistance/figures/             低保/廉租房补贴/居民医保/临时救助 figures (?day=)
- /api/v1/assistance/{id}/check/          核查 (grid member, cadre)
- /api/v1/assistance/{id}/review/         社区评议 (community cadre, community staff)
- /api/v1/assistance/{id}/decide/         街道审批 (street dispatcher)
- /api/v1/assistance/{id}/recheck/        复核 (street dispatcher)
- /api/v1/assistance/{id}/withdraw/       撤回
- /api/v1/assistance/{id}/documents/      申请材料: list (metadata), POST a file (image/PDF)
- /api/v1/assistance/{id}/documents/{doc}/file/  the file, only under an unmask grant (audited)
- /api/v1/assistance/changes/?since=      the phone's feed of applications and migrants
- /api/v1/assistance/batch/               the phone's offline batch (申请 from a visit, a
                                          migrant's arrival or departure; Idempotency-Key)
- /api/v1/migrants/                       流动人口: list (``?present=1``), POST an arrival
- /api/v1/migrants/{id}/                  PATCH details (居住证, home contact, work …)
- /api/v1/migrants/{id}/depart/           departure (date, where to)
- /api/v1/migrants/flows/?month=          monthly inflow / outflow

Income and amounts are LOW_INCOME-sensitive: shown masked ("**") unless under an unmask
grant (``?unmask=1``), and every unmasked read is audited. Rules: gridsvc.assistance.services.
"""

from __future__ import annotations

from datetime import date

from django.http import HttpResponse
from django.urls import path, reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from gridsvc.assistance import documents, migrants, services
from gridsvc.assistance import sync as assistance_sync
from gridsvc.assistance.figures import figures as assistance_figures
from gridsvc.assistance.figures import suppressed as suppress_figures
from gridsvc.assistance.models import (
    Application,
    ApplicationDocument,
    ApplicationEvent,
    Kind,
    Migrant,
    Status,
)
from gridsvc.audit.services import record_unmasked_reads
from gridsvc.chain.visibility import Tier, staff_scope, suppress_small, tier_for
from gridsvc.reports.services import figures_tier
from gridsvc.territory.codes import mask_phone
from gridsvc.territory.models import Household, Resident
from gridsvc.territory.textmask import mask_in_text

from . import batch
from .attachments import AnyAccept, serve
from .fields import ClientDateTimeField
from .files import checked_upload
from .privacy import UnmaskAuditMixin, unmask_grant, viewer
from .scoping import request_scope

SENSITIVE_FIELDS = assistance_sync.SENSITIVE_FIELDS
MAX_ID = 2**62  # ids in bodies: larger is a 400, never a database overflow

root_urlpatterns: list = []


def _unmasked(context: dict) -> bool:
    """Whether a serializer with ``context`` reads under an unmask grant (``?unmask=1``,
    audited by the view): never in the phone's feed (``force_masked``) nor without a request."""
    if context.get("force_masked"):
        return False
    request = context.get("request")
    return request is not None and viewer(request).unmasked


def amounts_clear(context: dict) -> bool:
    """Whether a serializer with ``context`` shows income and amounts of assistance in clear:
    :func:`gridsvc.assistance.services.amounts_in_clear` for the caller's tier, under an
    unmask grant only (:func:`_unmasked`). Also the community's pairing help amounts."""
    if not _unmasked(context):
        return False
    return services.amounts_in_clear(viewer(context["request"]).tier, True)


def register(router) -> None:  # type: ignore[no-untyped-def]
    """Register this domain's viewsets on the /api/v1/ router."""
    router.register("assistance", ApplicationViewSet, basename="assistance")
    router.register("migrants", MigrantViewSet, basename="migrant")


class AssistanceEventSerializer(serializers.ModelSerializer):
    actor_name = serializers.CharField(source="actor.display_name", default=None, read_only=True)

    class Meta:
        model = ApplicationEvent
        fields = ["id", "action", "from_status", "to_status", "actor", "actor_name", "at", "note"]
        read_only_fields = fields


class AssistanceDocumentSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(
        help_text="the file's download (only under an unmask grant: add ?unmask=1)"
    )

    class Meta:
        model = ApplicationDocument
        fields = ["id", "name", "content_type", "size", "uploaded_by", "created_at", "url"]
        read_only_fields = fields

    def to_representation(self, instance: ApplicationDocument) -> dict:  # type: ignore[override]
        data = super().to_representation(instance)
        if not _unmasked(self.context) and data.get("name"):
            data["name"] = mask_in_text(data["name"])  # "身份证 6201…" typed as its name
        return data

    def get_url(self, obj: ApplicationDocument) -> str:
        url = reverse(
            "assistance-document-file", kwargs={"app_id": obj.application_id, "pk": obj.pk}
        )
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url


class AssistanceApplicationSerializer(serializers.ModelSerializer):
    kind_name = serializers.CharField(source="get_kind_display", read_only=True)
    status_name = serializers.CharField(source="get_status_display", read_only=True)
    monthly_income = serializers.SerializerMethodField()
    amount = serializers.SerializerMethodField()
    masked = serializers.SerializerMethodField()
    events = AssistanceEventSerializer(many=True, read_only=True)
    attachments = AssistanceDocumentSerializer(many=True, read_only=True)

    class Meta:
        model = Application
        fields = list(assistance_sync.APPLICATION_FIELDS)
        read_only_fields = fields

    def _money(self, value) -> str | None:  # type: ignore[no-untyped-def]
        return services.shown_amount(value, amounts_clear(self.context))

    def get_monthly_income(self, obj: Application) -> str | None:
        return self._money(obj.monthly_income)

    def get_amount(self, obj: Application) -> str | None:
        return self._money(obj.amount)

    def get_masked(self, obj: Application) -> list[str]:
        return [] if amounts_clear(self.context) else list(SENSITIVE_FIELDS)

    def to_representation(self, instance: Application) -> dict:  # type: ignore[override]
        data = super().to_representation(instance)
        if amounts_clear(self.context):
            return data
        # the masked amounts typed in a reason or a note are masked there too (as the feed)
        return assistance_sync.masked_application(data, instance.monthly_income, instance.amount)


class AssistanceSubmitSerializer(serializers.Serializer):
    household = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    kind = serializers.ChoiceField(choices=Kind.choices)
    applicant = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, allow_null=True
    )
    visit = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False, allow_null=True)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    client_uuid = serializers.UUIDField(required=False, allow_null=True)


class AssistanceCheckSerializer(serializers.Serializer):
    members_count = serializers.IntegerField(min_value=1, max_value=99)
    monthly_income = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=0)
    documents = serializers.ListField(
        child=serializers.CharField(max_length=100), min_length=1, max_length=30
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class AssistanceReviewSerializer(serializers.Serializer):
    recommended = serializers.BooleanField()
    opinion = serializers.CharField(max_length=2000)


class AssistanceDecideSerializer(serializers.Serializer):
    approved = serializers.BooleanField()
    reason = serializers.CharField(max_length=2000)
    amount = serializers.DecimalField(
        max_digits=10, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    start_date = serializers.DateField(required=False, allow_null=True)
    end_date = serializers.DateField(required=False, allow_null=True)


class AssistanceRecheckSerializer(serializers.Serializer):
    continues = serializers.BooleanField(help_text="false ends the assistance")
    note = serializers.CharField(max_length=2000)
    amount = serializers.DecimalField(
        max_digits=10, decimal_places=2, min_value=0, required=False, allow_null=True
    )


class AssistanceDocumentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JPEG, PNG, WebP or PDF (checked by content)")
    name = serializers.CharField(max_length=100, help_text="户口簿, 身份证, 收入证明 …")
    client_uuid = serializers.UUIDField(required=False, allow_null=True)


class AssistanceNoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class AssistanceFiguresSerializer(serializers.Serializer):
    day = serializers.DateField()
    figures = serializers.DictField(child=serializers.DictField())


class AssistanceGapsSerializer(serializers.Serializer):
    results = serializers.ListField(
        child=serializers.DictField(), help_text="grid, dibao, public_housing, recheck_overdue"
    )
    households = serializers.DictField(
        allow_null=True, help_text="household ids (only under an unmask grant)"
    )


def _not_found(field: str) -> ValidationError:
    return ValidationError({field: ["not found"]})


class ApplicationViewSet(
    UnmaskAuditMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """民生服务申请 (低保, 临时救助, 廉租房/公租房, 医保/养老, 助学, 就业)."""

    base_queryset = Application.objects.all()
    serializer_class = AssistanceApplicationSerializer
    audit_object_type = "assistance_application"
    audit_fields = SENSITIVE_FIELDS

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Application.objects.none()
        qs = services.visible_applications(request_scope(self.request), self.request.user)
        qs = qs.prefetch_related("events__actor", "attachments")
        params = self.request.query_params
        if params.get("kind"):
            qs = qs.filter(kind=params["kind"])
        if params.get("status"):
            qs = qs.filter(status=params["status"])
        if params.get("household", "").isdigit():
            qs = qs.filter(household_id=int(params["household"]))
        if params.get("recheck_overdue") in ("1", "true"):
            qs = services.recheck_overdue(qs)
        return qs

    def _staff_households(self):  # type: ignore[no-untyped-def]
        if tier_for(self.request.user) < Tier.STAFF:
            return Household.objects.none()
        return staff_scope(request_scope(self.request)).filter(Household.objects.all())

    @extend_schema(request=None, responses=AssistanceFiguresSerializer)
    @action(detail=False, methods=["get"])
    def figures(self, request):  # type: ignore[no-untyped-def]
        """Figures from the applications in the caller's territory on ``?day=`` (default
        today): people and households on 低保, 廉租房补贴, 居民医保, 临时救助, their minority
        part and its share. Counts below 5 are suppressed below the street tier (and for a
        street post's holder whose territory reaches past its street)."""
        if tier_for(request.user) < Tier.STAFF:
            raise services.NotAllowed("neighbours' roles do not see assistance")
        tier = figures_tier(request.user, request_scope(request))
        raw = request.query_params.get("day")
        try:
            day = date.fromisoformat(raw) if raw else timezone.localdate()
        except ValueError:
            raise ValidationError({"day": ["must be a date YYYY-MM-DD"]}) from None
        out = assistance_figures(self.get_queryset(), day)
        for row in out.values():
            suppress_figures(row, tier)
        return Response({"day": day.isoformat(), "figures": out})

    @extend_schema(request=None, responses=AssistanceGapsSerializer)
    @action(detail=False, methods=["get"])
    def gaps(self, request):  # type: ignore[no-untyped-def]
        """应保尽保: per grid, households whose records suggest 低保 or housing assistance but
        that have none, and those whose re-check is overdue. Counts below 5 are suppressed
        below the street tier; the households themselves only under an unmask grant
        (``?unmask=1``, audited)."""
        if tier_for(request.user) < Tier.STAFF:
            raise services.NotAllowed("neighbours' roles do not see assistance")
        tier = figures_tier(request.user, request_scope(request))
        gap = services.gaps(self._staff_households())
        rows = []
        for grid_id, counts in sorted(
            services.gaps_by_grid(gap).items(), key=lambda kv: (kv[0] is None, kv[0] or 0)
        ):
            shown = {k: suppress_small(v, tier) for k, v in counts.items()}
            rows.append({"grid": grid_id, **shown})
        body: dict = {"results": rows, "households": None}
        grant = unmask_grant(request)
        if grant is not None:
            body["households"] = gap
            ids = {i for r in gap["missing"].values() for i in r} | set(gap["recheck_overdue"])
            record_unmasked_reads(
                request.user,
                "household",
                sorted(ids),
                ["assistance_gap"],
                grant,
                ip=request.META.get("REMOTE_ADDR"),
            )
        return Response(body)

    @extend_schema(
        request=AssistanceSubmitSerializer, responses={201: AssistanceApplicationSerializer}
    )
    def create(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        if tier_for(request.user) < Tier.STAFF:
            raise services.NotAllowed("neighbours' roles do not handle assistance")
        body = AssistanceSubmitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        try:
            household, applicant, visit = assistance_sync.application_refs(
                self._staff_households(), d
            )
        except assistance_sync.RefNotFound as exc:
            raise _not_found(exc.field) from None
        out = services.submit(
            request.user,
            household,
            d["kind"],
            applicant=applicant,
            visit=visit,
            reason=d.get("reason", ""),
            client_uuid=d.get("client_uuid"),
        )
        data = AssistanceApplicationSerializer(out.application, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED if out.created else status.HTTP_200_OK)

    def _step(self, request, serializer_class, run):  # type: ignore[no-untyped-def]
        app = self.get_object()  # 404 outside the caller's territory
        body = serializer_class(data=request.data)
        body.is_valid(raise_exception=True)
        run(app.pk, body.validated_data)
        fresh = self.get_queryset().get(pk=app.pk)
        return Response(AssistanceApplicationSerializer(fresh, context={"request": request}).data)

    @extend_schema(request=AssistanceCheckSerializer, responses=AssistanceApplicationSerializer)
    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):  # type: ignore[no-untyped-def]
        """核查: members, declared income, documents seen."""
        return self._step(
            request,
            AssistanceCheckSerializer,
            lambda i, d: services.check(
                request.user,
                i,
                members_count=d["members_count"],
                monthly_income=d["monthly_income"],
                documents=d["documents"],
                note=d.get("note", ""),
            ),
        )

    @extend_schema(request=AssistanceReviewSerializer, responses=AssistanceApplicationSerializer)
    @action(detail=True, methods=["post"])
    def review(self, request, pk=None):  # type: ignore[no-untyped-def]
        """社区评议: recommend or not, with reasons."""
        return self._step(
            request,
            AssistanceReviewSerializer,
            lambda i, d: services.review(
                request.user, i, recommended=d["recommended"], opinion=d["opinion"]
            ),
        )

    @extend_schema(request=AssistanceDecideSerializer, responses=AssistanceApplicationSerializer)
    @action(detail=True, methods=["post"])
    def decide(self, request, pk=None):  # type: ignore[no-untyped-def]
        """街道审批: approve (amount, dates) or reject, with reasons."""
        return self._step(
            request,
            AssistanceDecideSerializer,
            lambda i, d: services.decide(
                request.user,
                i,
                approved=d["approved"],
                reason=d["reason"],
                amount=d.get("amount"),
                start_date=d.get("start_date"),
                end_date=d.get("end_date"),
            ),
        )

    @extend_schema(request=AssistanceRecheckSerializer, responses=AssistanceApplicationSerializer)
    @action(detail=True, methods=["post"])
    def recheck(self, request, pk=None):  # type: ignore[no-untyped-def]
        """复核 (低保 yearly): continue (optionally a new amount) or end."""
        return self._step(
            request,
            AssistanceRecheckSerializer,
            lambda i, d: services.recheck(
                request.user, i, continue_=d["continues"], note=d["note"], amount=d.get("amount")
            ),
        )

    @extend_schema(request=AssistanceNoteSerializer, responses=AssistanceApplicationSerializer)
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):  # type: ignore[no-untyped-def]
        """撤回 before the decision."""
        return self._step(
            request,
            AssistanceNoteSerializer,
            lambda i, d: services.withdraw(request.user, i, note=d.get("note", "")),
        )

    @extend_schema(methods=["GET"], request=None, responses=AssistanceDocumentSerializer(many=True))
    @extend_schema(
        methods=["POST"],
        request={"multipart/form-data": AssistanceDocumentUploadSerializer},
        responses={201: AssistanceDocumentSerializer, 200: AssistanceDocumentSerializer},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def documents(self, request, pk=None):  # type: ignore[no-untyped-def]
        """申请材料: GET lists the documents (name, type, size; the file needs an unmask
        grant); POST attaches one (JPEG, PNG, WebP or PDF, checked by content, ≤ 10 MB;
        ``client_uuid``: a retry returns the stored one, 200)."""
        app = self.get_object()  # 404 outside the caller's territory
        ctx = {"request": request}
        if request.method == "GET":
            rows = app.attachments.all()
            return Response(AssistanceDocumentSerializer(rows, many=True, context=ctx).data)
        body = AssistanceDocumentUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        up = checked_upload(d["file"], "file", max_bytes=documents.MAX_DOCUMENT_BYTES)
        out = documents.attach(
            request.user, app.pk, up, d["name"], client_uuid=d.get("client_uuid")
        )
        return Response(
            AssistanceDocumentSerializer(out.document, context=ctx).data,
            status=status.HTTP_201_CREATED if out.created else status.HTTP_200_OK,
        )


# ---------------------------------------------------------------- 流动人口 (item 3)
MIGRANT_FIELDS = list(assistance_sync.MIGRANT_DETAILS)


class MigrantSerializer(serializers.ModelSerializer):
    resident_name = serializers.CharField(source="resident.name", read_only=True)
    household = serializers.IntegerField(
        source="resident.household_id", read_only=True, allow_null=True
    )
    home_contact_phone = serializers.SerializerMethodField()

    class Meta:
        model = Migrant
        fields = list(assistance_sync.MIGRANT_FIELDS)
        read_only_fields = fields

    def get_home_contact_phone(self, obj: Migrant) -> str:
        if _unmasked(self.context):
            return obj.home_contact_phone
        return mask_phone(obj.home_contact_phone) if obj.home_contact_phone else ""

    def to_representation(self, instance: Migrant) -> dict:  # type: ignore[override]
        data = super().to_representation(instance)
        if _unmasked(self.context):
            return data
        # a phone typed in the free text is masked like home_contact_phone (as the feed)
        return assistance_sync.masked_migrant(data, instance.home_contact_phone)


class MigrantDetailsSerializer(serializers.ModelSerializer):
    class Meta:
        model = Migrant
        fields = MIGRANT_FIELDS
        extra_kwargs = {f: {"required": False} for f in MIGRANT_FIELDS}


class MigrantArrivalSerializer(MigrantDetailsSerializer):
    resident = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    arrived_on = serializers.DateField()

    class Meta(MigrantDetailsSerializer.Meta):
        fields = ["resident", "arrived_on", *MIGRANT_FIELDS]


class MigrantDepartureSerializer(serializers.Serializer):
    departed_on = serializers.DateField()
    departed_to = serializers.CharField(required=False, allow_blank=True, max_length=200)


class MigrantFlowsSerializer(serializers.Serializer):
    month = serializers.CharField()
    arrived = serializers.IntegerField()
    departed = serializers.IntegerField()
    present = serializers.IntegerField()
    permits_expiring = serializers.IntegerField()


class MigrantViewSet(
    UnmaskAuditMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """流动人口: arrival (POST), details (PATCH), departure, monthly flows. Staff tiers only."""

    base_queryset = Migrant.objects.all()
    serializer_class = MigrantSerializer
    audit_object_type = "migrant"
    audit_fields = ("home_contact_phone",)
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Migrant.objects.none()
        qs = Migrant.objects.select_related("resident")
        if tier_for(self.request.user) < Tier.STAFF:
            return qs.none()
        qs = staff_scope(request_scope(self.request)).filter(qs)
        if self.request.query_params.get("present") in ("1", "true"):
            qs = qs.filter(departed_on__isnull=True)
        return qs

    def _out(self, migrant: Migrant, code: int = status.HTTP_200_OK) -> Response:
        data = MigrantSerializer(migrant, context={"request": self.request}).data
        return Response(data, status=code)

    @extend_schema(request=MigrantArrivalSerializer, responses={201: MigrantSerializer})
    def create(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        """来: record an arrival (the grid's members get it in their inbox)."""
        if tier_for(request.user) < Tier.STAFF:
            raise services.NotAllowed("neighbours' roles do not record migrants")
        body = MigrantArrivalSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = dict(body.validated_data)
        households = staff_scope(request_scope(request)).filter(Household.objects.all())
        resident = Resident.objects.filter(pk=d.pop("resident"), household__in=households).first()
        if resident is None:
            raise _not_found("resident")
        migrant = migrants.record_arrival(request.user, resident, d.pop("arrived_on"), **d)
        return self._out(migrant, status.HTTP_201_CREATED)

    @extend_schema(request=MigrantDetailsSerializer, responses=MigrantSerializer)
    def partial_update(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        """Details: 居住证, contact at home, work, children's needs, training."""
        migrant = self.get_object()
        services._require(request.user, migrant.resident.household, "submit")
        body = MigrantDetailsSerializer(migrant, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        body.save()
        return self._out(self.get_queryset().get(pk=migrant.pk))

    def update(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self.partial_update(request, *args, **kwargs)

    @extend_schema(request=MigrantDepartureSerializer, responses=MigrantSerializer)
    @action(detail=True, methods=["post"])
    def depart(self, request, pk=None):  # type: ignore[no-untyped-def]
        """走: the migrant left (date, where to)."""
        migrant = self.get_object()
        body = MigrantDepartureSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        migrants.record_departure(
            request.user,
            migrant.pk,
            body.validated_data["departed_on"],
            body.validated_data.get("departed_to", ""),
        )
        return self._out(self.get_queryset().get(pk=migrant.pk))

    @extend_schema(request=None, responses=MigrantFlowsSerializer)
    @action(detail=False, methods=["get"])
    def flows(self, request):  # type: ignore[no-untyped-def]
        """Monthly inflow/outflow in the caller's territory (``?month=YYYY-MM``)."""
        raw = request.query_params.get("month") or timezone.localdate().strftime("%Y-%m")
        try:
            first = date.fromisoformat(raw + "-01")
        except ValueError:
            raise ValidationError({"month": ["must be YYYY-MM"]}) from None
        nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        last = date.fromordinal(nxt.toordinal() - 1)
        return Response({"month": raw, **migrants.flows(self.get_queryset(), first, last)})


# ---------------------------------------------------------------- document files
class AssistanceDocumentFileView(APIView):
    """A document of an application, for a caller who sees the application and holds an
    unmask grant (``?unmask=1``): the document tells income, health or hardship, so it is a
    clear read of a sensitive value and each download is audited. Without a grant 403;
    outside the caller's territory (or for neighbours' roles) 404."""

    content_negotiation_class = AnyAccept

    @extend_schema(
        parameters=[
            OpenApiParameter("unmask", OpenApiTypes.STR, description="1 (an active grant)")
        ],
        responses={
            200: OpenApiResponse(
                response=OpenApiTypes.BINARY,
                description="The file; images inline, PDF as an attachment (type from content).",
            ),
            304: None,
            403: OpenApiTypes.OBJECT,
            404: OpenApiTypes.OBJECT,
        },
    )
    def get(self, request, app_id: int, pk: int) -> HttpResponse:  # type: ignore[no-untyped-def]
        apps = services.visible_applications(request_scope(request), request.user)
        doc = (
            ApplicationDocument.objects.filter(
                pk=pk, application_id=app_id, application__in=apps.values("pk")
            )
            .only("id", "application_id", "file", "sha256")
            .first()
        )
        if doc is None:
            raise NotFound()
        grant = unmask_grant(request)
        if grant is None:
            raise PermissionDenied(
                "a document is shown only under an unmask grant: POST /api/v1/privacy/grants/ "
                "with a reason, then add ?unmask=1"
            )
        resp = serve(doc.file, f"assistance-{app_id}-{doc.pk}", doc.sha256, request)
        if resp.status_code == 200:
            record_unmasked_reads(
                request.user,
                "assistance_document",
                [doc.pk],
                ["file"],
                grant,
                ip=request.META.get("REMOTE_ADDR"),
            )
        return resp


# ---------------------------------------------------------------- phone: feed and batch
class AssistancePurgeSerializer(serializers.Serializer):
    applications = serializers.ListField(
        child=serializers.IntegerField(), help_text="delete these applications from the phone"
    )
    migrants = serializers.ListField(
        child=serializers.IntegerField(), help_text="delete these migrants from the phone"
    )


class AssistanceFeedSerializer(serializers.Serializer):
    cursor = serializers.CharField(help_text="send as ?since= next time (opaque)")
    has_more = serializers.BooleanField(help_text="call again at once with the new cursor")
    territory_changed = serializers.BooleanField(
        help_text="this page belongs to a territory change (hand-over, post, boundary, tier)"
    )
    applications = AssistanceApplicationSerializer(many=True)
    migrants = MigrantSerializer(many=True)
    purge = AssistancePurgeSerializer(
        help_text="what the phone held and may no longer hold: delete it (apply first)"
    )


def _staff_only(request) -> None:  # type: ignore[no-untyped-def]
    if tier_for(request.user) < Tier.STAFF:
        raise PermissionDenied("people's services are for grid, community and street staff")


class AssistanceChangesView(APIView):
    """The phone's feed of people's services in the caller's grids: the applications (with
    their events and documents' metadata) and the migrants (arrivals, departures, details) of
    households in the staff part of their territory. Without ``since`` all of them, with it
    what was saved after it; replace rows by ``id``. ``limit`` rows per stream (1–500).
    After a territory change (hand-over, a post left or new, a building moved to another
    grid, a tier that no longer allows the data) ``purge`` lists the applications and
    migrants to delete, as the main feed's purge (docs/sync.md). Income, amounts and the home
    contact's phone are always masked here. Neighbours' roles get 403 (a member who just lost
    their staff post gets the purge once, then 403)."""

    @extend_schema(
        parameters=batch.FEED_PARAMETERS,
        responses={200: AssistanceFeedSerializer},
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        from gridsvc.visits.sync import BadCursor

        limit = batch.feed_limit(request.query_params)
        try:
            body = assistance_sync.changes(
                request.user,
                request.query_params.get("since"),
                limit,
                absolute=request.build_absolute_uri,
            )
        except services.NotAllowed as exc:
            raise PermissionDenied(str(exc.message)) from None
        except BadCursor as exc:
            raise ValidationError({"since": str(exc)}) from None
        return Response(body)


class AssistanceBatchApplicationSerializer(serializers.Serializer):
    household = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    kind = serializers.ChoiceField(choices=Kind.choices)
    applicant = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, allow_null=True
    )
    visit = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False, allow_null=True)
    visit_uuid = serializers.UUIDField(
        required=False, allow_null=True, help_text="the visit's client_uuid (not yet synced id)"
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    made_at = ClientDateTimeField(
        required=False, allow_null=True, help_text="when it was made on the phone (the clock)"
    )


class AssistanceBatchDepartureSerializer(serializers.Serializer):
    migrant = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, allow_null=True
    )
    resident = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, allow_null=True
    )
    departed_on = serializers.DateField()
    departed_to = serializers.CharField(required=False, allow_blank=True, max_length=200)

    def validate(self, attrs: dict) -> dict:
        if attrs.get("migrant") is None and attrs.get("resident") is None:
            raise ValidationError({"migrant": ["name the migrant (or the resident)"]})
        return attrs


BATCH_SERIALIZERS = {
    "application": AssistanceBatchApplicationSerializer,
    "arrival": MigrantArrivalSerializer,
    "departure": AssistanceBatchDepartureSerializer,
}
AssistanceBatchSerializer, AssistanceBatchResultSerializer = batch.batch_serializers(
    "Assistance",
    BATCH_SERIALIZERS,
    "application: {household, kind, applicant?, visit? or visit_uuid?, reason?, made_at?}; "
    "arrival: as POST /migrants/ {resident, arrived_on, permit?, …}; "
    "departure: {migrant or resident, departed_on, departed_to?}",
)


class AssistanceBatchView(APIView):
    """The phone's offline batch of people's services: ``application`` (申请 started on a
    visit), ``arrival`` and ``departure`` (流动人口), each with its ``client_uuid``. One result
    per item, in order — ``accepted`` (stored now, ``id``), ``duplicate`` (that
    ``client_uuid`` was stored before, ``id``), ``rejected`` (``errors``); one bad item never
    loses the others. Ids are resolved in the staff part of the caller's territory (a foreign
    one is rejected "not found"). Send an ``Idempotency-Key``: a retried batch answers as the
    first time. Neighbours' roles get 403."""

    @extend_schema(
        request=AssistanceBatchSerializer, responses={200: AssistanceBatchResultSerializer}
    )
    def post(self, request):  # type: ignore[no-untyped-def]
        _staff_only(request)
        body = batch.run_batch(
            request.data,
            AssistanceBatchSerializer,
            parse=lambda kind, data, key: BATCH_SERIALIZERS[kind](data=data),
            store=lambda kind, data, key: assistance_sync.record_offline(
                request.user, kind, dict(data), key
            ),
            refused=services.AssistanceError,
        )
        return Response(body)


urlpatterns: list = [
    path("assistance/changes/", AssistanceChangesView.as_view(), name="assistance-changes"),
    path("assistance/batch/", AssistanceBatchView.as_view(), name="assistance-batch"),
    path(
        "assistance/<int:app_id>/documents/<int:pk>/file/",
        AssistanceDocumentFileView.as_view(),
        name="assistance-document-file",
    ),
]

__all__ = ["ApplicationViewSet", "MigrantViewSet", "Status", "register"]
