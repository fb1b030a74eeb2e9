"""Working-time clocks: add natural days, working days or working hours to a start time.

Deadlines are stored as absolute times (aware datetimes); local dates and office hours are
in ``settings.TIME_ZONE`` (Asia/Shanghai).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property

import chinese_calendar
from django.db.models import Q
from django.utils import timezone

from .models import CalendarDay, CalendarYear, WorkingHours

DEFAULT_PERIODS = (("08:30", "12:00"), ("14:30", "18:00"))
UNITS = ("natural_days", "natural_hours", "working_days", "working_hours")
MAX_DAYS_SCANNED = 800


class CalendarMissing(Exception):
    """No official or declared calendar for a year: the deadline cannot be computed."""

    def __init__(self, year: int) -> None:
        super().__init__(
            f"no working-day calendar for {year}: the official calendar package does not know it "
            "and the street has not declared it (CalendarYear + CalendarDay rows)"
        )
        self.year = year


def _parse(hhmm: str) -> time:
    h, m = hhmm.split(":")
    return time(int(h), int(m))


@dataclass
class WorkClock:
    """The calendar and office hours of one street (or the default when street is None)."""

    street_id: int | None = None

    @cached_property
    def _overrides(self) -> dict[date, bool]:
        rows = CalendarDay.objects.filter(Q(street__isnull=True) | Q(street_id=self.street_id))
        days: dict[date, bool] = {}
        # street-specific rows win over all-street rows
        for row in sorted(rows, key=lambda r: r.street_id is not None):
            days[row.date] = row.is_workday
        return days

    @cached_property
    def _declared_years(self) -> set[int]:
        q = CalendarYear.objects.filter(Q(street__isnull=True) | Q(street_id=self.street_id))
        return set(q.values_list("year", flat=True))

    @cached_property
    def periods(self) -> list[tuple[time, time]]:
        row = (
            WorkingHours.objects.filter(street_id=self.street_id).first()
            if self.street_id
            else None
        )
        raw = row.periods if row and row.periods else DEFAULT_PERIODS
        return [(_parse(a), _parse(b)) for a, b in raw]

    def is_workday(self, d: date) -> bool:
        if d in self._overrides:
            return self._overrides[d]
        try:
            return chinese_calendar.is_workday(d)
        except NotImplementedError:
            if d.year in self._declared_years:
                return d.weekday() < 5
            raise CalendarMissing(d.year) from None

    def _local(self, when: datetime) -> datetime:
        return timezone.localtime(when)

    def add(self, start: datetime, amount: float, unit: str) -> datetime:
        """The absolute time ``amount`` ``unit`` after ``start``."""
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}")
        if amount < 0:
            raise ValueError("amount must not be negative")
        if unit == "natural_days":
            return start + timedelta(days=amount)
        if unit == "natural_hours":
            return start + timedelta(hours=amount)
        if unit == "working_days":
            return self._add_working_days(start, int(amount))
        return self._add_working_hours(start, amount)

    def _add_working_days(self, start: datetime, n: int) -> datetime:
        """End of office hours of the n-th working day after the start day (N个工作日内)."""
        local = self._local(start)
        d = local.date()
        if n == 0:  # the same day if it is a working day, else the next one
            for _ in range(MAX_DAYS_SCANNED):
                if self.is_workday(d):
                    break
                d += timedelta(days=1)
        else:
            counted = 0
            for _ in range(MAX_DAYS_SCANNED):
                d += timedelta(days=1)
                if self.is_workday(d):
                    counted += 1
                    if counted == n:
                        break
        end = self.periods[-1][1]
        return datetime.combine(d, end, tzinfo=local.tzinfo)

    def _add_working_hours(self, start: datetime, hours: float) -> datetime:
        """Walk office periods of working days, consuming ``hours``."""
        local = self._local(start)
        tz = local.tzinfo
        remaining = timedelta(hours=hours)
        d = local.date()
        cursor = local
        for _ in range(MAX_DAYS_SCANNED):
            if self.is_workday(d):
                for a, b in self.periods:
                    p_start = datetime.combine(d, a, tzinfo=tz)
                    p_end = datetime.combine(d, b, tzinfo=tz)
                    if cursor >= p_end:
                        continue
                    begin = max(cursor, p_start)
                    available = p_end - begin
                    if remaining <= available:
                        return begin + remaining
                    remaining -= available
                    cursor = p_end
            d += timedelta(days=1)
            cursor = datetime.combine(d, time(0, 0), tzinfo=tz)
        raise CalendarMissing(d.year)  # pragma: no cover - more than MAX_DAYS_SCANNED of holidays


def deadline(start: datetime, amount: float, unit: str, street_id: int | None = None) -> datetime:
    """Shortcut: ``WorkClock(street_id).add(start, amount, unit)``."""
    return WorkClock(street_id).add(start, amount, unit)
