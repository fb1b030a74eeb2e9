"""Admin for the working-day calendar, office hours and the assessment scheme (规则维护).

Changes are recorded in the rules history (audit log) and the worker recomputes the open
cases' deadlines; a deadline set by a person is kept."""

from __future__ import annotations

from django.contrib import admin

from .clock import WorkClock, statutory_holidays
from .models import AssessmentScheme, CalendarDay, CalendarYear, WorkingHours
from .rules_admin import RuleAdmin


@admin.register(CalendarDay)
class CalendarDayAdmin(RuleAdmin):
    list_display = ["date", "is_workday", "note", "street"]
    list_filter = ["is_workday", "street"]
    search_fields = ["note"]
    date_hierarchy = "date"


@admin.register(CalendarYear)
class CalendarYearAdmin(RuleAdmin):
    list_display = ["year", "street", "provisional", "status", "holidays", "note"]
    list_filter = ["provisional"]

    @admin.display(description="status")
    def status(self, obj: CalendarYear) -> str:
        return WorkClock(obj.street_id).year_status(obj.year)

    @admin.display(description="statutory holidays (provisional years)")
    def holidays(self, obj: CalendarYear) -> str:
        if not obj.provisional:
            return ""
        days = statutory_holidays(obj.year)
        return ", ".join(f"{d:%m-%d} {days[d]}" for d in sorted(days))


@admin.register(WorkingHours)
class WorkingHoursAdmin(RuleAdmin):
    list_display = ["street", "__str__"]


@admin.register(AssessmentScheme)
class AssessmentSchemeAdmin(RuleAdmin):
    list_display = ["name", "active"]
