"""Serializers of the cases API: what a case, its events, requests, follow-ups, mediation
record and inbox messages look like, and the bodies and query strings the views accept (one
definition serves the validation and the OpenAPI schema)."""

from __future__ import annotations

import functools
import threading
import types
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone, translation
from drf_spectacular.utils import (
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.fields import empty

from api.fields import ClientDateTimeField
from api.files import file_url
from gridsvc.cases import services
from gridsvc.cases.assessment import FIGURES as ASSESSMENT_FIGURES
from gridsvc.cases.assessment import GROUPS as ASSESSMENT_GROUPS
from gridsvc.cases.models import (
    RUNNING_STATUSES,
    Case,
    CaseEvent,
    CaseRequest,
    Category,
    Department,
    FollowUp,
    MediationRecord,
)
from gridsvc.cases.textmask import (
    CASE_TEXT_FIELDS,
    case_text_is_clear,
    mask_party_name,
    masked_case_text,
    masked_case_title,
)
from gridsvc.chain.services import LEVEL_BY_NAME

mask_name = mask_party_name  # 张**: a party's name masked (gridsvc.cases.textmask)


def mask_case_text(out: dict[str, Any], parties: list | None) -> dict[str, Any]:
    """``out`` (a case as the API writes it) with its title and free text masked for a reader
    who sees the parties masked (:mod:`gridsvc.cases.textmask`)."""
    out["title"] = masked_case_title(out.get("title"))
    for name in CASE_TEXT_FIELDS:
        if name in out:
            out[name] = masked_case_text(out[name], parties)
    return out


#: a category's fields as the case categories and the rule admin (api.rules) show them
CATEGORY_FIELDS = [
    "id",
    "code",
    "name",
    "kind",
    "parent",
    "start_level",
    "notify",
    "open_conditions",
    "close_conditions",
    "duplicate_radius_m",
    "duplicate_days",
]


class CategorySerializer(serializers.ModelSerializer):
    start_level = serializers.CharField(source="effective_start_level")
    open_conditions = serializers.CharField(source="effective_open_conditions")
    close_conditions = serializers.CharField(source="effective_close_conditions")
    time_limits = serializers.SerializerMethodField()

    class Meta:
        model = Category
        fields = [*CATEGORY_FIELDS, "time_limits"]

    def get_time_limits(self, obj: Category) -> list[dict]:
        cat: Category | None = obj
        while cat is not None:
            rows = list(cat.time_limits.all())
            if rows:
                return [
                    {
                        "stage": t.stage,
                        "level": t.level,
                        "amount": t.amount,
                        "unit": t.unit,
                    }
                    for t in rows
                ]
            cat = cat.parent
        return []


class DepartmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Department
        fields = ["id", "code", "name", "contact"]


class _Fallback(Exception):
    """A row the fast path does not write (a missing related object): DRF writes it."""


_SIMPLE_FIELDS = (
    serializers.CharField,
    serializers.IntegerField,
    serializers.BooleanField,
    serializers.ChoiceField,
    serializers.DateField,
    serializers.DateTimeField,
)
_CALLABLE = (types.MethodType, types.FunctionType, functools.partial)
_Plan = list[tuple[str, Callable[[Any, Any], Any]]]
_PLANS: dict[type, _Plan | None] = {}


def _field_getter(
    model: type, name: str, field: serializers.Field
) -> Callable[[Any, Any], Any] | None:
    """How DRF writes one read-only field, without building the field per request: the
    attribute (followed along ``source``, a method called), None as None, else the field
    class's own ``to_representation`` (these classes use neither parent nor context)."""
    if isinstance(field, serializers.SerializerMethodField):
        method = field.method_name
        return lambda ser, obj: getattr(ser, method)(obj)
    if isinstance(field, serializers.PrimaryKeyRelatedField):
        if field.pk_field is not None or len(field.source_attrs) != 1:
            return None
        attname = model._meta.get_field(field.source_attrs[0]).attname  # type: ignore[attr-defined]
        return lambda ser, obj: getattr(obj, attname)
    if isinstance(field, serializers.ListField):
        child = field.child
        if type(child) is not serializers.CharField:
            return None

        def to_rep(v: Any) -> Any:
            return [child.to_representation(i) if i is not None else None for i in v]

    elif isinstance(field, _SIMPLE_FIELDS):
        to_rep = field.to_representation  # type: ignore[assignment]
    else:
        return None
    attrs = tuple(field.source_attrs)

    def get(ser: Any, obj: Any) -> Any:
        v = obj
        for a in attrs:
            if v is None:
                raise _Fallback
            v = getattr(v, a)
        if isinstance(v, _CALLABLE):
            v = v()
        return None if v is None else to_rep(v)

    return get


def _plan_for(cls: type[serializers.ModelSerializer]) -> _Plan | None:
    """The fields of ``cls`` as (name, getter), built once per process from one instance's
    fields (DRF rebuilds them for every request: a deep copy of the declared fields and the
    model's mapped again). None when a field is of a kind the fast path does not know."""
    if cls in _PLANS:
        return _PLANS[cls]
    model = cls.Meta.model
    plan: _Plan | None = []
    for name, field in cls().fields.items():
        if field.write_only:
            continue
        getter = _field_getter(model, name, field)
        if getter is None:
            plan = None
            break
        plan.append((name, getter))  # type: ignore[union-attr]
    _PLANS[cls] = plan
    return plan


def write_parties(parties: list | None, clear: bool) -> list[dict]:
    """A case's parties 当事人 as the API writes them: in clear, or each name masked (张*) and
    the phone and id number left out."""
    out = []
    for p in parties or []:
        p = dict(p) if isinstance(p, dict) else {"name": str(p)}
        if not clear:
            p["name"] = mask_name(str(p.get("name", "")))
            p.pop("phone", None)
            p.pop("id_number", None)
        out.append(p)
    return out


class CaseSerializer(serializers.ModelSerializer):
    category_code = serializers.CharField(source="category.code", read_only=True)
    category_name = serializers.CharField(source="category.name", read_only=True)
    status_label = serializers.CharField(source="get_status_display", read_only=True)
    level_label = serializers.SerializerMethodField()
    handler_name = serializers.SerializerMethodField()
    department_name = serializers.SerializerMethodField()
    lon = serializers.SerializerMethodField()
    lat = serializers.SerializerMethodField()
    flags = serializers.ListField(child=serializers.CharField(), read_only=True)
    overdue = serializers.SerializerMethodField()
    allowed_actions = serializers.SerializerMethodField()
    parties = serializers.SerializerMethodField()
    conditions = serializers.SerializerMethodField()
    interpreter = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = [
            "id",
            "number",
            "kind",
            "category",
            "category_code",
            "category_name",
            "title",
            "description",
            "parties",
            "priority",
            "flags",
            "source",
            "lon",
            "lat",
            "located_by",
            "household",
            "unit",
            "building",
            "compound",
            "grid",
            "community",
            "street",
            "suggested_grid",
            "status",
            "status_label",
            "level",
            "level_label",
            "handler",
            "handler_name",
            "department",
            "department_name",
            "route_reason",
            "reported_at",
            "assigned_at",
            "resolved_at",
            "closed_at",
            "updated_at",
            "due_at",
            "due_stage",
            "yellow_at",
            "handle_due_at",
            "deadline_error",
            "overdue",
            "card",
            "supervised_at",
            "outcome",
            "resolved_level",
            "rejection_reason",
            "on_the_spot",
            "hold_until",
            "merged_into",
            "escalations",
            "reopened_count",
            "reworked_count",
            "sent_back_count",
            "extended_count",
            "conditions",
            "interpreter",
            "allowed_actions",
            "version",
        ]
        read_only_fields = fields

    def to_representation(self, instance: Case) -> dict[str, Any]:
        """What DRF writes, field for field, from a plan made once per process instead of
        fields built for every request (a list of cases spent most of its time there)."""
        plan = _plan_for(type(self))
        out = None
        if plan is not None:
            try:
                out = {name: get(self, instance) for name, get in plan}
            except (_Fallback, AttributeError, ObjectDoesNotExist):
                pass  # DRF writes this row (and says what is wrong with it)
        if out is None:
            out = super().to_representation(instance)
        if not self._clear(instance):  # the parties masked: their text too
            mask_case_text(out, instance.parties)
        return out

    def _clear(self, obj: Case) -> bool:
        """Whether the reader sees the parties, and the case's text, in clear."""
        request = self.context.get("request")
        user = getattr(request, "user", None)
        return case_text_is_clear(user, obj.handler_id, obj.reported_by_id)

    def get_level_label(self, obj: Case) -> str:
        return LEVEL_BY_NAME[obj.level].label if obj.level in LEVEL_BY_NAME else ""

    def get_handler_name(self, obj: Case) -> str | None:
        if not obj.handler_id:
            return None
        # a report's answer: the handler's name as the routing read it (chain_holder_names)
        known = self.context.get("handler_names")
        if known and obj.handler_id in known and not Case.handler.is_cached(obj):
            return known[obj.handler_id]
        return str(obj.handler)

    def get_department_name(self, obj: Case) -> str | None:
        return obj.department.name if obj.department_id else None

    def get_lon(self, obj: Case) -> float:
        return self._xy(obj)[0]

    def get_lat(self, obj: Case) -> float:
        return self._xy(obj)[1]

    def _xy(self, obj: Case) -> tuple[float, float]:
        from geo.crs import from_wgs84

        crs = self.context.get("crs", "wgs84")
        x, y = from_wgs84(obj.location.x, obj.location.y, crs)
        return round(x, 7), round(y, 7)

    def get_overdue(self, obj: Case) -> bool:
        return bool(obj.due_at and obj.status in RUNNING_STATUSES and obj.due_at < timezone.now())

    def get_allowed_actions(self, obj: Case) -> list[str]:
        return services.allowed_actions(obj)

    def get_parties(self, obj: Case) -> list[dict]:
        """Parties' names are personal data: in clear for the handler and the managers of the
        case, masked (张*) for the rest of the territory."""
        return write_parties(obj.parties, self._clear(obj))

    def get_interpreter(self, obj: Case) -> dict | None:
        """On the answer to an assignment (assign, take): whether the household needs an
        interpreter and the community's 民族语言翻译员 for its languages; else null."""
        return getattr(obj, "assignment_interpreter", None) or None

    def get_conditions(self, obj: Case) -> dict:
        return {
            "open": obj.category.effective_open_conditions,
            "close": obj.category.effective_close_conditions,
        }


# The columns a case of a list is written from, as a values() row (see case_rows_payload):
# the case's own, its category's and the category's parent's conditions, the handler's name
# and the department's, joined in the page's one query; ``location_x``/``location_y`` are
# added as ST_X/ST_Y (no geometry object built per row).
CASE_ROW = (
    "id",
    "number",
    "kind",
    "category_id",
    "category__code",
    "category__name",
    "title",
    "description",
    "parties",
    "priority",
    "ethnic_religious",
    "group_incident",
    "petition_risk",
    "source",
    "located_by",
    "household_id",
    "unit_id",
    "building_id",
    "compound_id",
    "grid_id",
    "community_id",
    "street_id",
    "suggested_grid_id",
    "status",
    "level",
    "handler_id",
    "handler__username",
    "handler__display_name",
    "department_id",
    "department__name",
    "route_reason",
    "reported_at",
    "assigned_at",
    "resolved_at",
    "closed_at",
    "updated_at",
    "due_at",
    "due_stage",
    "yellow_at",
    "handle_due_at",
    "deadline_error",
    "card",
    "supervised_at",
    "outcome",
    "resolved_level",
    "rejection_reason",
    "on_the_spot",
    "hold_until",
    "merged_into_id",
    "escalations",
    "reopened_count",
    "reworked_count",
    "sent_back_count",
    "extended_count",
    "version",
    "reported_by_id",
    "category__open_conditions",
    "category__close_conditions",
    "category__parent__open_conditions",
    "category__parent__close_conditions",
    "category__parent__parent_id",
)
_FLAGS = ("ethnic_religious", "group_incident", "petition_risk")
_STATUS_LABEL = {value: str(label) for value, label in Case._meta.get_field("status").flatchoices}
_ACTIONS_BY_STATUS: dict[str, list[str]] = {}


def case_row_coordinates() -> dict[str, Any]:
    """The ``location_x``/``location_y`` annotations a :data:`CASE_ROW` row needs."""
    from django.db.models import F, FloatField, Func

    return {
        "location_x": Func(F("location"), function="ST_X", output_field=FloatField()),
        "location_y": Func(F("location"), function="ST_Y", output_field=FloatField()),
    }


_CASE_ROWS: list[Any] = []  # the values() query of every case, built once per process


def case_rows(qs: Any) -> Any:
    """The cases of ``qs`` as :data:`CASE_ROW` rows (with :func:`case_row_coordinates`), in
    the order of ``qs``, for ``StandardPagination.paginate_values(case_rows(qs), request,
    count_qs=qs)``: when ``qs`` adds no annotation of its own, the values() query of every
    case (built once per process: resolving its 60 columns and joins cost a list more than
    writing its page), which the paginator narrows to the page's ids read from ``qs``."""
    order = qs.query.order_by or Case._meta.ordering
    if qs.query.annotations or qs.query.extra or qs.query.distinct_fields:
        return qs.values(*CASE_ROW, **case_row_coordinates())
    if not _CASE_ROWS:
        _CASE_ROWS.append(Case.objects.values(*CASE_ROW, **case_row_coordinates()))
    return _CASE_ROWS[0].order_by(*order)


def case_rows_payload(rows: list[dict], request: Any, crs: str = "wgs84") -> list[dict]:
    """Cases as :class:`CaseSerializer` writes them (to the byte, masked parties included:
    tests/test_request_cost_case_list.py holds the two equal), from :data:`CASE_ROW` rows
    with :func:`case_row_coordinates` — no model instances, no fields, no display lookups
    per row (issue 19)."""
    from geo.crs import from_wgs84

    user = getattr(request, "user", None)
    anyone = user is None
    superuser = bool(user is not None and user.is_superuser)
    uid = getattr(user, "pk", None)
    tz = timezone.get_current_timezone()
    now = timezone.now()
    running = RUNNING_STATUSES
    deeper: dict[tuple[int, str], str] = {}  # a grandparent category's conditions, by id

    def moment(v: Any) -> str | None:
        if not v:
            return None
        out = v.astimezone(tz).isoformat()
        return out[:-6] + "Z" if out.endswith("+00:00") else out

    def condition(r: dict, which: str) -> str:
        own = r[f"category__{which}_conditions"]
        if own:
            return own
        parent = r[f"category__parent__{which}_conditions"]
        if parent:
            return parent
        grand = r["category__parent__parent_id"]
        if parent is None or grand is None:
            return ""
        key = (grand, which)
        if key not in deeper:
            cat = Category.objects.get(pk=grand)
            deeper[key] = getattr(cat, f"effective_{which}_conditions")
        return deeper[key]

    out = []
    for r in rows:
        status = r["status"]
        level = r["level"]
        handler_id = r["handler_id"]
        actions = _ACTIONS_BY_STATUS.get(status)
        if actions is None:
            actions = _ACTIONS_BY_STATUS[status] = [
                name for name, a in services.ACTIONS.items() if status in a.from_statuses
            ]
        x, y = from_wgs84(r["location_x"], r["location_y"], crs)
        clear = not anyone and (superuser or handler_id == uid or r["reported_by_id"] == uid)
        title, description = r["title"], r["description"]
        outcome, rejection = r["outcome"], r["rejection_reason"]
        if not clear:  # the parties masked: their text too (gridsvc.cases.textmask)
            parties = r["parties"]
            title = masked_case_title(title)
            description = masked_case_text(description, parties)
            outcome = masked_case_text(outcome, parties)
            rejection = masked_case_text(rejection, parties)
        due_at = r["due_at"]
        hold_until = r["hold_until"]
        out.append(
            {
                "id": r["id"],
                "number": r["number"],
                "kind": r["kind"],
                "category": r["category_id"],
                "category_code": r["category__code"],
                "category_name": r["category__name"],
                "title": title,
                "description": description,
                "parties": write_parties(r["parties"], clear),
                "priority": r["priority"],
                "flags": [f for f in _FLAGS if r[f]],
                "source": r["source"],
                "lon": round(x, 7),
                "lat": round(y, 7),
                "located_by": r["located_by"],
                "household": r["household_id"],
                "unit": r["unit_id"],
                "building": r["building_id"],
                "compound": r["compound_id"],
                "grid": r["grid_id"],
                "community": r["community_id"],
                "street": r["street_id"],
                "suggested_grid": r["suggested_grid_id"],
                "status": status,
                "status_label": _STATUS_LABEL.get(status, status),
                "level": level,
                "level_label": LEVEL_BY_NAME[level].label if level in LEVEL_BY_NAME else "",
                "handler": handler_id,
                "handler_name": (r["handler__display_name"] or r["handler__username"])
                if handler_id
                else None,
                "department": r["department_id"],
                "department_name": r["department__name"] if r["department_id"] else None,
                "route_reason": r["route_reason"],
                "reported_at": moment(r["reported_at"]),
                "assigned_at": moment(r["assigned_at"]),
                "resolved_at": moment(r["resolved_at"]),
                "closed_at": moment(r["closed_at"]),
                "updated_at": moment(r["updated_at"]),
                "due_at": moment(due_at),
                "due_stage": r["due_stage"],
                "yellow_at": moment(r["yellow_at"]),
                "handle_due_at": moment(r["handle_due_at"]),
                "deadline_error": r["deadline_error"],
                "overdue": bool(due_at and status in running and due_at < now),
                "card": r["card"],
                "supervised_at": moment(r["supervised_at"]),
                "outcome": outcome,
                "resolved_level": r["resolved_level"],
                "rejection_reason": rejection,
                "on_the_spot": r["on_the_spot"],
                "hold_until": hold_until.isoformat() if hold_until else None,
                "merged_into": r["merged_into_id"],
                "escalations": r["escalations"],
                "reopened_count": r["reopened_count"],
                "reworked_count": r["reworked_count"],
                "sent_back_count": r["sent_back_count"],
                "extended_count": r["extended_count"],
                "conditions": {"open": condition(r, "open"), "close": condition(r, "close")},
                "interpreter": None,  # set only on the answer to an assignment
                "allowed_actions": list(actions),
                "version": r["version"],
            }
        )
    return out


class PartySerializer(serializers.Serializer):
    name = serializers.CharField(max_length=50)
    role = serializers.CharField(max_length=30, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=20, required=False, allow_blank=True)


class ReportSerializer(serializers.Serializer):
    """A report 上报. Give lon/lat (in ``crs``) or a GeoJSON ``location``, or a reference."""

    category = serializers.CharField(help_text="category id or code")
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    parties = PartySerializer(many=True, required=False)
    priority = serializers.IntegerField(required=False, min_value=1, max_value=4, default=3)
    flags = serializers.ListField(
        child=serializers.ChoiceField(choices=list(services.FLAGS)), required=False
    )
    lon = serializers.FloatField(required=False, min_value=-180, max_value=180)
    lat = serializers.FloatField(required=False, min_value=-90, max_value=90)
    location = serializers.JSONField(required=False)
    crs = serializers.ChoiceField(
        choices=["wgs84", "gcj02", "bd09", "cgcs2000"], required=False, default="wgs84"
    )
    household = serializers.IntegerField(required=False)
    unit = serializers.IntegerField(required=False)
    building = serializers.IntegerField(required=False)
    compound = serializers.IntegerField(required=False)
    on_the_spot = serializers.BooleanField(required=False, default=False)
    outcome = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    photos_before = serializers.ListField(child=serializers.FileField(), required=False)
    photos_after = serializers.ListField(child=serializers.FileField(), required=False)

    @functools.cached_property
    def fields(self) -> Any:  # type: ignore[override]
        """The declared fields, bound once per process, thread and language for a serializer
        that only validates a report (no instance, no context, not partial: as the report
        view makes it) instead of deep-copied and bound again for every request: validating
        keeps no state on a field but its validators' messages, formatted once in the
        language of their first refusal (DRF's lazy_format) — hence one set per language —
        so the same fields give the same data, errors and codes. Any other use (the
        schema's, with a context) binds its own copy as DRF does."""
        if self.instance is not None or self.partial or self._context:
            return super().fields
        per_language = getattr(_REPORT_FIELDS, "fields", None)
        if per_language is None:
            per_language = _REPORT_FIELDS.fields = {}
        language = translation.get_language()
        bound = per_language.get(language)
        if bound is None:  # bound to a serializer of their own, that holds no request's data
            bound = per_language[language] = super(ReportSerializer, ReportSerializer()).fields
        return bound


_REPORT_FIELDS = threading.local()  # ReportSerializer's fields by language, once per thread


class EventSerializer(serializers.ModelSerializer):
    actor_name = serializers.SerializerMethodField()
    attachments = serializers.SerializerMethodField()

    class Meta:
        model = CaseEvent
        fields = [
            "id",
            "kind",
            "from_status",
            "to_status",
            "level",
            "actor",
            "actor_name",
            "at",
            "note",
            "data",
            "attachments",
        ]

    def to_representation(self, instance: CaseEvent) -> dict[str, Any]:
        """The note masked as its case's text is, for a reader who sees the parties masked
        (the case from the context: the timeline reads it once)."""
        out = super().to_representation(instance)
        case = self.context.get("case") or instance.case
        user = getattr(self.context.get("request"), "user", None)
        if out.get("note") and not case_text_is_clear(user, case.handler_id, case.reported_by_id):
            out["note"] = masked_case_text(out["note"], case.parties)
        return out

    def get_actor_name(self, obj: CaseEvent) -> str:
        return str(obj.actor) if obj.actor_id else "系统"

    def get_attachments(self, obj: CaseEvent) -> list[dict]:
        request = self.context.get("request")
        return [
            {
                "id": a.id,
                "role": a.role,
                "size": a.size,
                "content_type": a.content_type,
                "url": file_url(a, request),  # the scoped download (api/attachments.py)
            }
            for a in obj.attachments.all()
        ]


class RequestSerializer(serializers.ModelSerializer):
    class Meta:
        model = CaseRequest
        fields = [
            "id",
            "case",
            "kind",
            "reason",
            "amount",
            "unit",
            "review_date",
            "state",
            "requested_by",
            "requested_at",
            "decided_by",
            "decided_at",
            "decision_note",
        ]
        read_only_fields = [
            "id",
            "case",
            "state",
            "requested_by",
            "requested_at",
            "decided_by",
            "decided_at",
            "decision_note",
        ]


class FollowUpSerializer(serializers.ModelSerializer):
    case_number = serializers.CharField(source="case.number", read_only=True)
    case_title = serializers.CharField(source="case.title", read_only=True)

    class Meta:
        model = FollowUp
        fields = [
            "id",
            "case",
            "case_number",
            "case_title",
            "assigned_to",
            "due_at",
            "done_at",
            "satisfied",
            "note",
        ]
        read_only_fields = fields

    def to_representation(self, instance: FollowUp) -> dict[str, Any]:
        """The case's title and the note masked as the case's text is, for a reader who sees
        the case's parties masked."""
        out = super().to_representation(instance)
        case = instance.case
        user = getattr(self.context.get("request"), "user", None)
        if not case_text_is_clear(user, case.handler_id, case.reported_by_id):
            out["case_title"] = masked_case_title(out.get("case_title"))
            out["note"] = masked_case_text(out.get("note"), case.parties)
        return out


class MediationSerializer(serializers.ModelSerializer):
    court_confirmation_deadline = serializers.DateField(read_only=True)
    parties = PartySerializer(many=True)

    class Meta:
        model = MediationRecord
        fields = [
            "parties",
            "facts",
            "issues",
            "terms",
            "performance_method",
            "performance_deadline",
            "signed_on",
            "mediator",
            "honoured",
            "honoured_checked_on",
            "honoured_note",
            "court_confirmation_applied",
            "court_confirmation_deadline",
        ]
        read_only_fields = ["mediator", "court_confirmation_deadline"]

    #: the agreement's free text, where a party's name, phone or ID number is typed again
    TEXT_FIELDS = ("facts", "issues", "terms", "honoured_note")

    def to_representation(self, instance: MediationRecord) -> dict[str, Any]:
        """The agreement as its reader may see it: in clear for the mediator, the case's
        handler and reporter (who read the case's parties in clear) and for an answer to a
        write (``context["clear"]``: the writer sent it); for any other reader in the
        territory the parties are masked as a case's are (张*, no phone or ID number) and so
        are their names, phones and ID numbers typed into the facts, issues, terms and
        follow-up note (:mod:`gridsvc.cases.textmask`)."""
        out = super().to_representation(instance)
        user = getattr(self.context.get("request"), "user", None)
        case = instance.case
        clear = bool(self.context.get("clear")) or (
            user is not None and getattr(user, "pk", None) == instance.mediator_id
        )
        if clear or case_text_is_clear(user, case.handler_id, case.reported_by_id):
            return out
        parties = [*(instance.parties or []), *(case.parties or [])]
        out["parties"] = write_parties(out.get("parties"), clear=False)
        for name in self.TEXT_FIELDS:
            if out.get(name):
                out[name] = masked_case_text(out[name], parties)
        return out

    def validate_parties(self, value: list) -> list:
        if len(value) < 2:
            raise ValidationError("a mediation agreement names at least two parties")
        return value

    def validate(self, attrs: dict) -> dict:
        signed = attrs.get("signed_on") or getattr(self.instance, "signed_on", None)
        deadline = attrs.get("performance_deadline") or getattr(
            self.instance, "performance_deadline", None
        )
        if signed and deadline and deadline < signed:
            raise ValidationError({"performance_deadline": "cannot be before the signing date"})
        if attrs.get("honoured") is not None and not attrs.get("honoured_checked_on"):
            attrs["honoured_checked_on"] = timezone.localdate()
        return attrs


def check_action_times(name: str, data: dict[str, Any]) -> None:
    """The date-times in a case action's body are ones a client may send
    (:class:`api.fields.ClientDateTimeField`, else 400 naming the field) before the rules
    see them; the body keeps them as sent (the rules read them and record them so)."""
    if name == "set_deadline" and data.get("due_at") not in (None, ""):
        try:
            ClientDateTimeField().run_validation(data["due_at"])
        except ValidationError as exc:
            raise ValidationError({"due_at": exc.detail}) from None


ACTION_BODY = inline_serializer(
    "CaseActionBody",
    {
        "note": serializers.CharField(required=False),
        "version": serializers.IntegerField(required=False),
        "member": serializers.IntegerField(required=False, help_text="assign: the member"),
        "grid": serializers.IntegerField(required=False, help_text="assign: place in grid"),
        "outcome": serializers.CharField(required=False, help_text="resolve"),
        "satisfied": serializers.BooleanField(required=False, help_text="verify"),
        "department": serializers.IntegerField(required=False, help_text="transfer"),
        "reason": serializers.CharField(required=False, help_text="reject/reopen/send_back"),
        "into": serializers.IntegerField(required=False, help_text="merge: target case"),
        "due_at": ClientDateTimeField(required=False, help_text="set_deadline"),
        "lon": serializers.FloatField(required=False),
        "lat": serializers.FloatField(required=False),
    },
)


@extend_schema_serializer(many=False)
class CaseFeatureCollectionSerializer(serializers.Serializer):
    """The case list as GeoJSON (``?format=geojson``), one page of it."""

    type = serializers.ChoiceField(choices=["FeatureCollection"])
    features = serializers.ListField(child=serializers.DictField())
    count = serializers.IntegerField(required=False)
    next = serializers.CharField(required=False, allow_null=True)


class InboxSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    title = serializers.CharField()
    body = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True)


# ---------------------------------------------------------------------------- inputs
class _RequiredBooleanField(serializers.BooleanField):
    """A boolean that must be given (a form post without it is not read as false)."""

    default_empty_html = empty


class DecideRequestSerializer(serializers.Serializer):
    """The level above decides an extension/hold/void request."""

    approve = _RequiredBooleanField()
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


ATTACHMENT_ROLES = ["photo", "before", "after", "file"]


class CaseAttachmentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="an image; a PDF for role file")
    role = serializers.ChoiceField(choices=ATTACHMENT_ROLES, default="photo")


#: The actions the dispatch desk applies to several cases at once (``reassign`` = assign).
BULK_ACTIONS = ("assign", "reassign", "escalate", "transfer", "set_deadline", "supervise")
MAX_BULK = 200


class BulkActionSerializer(serializers.Serializer):
    """``POST /dispatch/{action}/``: the cases, the versions the dispatcher saw, the action's
    fields (as for one case)."""

    ids = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=MAX_BULK)
    versions = serializers.DictField(
        child=serializers.IntegerField(),
        required=False,
        allow_null=True,
        help_text="case id → the version the dispatcher saw (as If-Match per case)",
    )
    member = serializers.IntegerField(required=False, help_text="assign/reassign")
    department = serializers.IntegerField(required=False, help_text="transfer")
    due_at = ClientDateTimeField(required=False, help_text="set_deadline")
    note = serializers.CharField(required=False, allow_blank=True)
    reason = serializers.CharField(required=False, allow_blank=True)

    def validate_versions(self, value: dict | None) -> dict[int, int]:
        try:
            return {int(k): v for k, v in (value or {}).items()}
        except ValueError:
            raise ValidationError("keys must be case ids") from None


class AssessmentQuerySerializer(serializers.Serializer):
    """``by`` and the period of the assessment (default: this month so far)."""

    by = serializers.ChoiceField(choices=list(ASSESSMENT_GROUPS), default="grid", required=False)
    since = serializers.DateField(required=False, help_text="first day (default: the 1st)")
    until = serializers.DateField(
        required=False, help_text="the day after the last (default: tomorrow)"
    )

    def validate(self, attrs: dict) -> dict:
        today = timezone.localdate()
        since = attrs.get("since") or today.replace(day=1)
        until = attrs.get("until") or today + timedelta(days=1)
        if since >= until:
            raise ValidationError({"until": "must be after since"})
        if (until - since).days > 3660:
            raise ValidationError({"until": "a period of at most ten years"})
        return {**attrs, "since": since, "until": until}


class AssessmentCasesQuerySerializer(AssessmentQuerySerializer):
    """The cases behind one figure of one row."""

    key = serializers.IntegerField(help_text="the id of the member/grid/community/department")
    figure = serializers.ChoiceField(choices=ASSESSMENT_FIGURES)


def chain_holder_names(case: Case) -> dict[int, str]:
    """The names of the members holding the levels of ``case.chain`` (as the routing read
    them: display name, else username — ``str(member)``), by member id: a new case's answer
    names its handler without loading the member again (issue 19)."""
    names: dict[int, str] = {}
    for step in case.chain or []:
        for holder in step.get("holders") or []:
            if holder.get("member_id") is not None and holder.get("name"):
                names.setdefault(holder["member_id"], holder["name"])
    return names
