"""A new visit drops the cached visit tiles under it but no longer marks its grid's offline
package stale: packages hold no visits (grids, compounds, buildings, households, places,
cases), so rebuilding them for every visit was work for nothing."""

from importlib import import_module

from django.db import migrations

triggers = import_module("gridsvc.layers.migrations.0002_triggers")

VISIT_ROWS = (
    "SELECT b.point::geometry AS geom, NULL::bigint AS grid FROM {rows} r"
    " JOIN territory_household h ON h.id = r.household_id"
    " JOIN territory_unit u ON u.id = h.unit_id JOIN territory_building b ON b.id = u.building_id"
)
SQL = triggers._function("visits_visit", ["visits"], VISIT_ROWS)
REVERSE = triggers._function("visits_visit", *triggers.TABLES["visits_visit"])


class Migration(migrations.Migration):
    dependencies = [("layers", "0002_triggers")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
