"""Admin for data managers: territory objects with map widgets (OpenLayers, no internet
basemap needed for editing vertices)."""

from django.contrib import admin

from gridsvc.web.widgets import GISModelAdmin  # OpenLayers from our own bundle, under the CSP

from .models import Building, Community, Compound, Grid, Household, Place, Resident, Street, Unit


@admin.register(Street)
class StreetAdmin(GISModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]


@admin.register(Community)
class CommunityAdmin(GISModelAdmin):
    list_display = ["code", "name", "street"]
    search_fields = ["code", "name"]


@admin.register(Grid)
class GridAdmin(GISModelAdmin):
    list_display = ["code", "name", "community", "parent", "responsible_body"]
    list_filter = ["community"]
    search_fields = ["code", "name"]


@admin.register(Compound)
class CompoundAdmin(GISModelAdmin):
    list_display = ["code", "name", "community", "property_company"]
    search_fields = ["code", "name"]


@admin.register(Building)
class BuildingAdmin(GISModelAdmin):
    list_display = ["code", "name", "grid", "compound", "floors"]
    list_filter = ["grid"]
    search_fields = ["code", "name", "address"]
    readonly_fields = ["grid", "compound"]


@admin.register(Unit)
class UnitAdmin(admin.ModelAdmin):
    list_display = ["building", "number"]
    raw_id_fields = ["building"]


@admin.register(Household)
class HouseholdAdmin(admin.ModelAdmin):
    list_display = ["unit", "room", "floor", "tenure"]
    raw_id_fields = ["unit", "head"]


@admin.register(Resident)
class ResidentAdmin(admin.ModelAdmin):
    """Residents: sensitive fields are not shown in the list (masked by design)."""

    list_display = ["name", "household", "residency"]
    raw_id_fields = ["household"]
    search_fields = ["name"]
    exclude = ["id_number_hash"]

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        """Tag changes enter the status history with the admin user as who."""
        from .history import status_change

        with status_change(request.user, "admin"):
            super().save_model(request, obj, form, change)


@admin.register(Place)
class PlaceAdmin(GISModelAdmin):
    list_display = ["name", "kind", "grid"]
    list_filter = ["kind"]
