"""Working-time clocks on the official PRC calendar (issue 11)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from gridsvc.supervision.clock import CalendarMissing, WorkClock, deadline
from gridsvc.supervision.models import CalendarDay, CalendarYear, WorkingHours

pytestmark = pytest.mark.django_db
CST = ZoneInfo("Asia/Shanghai")


def at(*args) -> datetime:
    return datetime(*args, tzinfo=CST)


def test_working_days_skip_the_national_day_holiday():
    # Reported Wed 2026-09-30; 1 Oct (Thu) … 7 Oct (Wed) are holidays; Thu 8 Oct and Fri 9 Oct
    # work; Sat 10 Oct is an adjusted working Saturday (调休).
    start = at(2026, 9, 30, 10, 0)
    assert deadline(start, 1, "working_days") == at(2026, 10, 8, 18, 0)
    assert deadline(start, 2, "working_days") == at(2026, 10, 9, 18, 0)
    assert deadline(start, 3, "working_days") == at(2026, 10, 10, 18, 0)  # the working Saturday
    assert deadline(start, 4, "working_days") == at(2026, 10, 12, 18, 0)  # Sunday 11th rests


def test_adjusted_working_sunday_before_the_holiday():
    # Sun 2026-09-20 is a working day (调休 for National Day).
    assert deadline(at(2026, 9, 19, 9, 0), 1, "working_days") == at(2026, 9, 20, 18, 0)


def test_natural_days_ignore_the_calendar():
    assert deadline(at(2026, 9, 30, 10, 0), 3, "natural_days") == at(2026, 10, 3, 10, 0)


def test_working_hours_across_lunch():
    # 11:00 + 2 working hours: 1 h until 12:00, lunch until 14:30, then 1 h → 15:30
    assert deadline(at(2026, 11, 24, 11, 0), 2, "working_hours") == at(2026, 11, 24, 15, 30)


def test_working_hours_overnight_and_over_the_weekend():
    # Fri 2026-11-27 17:00 + 3 h: 1 h Friday, weekend rests, Mon 08:30 + 2 h → 10:30
    assert deadline(at(2026, 11, 27, 17, 0), 3, "working_hours") == at(2026, 11, 30, 10, 30)


def test_reported_at_night_starts_next_morning():
    assert deadline(at(2026, 11, 24, 21, 0), 1, "working_hours") == at(2026, 11, 25, 9, 30)


def test_street_working_hours(demo):
    WorkingHours.objects.create(
        street=demo.street, periods=[["09:00", "12:00"], ["13:00", "17:00"]]
    )
    clock = WorkClock(demo.street.pk)
    assert clock.add(at(2026, 11, 24, 11, 0), 2, "working_hours") == at(2026, 11, 24, 14, 0)
    assert clock.add(at(2026, 11, 24, 11, 0), 1, "working_days") == at(2026, 11, 25, 17, 0)


def test_a_year_with_no_calendar_is_a_clear_error():
    CalendarYear.objects.filter(year=2027).delete()  # the demo declares next year
    with pytest.raises(CalendarMissing) as err:
        deadline(at(2026, 12, 30, 10, 0), 5, "working_days")
    assert "2027" in str(err.value)


def test_a_declared_year_uses_weekends_and_the_street_table(demo):
    CalendarYear.objects.create(year=2027, note="待国务院办公厅通知,暂按周末+已知节日")
    CalendarDay.objects.create(date=date(2027, 1, 1), is_workday=False, note="元旦")
    # Thu 2026-12-31 + 1 working day: Fri 1 Jan 2027 is a holiday (table) → Mon 4 Jan
    assert deadline(at(2026, 12, 31, 10, 0), 1, "working_days") == at(2027, 1, 4, 18, 0)


def test_street_table_overrides_the_official_calendar(demo):
    CalendarDay.objects.create(
        street=demo.street, date=date(2026, 11, 25), is_workday=False, note="停电停工"
    )
    clock = WorkClock(demo.street.pk)
    assert clock.add(at(2026, 11, 24, 10, 0), 1, "working_days") == at(2026, 11, 26, 18, 0)
    assert WorkClock(None).add(at(2026, 11, 24, 10, 0), 1, "working_days") == at(
        2026, 11, 25, 18, 0
    )


def test_bad_units_and_amounts():
    with pytest.raises(ValueError):
        deadline(at(2026, 11, 24, 10, 0), 1, "fortnights")
    with pytest.raises(ValueError):
        deadline(at(2026, 11, 24, 10, 0), -1, "working_days")


# --- issue 18 item 14: a year the official package does not know yet -----------------------


def test_a_provisional_year_rests_on_new_years_day_after_the_weekend(demo):
    # The demo declares 2027 (not in the package yet): provisional, statutory holidays apply.
    row = CalendarYear.objects.get(street=None, year=2027)
    assert row.provisional
    # Fri 2026-12-11 + 15 working days: 14 in December, Fri 1 Jan 2027 is 元旦 and the
    # weekend rests → Mon 4 Jan (weekdays only gave 1 Jan 18:00)
    assert deadline(at(2026, 12, 11, 10, 0), 15, "working_days") == at(2027, 1, 4, 18, 0)
    assert WorkClock().year_status(2027) == "provisional"
    assert WorkClock().year_status(2026) == "official"


def test_spring_festival_2027_and_its_made_up_days_rest(demo):
    clock = WorkClock()
    # 除夕 Fri 5 Feb, 初一–初三 Sat 6–Mon 8 Feb; Sat and Sun are made up on Tue 9 and Wed 10
    for day in (5, 6, 7, 8, 9, 10):
        assert not clock.is_workday(date(2027, 2, day)), day
    assert clock.is_workday(date(2027, 2, 4)) and clock.is_workday(date(2027, 2, 11))
    assert deadline(at(2027, 2, 4, 10, 0), 1, "working_days") == at(2027, 2, 11, 18, 0)
    # 清明 (solar term) Mon 5 Apr, 端午 Wed 9 Jun, 中秋 Wed 15 Sep, 国庆 1–3 Oct + 4–5 made up
    for d in (date(2027, 4, 5), date(2027, 6, 9), date(2027, 9, 15), date(2027, 10, 5)):
        assert not clock.is_workday(d), d
    assert clock.is_workday(date(2027, 10, 6))


def test_the_statutory_rule_matches_the_official_2025_core_days():
    # Checked against a year the package knows: every statutory day rests officially too.
    import chinese_calendar

    from gridsvc.supervision.clock import statutory_holidays

    days = statutory_holidays(2025)
    assert {d for d, n in days.items() if "补假" not in n} <= {
        d for d in days if not chinese_calendar.is_workday(d)
    }
    assert date(2025, 1, 28) in days  # 除夕 is a holiday since the 2024 revision


def test_the_official_schedule_replaces_the_provisional_one(demo):
    # The State Council publishes 2027: the street enters it and clears "provisional";
    # the editable table wins over the statutory guess.
    CalendarDay.objects.create(date=date(2027, 1, 1), is_workday=False, note="元旦")
    CalendarDay.objects.create(date=date(2027, 2, 9), is_workday=True, note="调休上班")
    CalendarYear.objects.filter(street=None, year=2027).update(provisional=False)
    clock = WorkClock()
    assert clock.year_status(2027) == "table"
    assert clock.is_workday(date(2027, 2, 9)), "the official table wins"
    assert clock.is_workday(date(2027, 2, 10)), "no statutory guess once official"
    assert not clock.is_workday(date(2027, 1, 1))
