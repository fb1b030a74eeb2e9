from django.contrib import admin

from .models import LOCATED, DistrictOfficer, MemberLanguage, UnityReport

for _model in LOCATED:
    admin.site.register(_model)


@admin.register(DistrictOfficer)
class DistrictOfficerAdmin(admin.ModelAdmin):
    """The district's 创建 office: who reads its streets' figures and acknowledges reports."""

    list_display = ("member", "district_code", "district_name")
    search_fields = ("member__username", "district_code")


@admin.register(UnityReport)
class UnityReportAdmin(admin.ModelAdmin):
    list_display = ("street", "year", "kind", "month", "submitted_at", "acknowledged_at")
    list_filter = ("kind", "year")


@admin.register(MemberLanguage)
class MemberLanguageAdmin(admin.ModelAdmin):
    """Languages members speak besides 汉语 (preferred on assignment)."""

    list_display = ("member", "languages", "updated_at")
    search_fields = ("member__username",)
