"""Offline packages per coordinate system (``wgs84`` and ``gcj02`` for Amap/Tencent
basemaps: one package row per grid and CRS), and cases no longer make a package stale:
packages hold no cases (cases reach the phone through the change feed, the package is the
base map), so a case change drops the cached case/heatmap tiles under it but logs no grid
change."""

from importlib import import_module

import django.db.models.deletion
from django.db import migrations, models

triggers = import_module("gridsvc.layers.migrations.0002_triggers")

CASE_ROWS = "SELECT r.location::geometry AS geom, NULL::bigint AS grid FROM {rows} r"
SQL = triggers._function("cases_case", ["cases", "heatmap"], CASE_ROWS)
REVERSE = triggers._function("cases_case", *triggers.TABLES["cases_case"])


class Migration(migrations.Migration):
    dependencies = [
        ("layers", "0003_visits_do_not_stale_packages"),
        ("territory", "0001_initial"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="offlinepackage",
            options={"ordering": ["grid_id", "crs"]},
        ),
        migrations.AddField(
            model_name="offlinepackage",
            name="crs",
            field=models.CharField(
                choices=[("wgs84", "WGS84"), ("gcj02", "GCJ-02 (Amap/Tencent)")],
                default="wgs84",
                max_length=8,
            ),
        ),
        migrations.AlterField(
            model_name="offlinepackage",
            name="grid",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="offline_packages",
                to="territory.grid",
            ),
        ),
        migrations.AddConstraint(
            model_name="offlinepackage",
            constraint=models.UniqueConstraint(
                fields=("grid", "crs"), name="offline_package_grid_crs"
            ),
        ),
        migrations.RunSQL(SQL, REVERSE),
    ]
