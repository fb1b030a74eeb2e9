"""/api/v1/rules/…: the rules deadlines depend on, editable by the street office (规则维护).

- ``rules/calendar-days/`` a day's status (放假 / 调休上班) for a street or every street;
- ``rules/calendar-years/`` years the calendar package does not know yet (provisional or the
  official schedule entered), with the statutory holidays applied while provisional;
- ``rules/working-hours/`` a street's office hours;
- ``rules/time-limits/`` time limits per category, stage and level;
- ``rules/categories/`` category rules (start level, notify, 立案/结案条件; no delete);
- ``rules/flag-rules/`` what a case flag does.

Superusers and street dispatchers only (403 for everyone else); per-street rows are scoped to
the dispatcher's streets, all-street rows are the superuser's to change. Every change is in the
audit log (``GET /api/v1/audit/?object_type=rules.calendarday`` …) and queues the worker's
recompute of open deadlines (a deadline set by a person is kept).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission, IsAuthenticated

from api.cases.serializers import CATEGORY_FIELDS
from gridsvc.cases.models import LEVEL_CHOICES, Category, FlagRule, TimeLimit
from gridsvc.supervision.clock import WorkClock, statutory_holidays
from gridsvc.supervision.models import CalendarDay, CalendarYear, WorkingHours
from gridsvc.supervision.rules import (
    RuleEditDenied,
    check_street,
    client_ip,
    delete_rule,
    dispatcher_street_ids,
    may_edit_rules,
    save_rule,
)


class MayEditRules(BasePermission):
    message = "the rules are edited by the street office"

    def has_permission(self, request: Any, view: Any) -> bool:
        return may_edit_rules(request.user)


class _StreetScopedSerializer(serializers.ModelSerializer):
    """A per-street row: a street outside the dispatcher's streets is "not found"."""

    def validate_street(self, value: Any) -> Any:
        user = self.context["request"].user
        if value is not None and not user.is_superuser:
            if value.pk not in dispatcher_street_ids(user):
                raise serializers.ValidationError("not found")
        return value


class CalendarDaySerializer(_StreetScopedSerializer):
    class Meta:
        model = CalendarDay
        fields = ["id", "street", "date", "is_workday", "note"]


class HolidaySerializer(serializers.Serializer):
    date = serializers.DateField()
    name = serializers.CharField()


class CalendarYearSerializer(_StreetScopedSerializer):
    status = serializers.SerializerMethodField()
    statutory_holidays = serializers.SerializerMethodField()

    class Meta:
        model = CalendarYear
        fields = ["id", "street", "year", "provisional", "note", "status", "statutory_holidays"]

    @extend_schema_field(
        serializers.ChoiceField(choices=["official", "table", "provisional", "missing"])
    )
    def get_status(self, obj: CalendarYear) -> str:
        return WorkClock(obj.street_id).year_status(obj.year)

    @extend_schema_field(HolidaySerializer(many=True))
    def get_statutory_holidays(self, obj: CalendarYear) -> list[dict[str, str]]:
        days = statutory_holidays(obj.year)
        return [{"date": d.isoformat(), "name": days[d]} for d in sorted(days)]


class WorkingHoursSerializer(_StreetScopedSerializer):
    class Meta:
        model = WorkingHours
        fields = ["id", "street", "periods"]

    def validate_periods(self, value: Any) -> Any:
        ok = isinstance(value, list) and value
        for p in value if ok else []:
            if not (isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)):
                ok = False
            elif not (len(p[0]) == len(p[1]) == 5 and p[0] < p[1]):
                ok = False
        if not ok:
            raise serializers.ValidationError('a list of ["HH:MM", "HH:MM"] periods')
        return value


def _level_field(**kwargs: Any) -> serializers.CharField:
    """A chain level (unit_head … street_dispatcher) as text; checked in :func:`_check_level`
    (a plain string in the schema: the level enum is named once, by the cases API)."""
    return serializers.CharField(
        help_text="a chain level: " + ", ".join(c for c, _ in LEVEL_CHOICES), **kwargs
    )


def _check_level(value: str, blank: bool = True) -> str:
    if (value == "" and blank) or value in dict(LEVEL_CHOICES):
        return value
    raise serializers.ValidationError(f'"{value}" is not a chain level')


class TimeLimitSerializer(serializers.ModelSerializer):
    level = _level_field(allow_blank=True, required=False, default="")

    def validate_level(self, value: str) -> str:
        return _check_level(value)

    class Meta:
        model = TimeLimit
        fields = ["id", "category", "stage", "level", "amount", "unit"]


class RuleCategorySerializer(serializers.ModelSerializer):
    start_level = _level_field(allow_blank=True, required=False, default="")

    def validate_start_level(self, value: str) -> str:
        return _check_level(value)

    class Meta:
        model = Category
        fields = [*CATEGORY_FIELDS, "active"]


class FlagRuleSerializer(serializers.ModelSerializer):
    min_level = _level_field()

    def validate_min_level(self, value: str) -> str:
        return _check_level(value, blank=False)

    class Meta:
        model = FlagRule
        fields = ["id", "flag", "min_level", "notify"]


class _RuleViewSet(viewsets.ModelViewSet):
    """Saves and deletes through :mod:`gridsvc.supervision.rules` (history, street scope)."""

    permission_classes = [IsAuthenticated, MayEditRules]
    per_street = False
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet:
        qs = self.queryset.all()
        if getattr(self, "swagger_fake_view", False) or not self.per_street:
            return qs
        user = self.request.user
        if user.is_superuser:
            return qs
        return qs.filter(Q(street__isnull=True) | Q(street__in=dispatcher_street_ids(user)))

    def _check(self, street_id: int | None) -> None:
        if not self.per_street:
            return
        try:
            check_street(self.request.user, street_id)
        except RuleEditDenied as e:
            raise PermissionDenied(str(e)) from None

    def _ip(self) -> str | None:
        return client_ip(self.request)

    def perform_create(self, serializer: serializers.ModelSerializer) -> None:
        self._check(getattr(serializer.validated_data.get("street"), "pk", None))
        serializer.instance = save_rule(
            self.request.user, serializer.Meta.model(**serializer.validated_data), self._ip()
        )

    def perform_update(self, serializer: serializers.ModelSerializer) -> None:
        self._check(serializer.instance.street_id if self.per_street else None)
        if self.per_street and "street" in serializer.validated_data:
            self._check(getattr(serializer.validated_data["street"], "pk", None))
        obj = serializer.instance
        for k, v in serializer.validated_data.items():
            setattr(obj, k, v)
        save_rule(self.request.user, obj, self._ip())

    def perform_destroy(self, instance: Any) -> None:
        self._check(instance.street_id if self.per_street else None)
        delete_rule(self.request.user, instance, self._ip())


class CalendarDayViewSet(_RuleViewSet):
    """Calendar days (放假 / 调休上班) that override the official calendar; the table wins."""

    queryset = CalendarDay.objects.all()
    serializer_class = CalendarDaySerializer
    per_street = True
    filterset_fields = ["street", "date", "is_workday"]


class CalendarYearViewSet(_RuleViewSet):
    """Declared years: provisional (statutory holidays) until the official schedule is in."""

    queryset = CalendarYear.objects.order_by("year", "id")
    serializer_class = CalendarYearSerializer
    per_street = True
    filterset_fields = ["street", "year", "provisional"]


class WorkingHoursViewSet(_RuleViewSet):
    """A street's office hours (working hours count inside them)."""

    queryset = WorkingHours.objects.order_by("id")
    serializer_class = WorkingHoursSerializer
    per_street = True


class TimeLimitViewSet(_RuleViewSet):
    """Time limits per category, stage and level."""

    queryset = TimeLimit.objects.select_related("category")
    serializer_class = TimeLimitSerializer
    filterset_fields = ["category", "stage", "level"]


class CategoryViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Category rules (案件类别规则); deactivate a category instead of deleting it."""

    permission_classes = [IsAuthenticated, MayEditRules]
    queryset = Category.objects.all()
    serializer_class = RuleCategorySerializer
    filterset_fields = ["kind", "active", "parent"]

    def perform_create(self, serializer: serializers.ModelSerializer) -> None:
        serializer.instance = save_rule(
            self.request.user, Category(**serializer.validated_data), _ip(self.request)
        )

    def perform_update(self, serializer: serializers.ModelSerializer) -> None:
        obj = serializer.instance
        for k, v in serializer.validated_data.items():
            setattr(obj, k, v)
        save_rule(self.request.user, obj, _ip(self.request))


class FlagRuleViewSet(_RuleViewSet):
    """What a case flag does: the lowest level it starts at, who is notified at once."""

    queryset = FlagRule.objects.order_by("flag")
    serializer_class = FlagRuleSerializer


def _ip(request: Any) -> str | None:
    return client_ip(request)


def register(router: Any) -> None:
    """Add the rules routes to the API router."""
    router.register("rules/calendar-days", CalendarDayViewSet, basename="rule-calendar-day")
    router.register("rules/calendar-years", CalendarYearViewSet, basename="rule-calendar-year")
    router.register("rules/working-hours", WorkingHoursViewSet, basename="rule-working-hours")
    router.register("rules/time-limits", TimeLimitViewSet, basename="rule-time-limit")
    router.register("rules/categories", CategoryViewSet, basename="rule-category")
    router.register("rules/flag-rules", FlagRuleViewSet, basename="rule-flag-rule")
