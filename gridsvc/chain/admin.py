from django.contrib import admin

from .models import Position


@admin.register(Position)
class PositionAdmin(admin.ModelAdmin):
    list_display = ["position_type", "member", "valid_from", "valid_to", "on_leave"]
    list_filter = ["position_type", "on_leave"]
    raw_id_fields = [
        "member",
        "district",
        "street",
        "community",
        "grid",
        "compound",
        "building",
        "unit",
    ]
    search_fields = ["member__username", "member__display_name"]
