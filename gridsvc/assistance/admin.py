from django.contrib import admin

from .models import Application, ApplicationEvent


class EventInline(admin.TabularInline):
    model = ApplicationEvent
    extra = 0
    readonly_fields = ("action", "from_status", "to_status", "actor", "at", "note")
    can_delete = False


@admin.register(Application)
class ApplicationAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "household", "due_at", "recheck_due", "created_at")
    list_filter = ("kind", "status")
    raw_id_fields = ("household", "applicant", "visit", "created_by")
    readonly_fields = ("created_at", "updated_at")
    inlines = [EventInline]
