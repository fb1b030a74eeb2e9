"""``manage.py import_boundaries FILE --kind street|community|grid|compound|building
[--layer L] [--dry-run] [--crs wgs84|gcj02|bd09|cgcs2000|EPSG:xxxx] [--gcj02]
[--district CODE] [--street CODE] [--community CODE] [--map field=COLUMN ...] [--strict]
[--json]``

Reads a shapefile (or a zip of one), GeoPackage, GeoJSON or CSV with a WKT column, checks it
(validity and repair, overlaps, gaps, declared exclusions, buildings in no grid or two,
duplicate codes, sanity limits, CRS) and unless ``--dry-run`` imports it in one transaction,
updating rows in place by code and keeping every previous boundary as a version. Exit code 1
when a blocking error is found. The report goes to stdout (``--json``: JSON alone), progress
to stderr.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from geo.io import CRS_VOCABULARY, LayerError, parse_crs
from gridsvc.dataio.boundaries import KIND_FIELDS, KINDS, import_boundaries
from gridsvc.dataio.reporting import boundary_report_lines

from ._progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Import (or dry-run) street, community, grid, compound or building boundaries "
        "from a GIS file."
    )

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("file")
        parser.add_argument("--kind", required=True, choices=KINDS)
        parser.add_argument("--layer", help="layer name (GeoPackage with several layers)")
        parser.add_argument("--dry-run", action="store_true", help="check only, change nothing")
        parser.add_argument(
            "--gcj02", action="store_true", help="coordinates are GCJ-02 (= --crs gcj02)"
        )
        parser.add_argument("--district", help="6-digit district code of a street file")
        parser.add_argument("--street", help="9-digit street code of a community file")
        parser.add_argument("--community", help="12-digit community code of the features")
        parser.add_argument(
            "--crs",
            help=f"the file's CRS: {CRS_VOCABULARY}; must agree with a CRS the file declares",
        )
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="FIELD=COLUMN",
            help="column mapping, e.g. --map code=WGBM --map name=WGMC",
        )
        parser.add_argument("--strict", action="store_true", help="warnings block the import")
        parser.add_argument(
            "--json", action="store_true", help="print the report as JSON (alone on stdout)"
        )

    def handle(self, *args, **o) -> None:  # type: ignore[no-untyped-def]
        mapping = {}
        for item in o["map"]:
            field, sep, column = item.partition("=")
            if not sep:
                raise CommandError(f"--map needs FIELD=COLUMN, got {item!r}")
            mapping[field.strip()] = column.strip()
        unknown = sorted(set(mapping) - set(KIND_FIELDS[o["kind"]]))
        if unknown:
            raise CommandError(
                f"--map {', '.join(unknown)}: a {o['kind']} file has "
                f"{', '.join(KIND_FIELDS[o['kind']])}"
            )
        if o["crs"]:
            try:
                parse_crs(o["crs"])
            except LayerError as exc:
                raise CommandError(f"--crs: {exc}") from exc
        report = import_boundaries(
            o["file"],
            o["kind"],
            layer=o["layer"],
            dry_run=o["dry_run"],
            gcj02=o["gcj02"],
            community=o["community"],
            street=o["street"],
            district=o["district"],
            crs=o["crs"],
            mapping=mapping or None,
            strict=o["strict"],
            progress=ProgressBar(self.stderr, every=50),
        )
        if o["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False, indent=2, default=str))
        else:
            for line in boundary_report_lines(report):
                self.stdout.write(line)
        if not report["ok"]:
            raise CommandError(f"{len(report['errors'])} error(s): nothing was imported")
