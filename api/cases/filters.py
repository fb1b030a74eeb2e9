"""Query-string filters of the cases API as django-filter FilterSets (validation and the
OpenAPI schema from one definition; a bad value is 400 naming the parameter)."""

from __future__ import annotations

from django import forms
from django.db.models import F, Q
from django.utils import timezone
from django_filters import rest_framework as filters
from django_filters.widgets import BooleanWidget
from rest_framework.exceptions import ValidationError

from api.fields import ClientDateTimeFilter
from gridsvc.cases.figures import overdue
from gridsvc.cases.models import (
    OPEN_STATUSES,
    Case,
    CaseRequest,
    Status,
)


class _StrictBooleanWidget(BooleanWidget):
    """Like django-filter's, but an unknown word reaches the field (and is refused) instead of
    being read as "no filter"."""

    def value_from_datadict(self, data, files, name):  # type: ignore[no-untyped-def]
        raw = data.get(name)
        value = super().value_from_datadict(data, files, name)
        return raw if value is None and raw not in (None, "") else value


class _StrictBooleanField(forms.NullBooleanField):
    widget = _StrictBooleanWidget

    def to_python(self, value):  # type: ignore[no-untyped-def]
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return value
        raise forms.ValidationError("true or false (1 or 0)", code="invalid")

    def validate(self, value):  # type: ignore[no-untyped-def]
        pass


class BooleanFilter(filters.BooleanFilter):
    """``true``/``false`` (or ``1``/``0``); any other value is 400 naming the parameter."""

    field_class = _StrictBooleanField

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("widget", _StrictBooleanWidget)
        super().__init__(*args, **kwargs)


class CaseOrdering(filters.OrderingFilter):
    """``ordering=``: cases without a deadline come last either way; ties by age, then id."""

    def filter(self, qs, value):  # type: ignore[no-untyped-def]
        if not value:
            return qs
        order = []
        for param in value:
            field = self.get_ordering_value(param)
            expr = F(field.lstrip("-"))
            desc = field.startswith("-")
            order.append(expr.desc(nulls_last=True) if desc else expr.asc(nulls_last=True))
        return qs.order_by(*order, "reported_at", "id")


class CaseFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=Status.choices)
    category = filters.CharFilter(method="by_category")
    kind = filters.ChoiceFilter(choices=Case._meta.get_field("kind").choices)
    grid = filters.NumberFilter(help_text="grid id")
    community = filters.NumberFilter(help_text="community id")
    card = filters.ChoiceFilter(choices=[("yellow", "yellow"), ("red", "red")])
    since = ClientDateTimeFilter(
        field_name="reported_at", lookup_expr="gte", help_text="reported at or after this instant"
    )
    until = ClientDateTimeFilter(
        field_name="reported_at", lookup_expr="lt", help_text="reported before this instant"
    )
    updated_since = ClientDateTimeFilter(
        method="by_updated_since",
        help_text="changed at or after this instant (ISO 8601; updated_at, bumped by every "
        "action and report): the page's live-update poll; oldest change first unless ordering",
    )
    open = BooleanFilter(method="by_open")
    overdue = BooleanFilter(method="by_overdue")
    mine = BooleanFilter(method="by_mine")
    level = filters.CharFilter()
    bbox = filters.CharFilter(method="by_bbox")
    q = filters.CharFilter(
        method="by_q",
        help_text="search: case number, title/description, category, building/compound/grid "
        "(every word must match; parties and residents are never searched; descriptions, and "
        "titles for a word of 5+ digits, only of the cases you handle or reported, as others "
        "show you that text masked)",
    )
    ordering = CaseOrdering(
        fields=(
            ("due_at", "deadline"),
            ("priority", "priority"),
            ("reported_at", "created"),
        ),
        help_text="sort: deadline (soonest first, none last), priority (紧急 first), created "
        "(oldest first, i.e. by age); a leading - reverses; comma-separated for ties",
    )

    class Meta:
        model = Case
        fields = ["status", "category", "kind", "grid", "community", "card", "level"]

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None) -> None:  # type: ignore[no-untyped-def]
        # Only the filters the query string names are copied and get a form field: a filter
        # that is not given filters nothing, and copying and validating all of them on every
        # list (a deep copy of each filter and of its form field) cost a request more than
        # its SQL (issue 19). A widget's own keys (``name_min`` …) count as naming it.
        if data is not None and prefix is None:
            keys = list(data.keys())
            self.base_filters = {
                name: f
                for name, f in type(self).base_filters.items()  # type: ignore[misc, has-type]
                if any(k == name or k.startswith(name + "_") for k in keys)
            }
        super().__init__(data, queryset, request=request, prefix=prefix)

    def by_category(self, qs, name, value):  # type: ignore[no-untyped-def]
        codes = [v for v in value.split(",") if v]
        ids = [int(v) for v in codes if v.isdigit()]
        return qs.filter(
            Q(category__code__in=codes)
            | Q(category__parent__code__in=codes)
            | Q(category_id__in=ids)
            | Q(category__parent_id__in=ids)
        )

    def by_open(self, qs, name, value):  # type: ignore[no-untyped-def]
        return (
            qs.filter(status__in=OPEN_STATUSES) if value else qs.exclude(status__in=OPEN_STATUSES)
        )

    def by_overdue(self, qs, name, value):  # type: ignore[no-untyped-def]
        q = overdue(timezone.now())  # the figure's definition (gridsvc.cases.figures)
        return qs.filter(q) if value else qs.exclude(q)

    def by_q(self, qs, name, value):  # type: ignore[no-untyped-def]
        from gridsvc.cases.search import search_cases

        return search_cases(qs, value, getattr(self.request, "user", None))

    def by_mine(self, qs, name, value):  # type: ignore[no-untyped-def]
        return qs.filter(handler=self.request.user) if value else qs

    def by_updated_since(self, qs, name, value):  # type: ignore[no-untyped-def]
        qs = qs.filter(updated_at__gte=value)  # Case.updated_at: indexed, auto_now
        return qs if self.data.get("ordering") else qs.order_by("updated_at", "id")

    def by_bbox(self, qs, name, value):  # type: ignore[no-untyped-def]
        from django.contrib.gis.geos import Polygon

        try:
            x0, y0, x1, y1 = (float(v) for v in value.split(","))
        except ValueError:
            raise ValidationError({"bbox": "minLon,minLat,maxLon,maxLat"}) from None
        if not (x0 < x1 and y0 < y1):
            raise ValidationError({"bbox": "min must be below max"})
        crs = self.request.query_params.get("crs") if self.request else None
        if crs:  # the box is in ``crs`` like the output: its WGS84 envelope
            from geo.crs import UnsupportedCRS, to_wgs84

            try:
                corners = [to_wgs84(x, y, crs) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
            except UnsupportedCRS as exc:
                raise ValidationError({"crs": str(exc)}) from None
            x0, y0 = min(c[0] for c in corners), min(c[1] for c in corners)
            x1, y1 = max(c[0] for c in corners), max(c[1] for c in corners)
        return qs.filter(location__intersects=Polygon.from_bbox((x0, y0, x1, y1)))


class CaseRequestFilter(filters.FilterSet):
    """``/case-requests/?state=``."""

    state = filters.ChoiceFilter(choices=CaseRequest.State.choices)


class FollowUpFilter(filters.FilterSet):
    """``/follow-ups/``: yours unless ``all``; ``done`` true or false."""

    all = BooleanFilter(
        method="everyone", help_text="every follow-up in your territory, not only yours"
    )
    done = BooleanFilter(field_name="done_at", lookup_expr="isnull", exclude=True)

    def everyone(self, qs, name, value):  # type: ignore[no-untyped-def]
        return qs  # the default (only yours) is applied in filter_queryset

    def filter_queryset(self, queryset):  # type: ignore[no-untyped-def]
        qs = super().filter_queryset(queryset)
        if not self.form.cleaned_data.get("all"):
            qs = qs.filter(assigned_to=self.request.user)
        return qs


class InboxFilter(filters.FilterSet):
    """``/inbox/?unread=``."""

    unread = BooleanFilter(
        field_name="read_at", lookup_expr="isnull", help_text="true: only the unread"
    )


DISPATCH_KINDS = ["all", "unrouted", "overdue", "flagged"]


class DispatchQueueFilter(CaseFilter):
    """The dispatch queue: ``kind`` picks the queue (unrouted, overdue, flagged or all of them),
    and every filter of the case list narrows it — ``q``, ``grid``, ``community``,
    ``category`` … — so the desk's place and category filters apply to the queue as to the
    list. Without ``ordering`` the queue is soonest deadline first."""

    kind = filters.ChoiceFilter(
        choices=[(k, k) for k in DISPATCH_KINDS],
        method="in_queue",
        help_text="unrouted | overdue | flagged | all (default)",
    )

    def in_queue(self, qs, name, value):  # type: ignore[no-untyped-def]
        return qs  # the queue is chosen in filter_queryset, also without kind

    def filter_queryset(self, queryset):  # type: ignore[no-untyped-def]
        from gridsvc.cases.services import dispatch_queue

        kind = self.form.cleaned_data.get("kind") or "all"
        return super().filter_queryset(dispatch_queue(queryset, kind))
