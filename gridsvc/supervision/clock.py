"""Working-time clocks: add natural days, working days or working hours to a start time.

Deadlines are stored as absolute times (aware datetimes); local dates and office hours are
in ``settings.TIME_ZONE`` (Asia/Shanghai).

Which calendar a day follows, first match wins:

1. the street's ``CalendarDay`` row, then the all-street row (the editable table always wins);
2. the official calendar package (chinesecalendar) for the years it knows;
3. a declared ``CalendarYear``: if ``provisional`` (暂定, before the State Council publishes the
   year's schedule), weekends and the statutory holidays fixed in law rest
   (:func:`statutory_holidays`); once the official schedule is entered in the table and the
   year is marked not provisional, weekends and the table alone;
4. otherwise :class:`CalendarMissing` (never a silent guess).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache, cached_property
from typing import Any

import chinese_calendar
from django.db.models import Q
from django.utils import timezone
from lunar_python import Lunar

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


def official_year_known(year: int) -> bool:
    """Does the official calendar package (chinesecalendar) know ``year``'s schedule?"""
    try:
        chinese_calendar.is_workday(date(year, 6, 30))
    except NotImplementedError:
        return False
    return True


@cache
def statutory_holidays(year: int) -> dict[date, str]:
    """The rest days fixed in law for ``year`` (《全国年节及纪念日放假办法》, 2024 revision,
    in force since 2025), without the State Council's yearly 调休 arrangements:

    元旦 1 Jan; 春节 4 days: 除夕 (lunar New Year's Eve) and lunar 1/1–1/3; 清明 the 清明 solar
    term day; 劳动节 1–2 May; 端午 lunar 5/5; 中秋 lunar 8/15; 国庆 1–3 Oct. A holiday that falls
    on a Saturday or Sunday is made up on the next working weekday (补假, article 6).
    Lunar dates and the solar term come from the lunar-python package.
    """
    days: dict[date, str] = {date(year, 1, 1): "元旦"}

    def solar(lunar: Lunar) -> date:
        s = lunar.getSolar()
        return date(s.getYear(), s.getMonth(), s.getDay())

    new_year = Lunar.fromYmd(year, 1, 1)
    days[solar(new_year.next(-1))] = "春节(除夕)"
    for i in range(3):
        days[solar(new_year.next(i))] = "春节"
    qingming = Lunar.fromYmd(year, 3, 1).getJieQiTable()["清明"]
    days[date(qingming.getYear(), qingming.getMonth(), qingming.getDay())] = "清明节"
    days[date(year, 5, 1)] = days[date(year, 5, 2)] = "劳动节"
    days[solar(Lunar.fromYmd(year, 5, 5))] = "端午节"
    days[solar(Lunar.fromYmd(year, 8, 15))] = "中秋节"
    for day in (1, 2, 3):
        days[date(year, 10, day)] = "国庆节"
    holidays = {d: n for d, n in days.items() if d.year == year}
    made_up: dict[date, str] = {}
    for d in sorted(holidays):
        if d.weekday() < 5:
            continue
        m = d + timedelta(days=1)
        while m in holidays or m in made_up or m.weekday() >= 5:
            m += timedelta(days=1)
        made_up[m] = f"{holidays[d]}补假"
    return {**holidays, **made_up}


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
    def _declared_years(self) -> dict[int, bool]:
        """Declared years → provisional; the street's own row wins over the all-street row."""
        q = CalendarYear.objects.filter(Q(street__isnull=True) | Q(street_id=self.street_id))
        years: dict[int, bool] = {}
        for row in sorted(q, key=lambda r: r.street_id is not None):
            years[row.year] = row.provisional
        return years

    @classmethod
    def columns_sql(cls, street: str) -> str:
        """Two columns for a SELECT: the calendar days (:class:`CalendarDay`) and the office
        hours (:class:`WorkingHours`) of the street in the parameter named ``street``, read
        by :meth:`from_columns` — for a caller that reads them with its own statement (the
        report's deadline: one round trip instead of three, issue 19)."""
        days, hours = (f'"{m._meta.db_table}"' for m in (CalendarDay, WorkingHours))
        return f"""(SELECT COALESCE(jsonb_agg(jsonb_build_array(
          d.date, d.is_workday, d.street_id IS NOT NULL) ORDER BY d.date), '[]')
   FROM {days} d WHERE d.street_id IS NULL OR d.street_id = %({street})s),
  (SELECT w.periods FROM {hours} w WHERE w.street_id = %({street})s ORDER BY w.id LIMIT 1)"""

    @classmethod
    def from_columns(cls, street_id: int | None, days: Any, periods: Any) -> WorkClock:
        """The clock of ``street_id`` from the two columns of :meth:`columns_sql` (jsonb as
        text or parsed): the same calendar and office hours its own queries would read."""
        import json

        rows = json.loads(days) if isinstance(days, str) else (days or [])
        raw = json.loads(periods) if isinstance(periods, str) else periods
        clock = cls(street_id)
        overrides: dict[date, bool] = {}
        # street-specific rows win over all-street rows (as _overrides)
        for day, workday, _own in sorted(rows, key=lambda r: bool(r[2])):
            overrides[date.fromisoformat(day)] = bool(workday)
        clock.__dict__["_overrides"] = overrides
        raw = raw if street_id and raw else DEFAULT_PERIODS
        clock.__dict__["periods"] = [(_parse(a), _parse(b)) for a, b in raw]
        return clock

    def year_status(self, year: int) -> str:
        """``official`` (the package), ``table`` (declared, official schedule entered),
        ``provisional`` (declared, statutory holidays only) or ``missing``."""
        if official_year_known(year):
            return "official"
        if year not in self._declared_years:
            return "missing"
        return "provisional" if self._declared_years[year] else "table"

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
            return bool(chinese_calendar.is_workday(d))
        except NotImplementedError:
            if d.year not in self._declared_years:
                raise CalendarMissing(d.year) from None
            if self._declared_years[d.year] and d in statutory_holidays(d.year):
                return False
            return d.weekday() < 5

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


WARN_FROM_MONTH = 12  # the street office is warned from 1 December about next year


def prepare_next_year(today: date | None = None) -> int:
    """Daily (worker job ``supervision.calendar_ahead``): before a year the official calendar package does not
    know begins, declare it provisional (statutory holidays fixed in law, so deadlines keep
    working over New Year) and warn the street office (街道调度) once in their inbox to enter
    the State Council's schedule (放假安排, 调休) when it is published. Returns the number of
    inbox messages written."""
    from gridsvc.chain.models import Position, PositionType

    from .models import InboxMessage

    today = today or timezone.localdate()
    year = today.year + 1
    if today.month < WARN_FROM_MONTH or official_year_known(year):
        return 0
    row = CalendarYear.objects.filter(street__isnull=True, year=year).first()
    if row is None:
        row = CalendarYear.objects.create(
            street=None, year=year, provisional=True, note="自动声明:暂按法定节假日,待国务院公布"
        )
    if not row.provisional:
        return 0
    holidays = statutory_holidays(year)
    first = sorted(holidays)[:6]
    body = (
        f"{year}年的官方放假安排尚未载入日历,系统暂按法定节假日计算工作日(暂定):"
        + "、".join(f"{d:%m-%d}{holidays[d]}" for d in first)
        + " 等,未含调休。国务院办公厅公布放假安排后,请在日历(/admin/supervision/calendarday/ "
        "或 /api/v1/rules/calendar-days/)录入放假与调休日,并将该年度取消“暂定”。"
    )
    members = set(
        Position.objects.active_at(None)
        .filter(position_type=PositionType.STREET_DISPATCHER, on_leave=False)
        .values_list("member_id", flat=True)
    )
    warned = set(
        InboxMessage.objects.filter(
            object_type="calendar_year", object_id=str(year), member_id__in=members
        ).values_list("member_id", flat=True)
    )
    created = [
        InboxMessage.objects.create(
            member_id=m,
            kind=InboxMessage.Kind.OTHER,
            title=f"{year}年工作日历为暂定,请录入国务院放假安排",
            body=body,
            object_type="calendar_year",
            object_id=str(year),
        )
        for m in sorted(members - warned)
    ]
    return len(created)
