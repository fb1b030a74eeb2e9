"""Visit periods: month (2026-11), quarter (2026-Q4), year (2026), ISO week (2026-W48); the
local day (:func:`local_today`, :func:`local_day_start`, Asia/Shanghai is the TIME_ZONE) and a
task's due date in its period (:func:`due_date`). The visits and the venue tasks
(gridsvc.community.venues) count their days here."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from django.utils import timezone

from .models import Frequency

if TYPE_CHECKING:
    from .models import VisitRule


@dataclass(frozen=True)
class Period:
    label: str
    start: date
    end: date  # inclusive

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


def period_of(frequency: str, day: date) -> Period:
    """The period of ``frequency`` that contains ``day``."""
    if frequency == Frequency.MONTHLY:
        last = calendar.monthrange(day.year, day.month)[1]
        return Period(f"{day.year}-{day.month:02d}", day.replace(day=1), day.replace(day=last))
    if frequency == Frequency.QUARTERLY:
        q = (day.month - 1) // 3
        start = date(day.year, 3 * q + 1, 1)
        end_month = 3 * q + 3
        end = date(day.year, end_month, calendar.monthrange(day.year, end_month)[1])
        return Period(f"{day.year}-Q{q + 1}", start, end)
    if frequency == Frequency.YEARLY:
        return Period(str(day.year), date(day.year, 1, 1), date(day.year, 12, 31))
    if frequency == Frequency.WEEKLY:
        start = day - timedelta(days=day.weekday())
        iso = start.isocalendar()
        return Period(f"{iso.year}-W{iso.week:02d}", start, start + timedelta(days=6))
    raise ValueError(f"unknown frequency {frequency!r}")


def local_day_start(day: date) -> datetime:
    """The first instant of ``day`` in the server's time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


def local_today(now: datetime | None = None) -> date:
    """The server's local date (today, or at ``now``)."""
    return timezone.localdate(now or timezone.now())


def due_date(rule: VisitRule, period: Period) -> date:
    """The day a task of ``rule`` in ``period`` is due: the period's end, or the end of the
    rule's window (``window_days`` from the period's start) when that comes first."""
    if rule.window_days is None:
        return period.end
    return min(period.end, period.start + timedelta(days=max(rule.window_days, 1) - 1))


def periods_overlapping(frequency: str, start: date, end: date) -> list[Period]:
    """Every period of ``frequency`` that overlaps [start, end] (inclusive), in order."""
    out: list[Period] = []
    day = start
    while day <= end:
        p = period_of(frequency, day)
        out.append(p)
        day = p.end + timedelta(days=1)
    return out


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")


def parse_span(text: str) -> tuple[date, date]:
    """Parse ``2026-11`` (a month) or ``2026`` (a year) or ``2026-11-24`` (a day) into a span."""
    text = text.strip()
    if m := _MONTH.match(text):
        y, mo = int(m[1]), int(m[2])
        if not 1 <= mo <= 12:
            raise ValueError("month must be 01..12")
        return date(y, mo, 1), date(y, mo, calendar.monthrange(y, mo)[1])
    if m := _YEAR.match(text):
        y = int(m[1])
        return date(y, 1, 1), date(y, 12, 31)
    day = date.fromisoformat(text)
    return day, day
