"""``manage.py import_roster FILE [--errors OUT.xlsx] [--dry-run] [--json]``

Imports the household and resident roster (居民名册, xlsx or csv with Chinese headers). Good
rows go in (one transaction), bad rows are listed and written to ``--errors`` as a workbook
the office fixes and re-uploads. Exit code 1 when some rows had errors or the file could not
be read.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from gridsvc.dataio.reporting import roster_report_lines
from gridsvc.dataio.roster import error_workbook, import_roster


class Command(BaseCommand):
    help = "Import (or dry-run) the household/resident roster from xlsx or csv."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("file")
        parser.add_argument("--errors", metavar="OUT.xlsx", help="write the rows with errors here")
        parser.add_argument("--dry-run", action="store_true", help="check only, change nothing")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **o) -> None:  # type: ignore[no-untyped-def]
        report, sheet = import_roster(o["file"], dry_run=o["dry_run"])
        if o["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False, indent=2))
        else:
            for line in roster_report_lines(report):
                self.stdout.write(line)
        if o["errors"] and sheet is not None and report["bad"]:
            Path(o["errors"]).write_bytes(error_workbook(sheet))
            self.stdout.write(f"rows with errors written to {o['errors']}")
        if report["fatal"]:
            raise CommandError("; ".join(report["fatal"]))
        if report["bad"]:
            raise CommandError(f"{report['bad']} row(s) with errors were not imported")
