from django.contrib import admin

from .models import LOCATED, MemberLanguage, UnityReport

for _model in LOCATED:
    admin.site.register(_model)


@admin.register(UnityReport)
class UnityReportAdmin(admin.ModelAdmin):
    list_display = ("street", "year", "kind", "month", "submitted_at", "acknowledged_at")
    list_filter = ("kind", "year")


@admin.register(MemberLanguage)
class MemberLanguageAdmin(admin.ModelAdmin):
    """Languages members speak besides 汉语 (preferred on assignment)."""

    list_display = ("member", "languages", "updated_at")
    search_fields = ("member__username",)
