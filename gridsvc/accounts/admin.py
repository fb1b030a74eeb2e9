from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from .models import Device, Member


@admin.register(Member)
class MemberAdmin(UserAdmin):
    list_display = ["username", "display_name", "phone", "is_active", "is_staff"]
    fieldsets = UserAdmin.fieldsets + (("gridsvc", {"fields": ("display_name", "phone")}),)


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ["member", "device_id", "name", "last_login_at", "revoked_at"]
    raw_id_fields = ["member"]
