"""Admin: visit rules are edited here (走访规则); tasks, visits and reports are browsable."""

from __future__ import annotations

from django.contrib import admin

from .models import DailyReport, Visit, VisitRule, VisitTask


@admin.register(VisitRule)
class VisitRuleAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "target_group",
        "frequency",
        "window_days",
        "grace_days",
        "visitor_level",
        "joint_visit",
        "active",
    )
    list_editable = ("frequency", "window_days", "active")
    list_filter = ("frequency", "visitor_level", "active")


@admin.register(VisitTask)
class VisitTaskAdmin(admin.ModelAdmin):
    list_display = ("id", "rule", "household", "period", "due_on", "status", "assigned_member")
    list_filter = ("status", "rule", "period")
    raw_id_fields = ("household", "resident", "assigned_member", "assigned_position", "done_by")


@admin.register(Visit)
class VisitAdmin(admin.ModelAdmin):
    list_display = ("id", "client_time", "member", "household", "distance_m", "far_off")
    list_filter = ("far_off", "location_source")
    raw_id_fields = ("member", "household", "resident", "task", "participant_members")
    readonly_fields = ("client_uuid", "content_hash", "server_time")


@admin.register(DailyReport)
class DailyReportAdmin(admin.ModelAdmin):
    list_display = ("date", "member", "nothing_abnormal")
    list_filter = ("date", "nothing_abnormal")
    raw_id_fields = ("member",)
