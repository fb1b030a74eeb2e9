"""``manage.py work_report (--community CODE | --street CODE) (--month 2026-10 | --year 2026)
--out FILE [--issue]`` — the work report as .json, .xlsx or .pdf (by the file's extension);
``--issue`` first issues it (印发: its figures kept as issued, see
:func:`gridsvc.reports.services.issue_report`)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from gridsvc.chain.scope import Scope
from gridsvc.reports.services import issue_report, month_period, report_document, year_period


class Command(BaseCommand):
    help = "Write the monthly or annual work report of a community or street."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--community", help="12-digit community code")
        parser.add_argument("--street", help="9-digit street code")
        parser.add_argument("--month", help="e.g. 2026-10")
        parser.add_argument("--year", help="e.g. 2026")
        parser.add_argument("--out", required=True, help="FILE.json | FILE.xlsx | FILE.pdf")
        parser.add_argument(
            "--issue", action="store_true", help="issue the report (keep its figures as issued)"
        )

    def handle(self, *args, **o) -> None:  # type: ignore[no-untyped-def]
        out = Path(o["out"])
        fmt = out.suffix.lower().lstrip(".")
        try:
            if bool(o["month"]) == bool(o["year"]):
                raise CommandError("give exactly one of --month or --year")
            period = month_period(o["month"]) if o["month"] else year_period(o["year"])
            if o["issue"]:
                issue_report(
                    period=period,
                    scope=Scope(everything=True),
                    community=o["community"],
                    street=o["street"],
                )
            report, content, _name = report_document(
                fmt,
                period=period,
                scope=Scope(everything=True),
                community=o["community"],
                street=o["street"],
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from exc
        if content is None:
            content = json.dumps(report, ensure_ascii=False, indent=2).encode()
        out.write_bytes(content)
        p = report["population"]
        self.stdout.write(
            f"{report['area']['name']} {report['period']['title']}: {p['households']} households, "
            f"{p['residents']} residents → {out}"
        )
