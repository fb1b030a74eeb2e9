"""``manage.py import_boundaries FILE --kind grid|compound|building [--layer L] [--dry-run]
[--gcj02] [--community CODE] [--crs EPSG:xxxx] [--map field=COLUMN ...] [--strict] [--json]``

Reads a shapefile (or a zip of one), GeoPackage, GeoJSON or CSV with a WKT column, checks it
(validity and repair, overlaps, gaps, buildings in no grid or two, duplicate codes, CRS) and
unless ``--dry-run`` imports it in one transaction, updating rows in place by code and
keeping every previous boundary as a version. Exit code 1 when a blocking error is found.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from gridsvc.dataio.boundaries import KINDS, import_boundaries
from gridsvc.dataio.reporting import boundary_report_lines

from ._progress import ProgressBar


class Command(BaseCommand):
    help = "Import (or dry-run) grid, compound or building boundaries from a GIS file."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("file")
        parser.add_argument("--kind", required=True, choices=KINDS)
        parser.add_argument("--layer", help="layer name (GeoPackage with several layers)")
        parser.add_argument("--dry-run", action="store_true", help="check only, change nothing")
        parser.add_argument(
            "--gcj02", action="store_true", help="coordinates are GCJ-02 (Amap/Tencent)"
        )
        parser.add_argument("--community", help="12-digit community code of the features")
        parser.add_argument("--crs", help="CRS to assume when the file declares none")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="FIELD=COLUMN",
            help="column mapping, e.g. --map code=WGBM --map name=WGMC",
        )
        parser.add_argument("--strict", action="store_true", help="warnings block the import")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **o) -> None:  # type: ignore[no-untyped-def]
        mapping = {}
        for item in o["map"]:
            field, sep, column = item.partition("=")
            if not sep:
                raise CommandError(f"--map needs FIELD=COLUMN, got {item!r}")
            mapping[field.strip()] = column.strip()
        report = import_boundaries(
            o["file"],
            o["kind"],
            layer=o["layer"],
            dry_run=o["dry_run"],
            gcj02=o["gcj02"],
            community=o["community"],
            assume_crs=o["crs"],
            mapping=mapping or None,
            strict=o["strict"],
            progress=ProgressBar(self.stdout, every=50),
        )
        if o["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False, indent=2))
        else:
            for line in boundary_report_lines(report):
                self.stdout.write(line)
        if not report["ok"]:
            raise CommandError(f"{len(report['errors'])} error(s): nothing was imported")
