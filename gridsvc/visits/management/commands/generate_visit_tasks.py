"""``manage.py generate_visit_tasks [--period 2026-11] [--statuses]``: make visit tasks.

Idempotent: running it twice creates no duplicates. ``--period`` is a month (2026-11), a year
(2026) or a day (2026-11-24); default: the current month. ``--statuses`` also moves tasks
past their window to overdue / missed (as of ``--today``, default today).
"""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from gridsvc.visits import services
from gridsvc.visits.periods import parse_span


class Command(BaseCommand):
    help = "Generate visit tasks (走访任务) for a period; idempotent."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--period", help="2026-11 (month), 2026 (year) or 2026-11-24")
        parser.add_argument("--statuses", action="store_true", help="update overdue/missed")
        parser.add_argument("--today", help="reference day for --statuses (YYYY-MM-DD)")

    def handle(self, *args, period=None, statuses=False, today=None, **options) -> None:  # type: ignore[no-untyped-def]
        try:
            if period:
                start, end = parse_span(period)
            else:
                start, end = parse_span(services.local_today().strftime("%Y-%m"))
            ref = date.fromisoformat(today) if today else services.local_today()
        except ValueError as exc:
            raise CommandError(f"bad --period/--today: {exc}") from None
        result = services.generate_tasks(start, end)
        for code, n in result.by_rule.items():
            self.stdout.write(f"{code}: {n} new")
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.created} tasks created ({start} … {end}); {result.existing} already there"
            )
        )
        if statuses:
            from gridsvc.community.venues import update_venue_statuses

            moved = {**services.update_statuses(ref), **update_venue_statuses(ref)}
            self.stdout.write(f"statuses as of {ref}: {moved}")
