"""Case deadlines on the working-time clock: holidays, adjusted working days, a year with no
calendar, and deadlines recomputed when the calendar changes."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridsvc.cases import services
from gridsvc.cases.models import Case
from gridsvc.supervision.models import CalendarDay, CalendarYear

from .cases_helpers import member, report

pytestmark = pytest.mark.django_db
TZ = ZoneInfo("Asia/Shanghai")


def test_handling_deadline_skips_national_day_and_counts_the_adjusted_saturday(demo):
    # 2025: 1–8 October off; Saturday 11 October is an adjusted working day (调休上班)
    case = report("neighbour.noise", when=datetime(2025, 9, 30, 10, 0, tzinfo=TZ)).case
    assert case.level == "unit_head"  # 3 working days to handle at the unit head
    case = services.act(
        case.pk, "start", case.handler, when=datetime(2025, 9, 30, 11, 0, tzinfo=TZ)
    )
    assert case.due_at.astimezone(TZ) == datetime(2025, 10, 11, 18, 0, tzinfo=TZ)


def test_accept_deadline_in_working_hours_spans_lunch(demo):
    case = report("neighbour.noise", when=datetime(2026, 3, 3, 10, 0, tzinfo=TZ)).case
    assert case.due_stage == "accept"
    assert case.due_at.astimezone(TZ) == datetime(2026, 3, 3, 16, 30, tzinfo=TZ)


def test_a_deadline_in_a_year_with_no_calendar_is_a_clear_error_not_a_guess(demo):
    case = report("neighbour.noise", when=datetime(2028, 3, 1, 10, 0, tzinfo=TZ)).case
    assert case.pk and case.due_at is None, "the report is kept, with no guessed deadline"
    assert "2028" in case.deadline_error and "calendar" in case.deadline_error
    CalendarYear.objects.create(year=2028, note="declared by the street")
    assert services.recompute_open_deadlines() >= 1
    case.refresh_from_db()
    assert case.due_at is not None and case.deadline_error == ""
    assert case.events.filter(kind="deadline_recomputed").exists()


def test_a_calendar_change_moves_stored_deadlines(demo):
    case = report("neighbour.noise", when=datetime(2026, 3, 3, 10, 0, tzinfo=TZ)).case
    case = services.act(case.pk, "start", case.handler, when=datetime(2026, 3, 3, 11, 0, tzinfo=TZ))
    old = case.due_at.astimezone(TZ)
    assert old == datetime(2026, 3, 6, 18, 0, tzinfo=TZ)
    CalendarDay.objects.create(date=old.date(), is_workday=False, note="临时停工")
    services.recompute_open_deadlines(street_id=case.street_id)
    case.refresh_from_db()
    assert case.due_at.astimezone(TZ) == old + timedelta(days=3), "Friday off → next Monday"


def test_time_limit_change_is_picked_up(demo):
    case = report("neighbour.noise", when=datetime(2026, 3, 3, 10, 0, tzinfo=TZ)).case
    before = Case.objects.get(pk=case.pk).due_at
    limit = services.time_limit(case.category, "accept", "unit_head")
    limit.amount = 8
    limit.save()
    services.recompute_open_deadlines(category_ids=[limit.category_id])
    case.refresh_from_db()
    assert case.due_at > before


def test_reassigning_an_overdue_case_gives_the_new_handler_a_fresh_clock(demo):
    case = report("neighbour.noise", when=datetime(2026, 3, 3, 10, 0, tzinfo=TZ)).case
    first_due = case.due_at
    later = datetime(2026, 3, 5, 10, 0, tzinfo=TZ)  # two days past the accept deadline
    assert first_due < later
    case = services.act(
        case.pk, "assign", member("street"), data={"member": member("grid1").pk}, when=later
    )
    assert case.handler == member("grid1") and case.due_stage == "accept"
    assert case.due_at > later, "the new handler is not overdue the moment the case arrives"


def test_a_red_carded_case_leaves_the_overdue_queue_when_the_dispatcher_reassigns_it(demo):
    from django.utils import timezone

    case = report("neighbour.noise", when=datetime(2026, 3, 3, 10, 0, tzinfo=TZ)).case
    services.apply_clock(case.pk, now=datetime(2026, 3, 9, 10, 0, tzinfo=TZ))
    case.refresh_from_db()
    assert case.card == "red" and case.red_cards == 1
    overdue = services.dispatch_queue(Case.objects.all(), "overdue")
    assert overdue.filter(pk=case.pk).exists()
    case = services.act(
        case.pk, "assign", member("street"), data={"member": member("grid1").pk},
        when=timezone.now(),
    )  # fmt: skip
    assert case.card == "" and case.red_cards == 1, "the count stays for the assessment"
    assert not services.dispatch_queue(Case.objects.all(), "overdue").filter(pk=case.pk).exists()
    assert case.events.filter(kind="red_card").exists()


def test_a_deadline_set_by_a_dispatcher_survives_a_calendar_change(demo):
    """设定时限: the dispatcher's deadline is kept when the calendar changes; the worker's
    recompute does not put back the rule's (long past) deadline and red-card the case."""
    from django.utils import timezone

    now = timezone.now()
    case = report("neighbour.noise", when=now - timedelta(days=20)).case
    assert case.due_at < now and case.due_source == "rule"
    wanted = now + timedelta(days=10)
    case = services.act(
        case.pk, "set_deadline", member("street"), data={"due_at": wanted.isoformat()}
    )
    assert case.due_source == "person" and case.due_set_by == member("street")

    CalendarDay.objects.update_or_create(
        date=(now + timedelta(days=3)).astimezone(TZ).date(),
        defaults={"is_workday": False, "note": "临时停工"},
    )
    services.recompute_open_deadlines(street_id=case.street_id)
    case.refresh_from_db()
    assert abs(case.due_at - wanted) < timedelta(seconds=1), "the dispatcher's deadline stands"
    assert not case.events.filter(kind="deadline_recomputed").exists()
    kept = case.events.get(kind="deadline_kept")
    assert kept.data["source"] == "person" and kept.data["set_by"] == member("street").pk
    assert kept.data["rule"] < now.isoformat(), "the timeline shows what the rule would give"

    assert services.apply_clock(case.pk) == "running"
    case.refresh_from_db()
    assert case.card == "" and case.escalations == 0

    # a new stage: the rule's deadline again, recomputed on the next calendar change
    case = services.act(case.pk, "start", case.handler)
    assert case.due_source == "rule" and case.due_set_by is None
    CalendarDay.objects.update_or_create(
        date=case.due_at.astimezone(TZ).date(), defaults={"is_workday": False, "note": "再次停工"}
    )
    services.recompute_open_deadlines(street_id=case.street_id)
    assert case.events.get(kind="deadline_recomputed").data["source"] == "rule"
