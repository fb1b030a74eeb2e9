"""Admin: read-only views of idempotency records and visit clocks (for support questions
such as "did my report arrive?" or "why is this visit's time different?")."""

from __future__ import annotations

from django.contrib import admin

from .models import IdempotencyRecord, VisitClock


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnly):
    list_display = ["created_at", "member", "method", "path", "status", "key"]
    list_filter = ["method", "status"]
    search_fields = ["key", "path", "member__username"]
    exclude = ["response_body"]
    raw_id_fields = ["member"]


@admin.register(VisitClock)
class VisitClockAdmin(ReadOnly):
    list_display = ["visit", "sent_time", "received_at", "offset_ms", "corrected", "flag"]
    list_filter = ["flag", "corrected"]
    raw_id_fields = ["visit"]
