"""``manage.py roster_template OUT.xlsx``: write the empty roster template (居民名册模板)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from gridsvc.dataio.roster import template_workbook


class Command(BaseCommand):
    help = "Write the empty household/resident roster template (xlsx)."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("out")

    def handle(self, *args, **o) -> None:  # type: ignore[no-untyped-def]
        Path(o["out"]).write_bytes(template_workbook())
        self.stdout.write(f"template written to {o['out']}")
