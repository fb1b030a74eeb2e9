"""The worker and people's services (issue 21 item 1: "deadlines run on the same working-day
clock as cases; the worker reminds and escalates the same way"): a stage is reminded near its
deadline (临期, at the share of the span where a case gets its yellow card) to those who may
take it, and escalated once overdue to them and the street desk — each once per deadline;
holidays and their made-up days are skipped as for cases.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridsvc.accounts.models import Member
from gridsvc.assistance import services
from gridsvc.assistance.models import ApplicationEvent
from gridsvc.cases.services.deadlines import YELLOW_SHARE
from gridsvc.supervision.clock import deadline
from gridsvc.supervision.models import InboxMessage
from gridsvc.territory.models import Household

pytestmark = pytest.mark.django_db
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _hh(grid) -> Household:  # type: ignore[no-untyped-def]
    return Household.objects.filter(unit__building__grid=grid).order_by("-id").first()


def test_a_stage_is_reminded_near_its_deadline_then_escalated_each_once(demo):
    grid1 = Member.objects.get(username="grid1")
    start = datetime.combine(date(2026, 11, 16), time(9, 0), tzinfo=SHANGHAI)  # a Monday
    app = services.submit(grid1, _hh(demo.grids[0]), "pension", now=start).application
    span = app.due_at - start
    assert app.remind_at == start + timedelta(seconds=span.total_seconds() * YELLOW_SHARE)
    sent = InboxMessage.objects.filter(object_type="assistance", object_id=str(app.pk))
    assert services.apply_clock(app.pk, app.remind_at - timedelta(minutes=1)) == "not_due"
    # 临期: exactly those who may check it (the grid's member and cadre, community staff,
    # the street desk) — never a neighbour or another grid's member
    near = app.remind_at + timedelta(minutes=1)
    assert services.sweep(near).get("reminded") == 1
    warned = set(sent.filter(kind="yellow_card").values_list("member_id", flat=True))
    assert warned == set(services.actors_of(app.household, "check"))
    names = set(Member.objects.filter(pk__in=warned).values_list("username", flat=True))
    assert {"grid1", "cadre1"} <= names and not names & {"bh-001", "grid5"}
    assert services.apply_clock(app.pk, near) == "done"
    assert app.pk not in set(services.overdue(near).values_list("pk", flat=True))
    n = sent.count()
    # overdue: escalated once, the street desk included
    late = app.due_at + timedelta(minutes=1)
    assert services.apply_clock(app.pk, late) == "escalated"
    assert services.apply_clock(app.pk, late) == "done"
    escalated = set(sent.filter(kind="escalation").values_list("member__username", flat=True))
    assert "street" in escalated and "grid1" in escalated
    assert sent.count() == n + len(escalated)
    actions = list(
        ApplicationEvent.objects.filter(application=app).values_list("action", flat=True)
    )
    assert actions == ["submit", "reminder", "overdue"]
    # the next stage gets a fresh reminder time and deadline
    app = services.check(grid1, app.pk, members_count=1, monthly_income=0, documents=["身份证"])
    assert app.warned_for is None and app.reminded_for is None
    assert app.due_at > late and app.remind_at < app.due_at


def test_a_stage_deadline_skips_the_spring_festival_like_a_case(demo):
    grid1 = Member.objects.get(username="grid1")
    # Thu 4 Feb 2027; 除夕 Fri 5 – Wed 10 Feb rest (the weekend made up on Tue 9, Wed 10)
    start = datetime.combine(date(2027, 2, 4), time(10, 0), tzinfo=SHANGHAI)
    app = services.submit(grid1, _hh(demo.grids[0]), "medical_insurance", now=start).application
    assert app.due_at == deadline(start, 5, "working_days", demo.street.pk)
    # five working days: Thu 11, Fri 12, Mon 15, Tue 16, Wed 17 Feb
    assert app.due_at.astimezone(SHANGHAI).date() == date(2027, 2, 17)
    # the reminder falls inside working time of the span, after the holiday
    assert app.remind_at.astimezone(SHANGHAI).date() > date(2027, 2, 10)


def test_bulk_steps_set_the_reminder_too(demo):
    member = Member.objects.get(username="grid1")
    households = list(Household.objects.filter(unit__building__grid=demo.grids[0])[:3])
    apps = services.submit_many(member, households, "job")
    assert all(a.remind_at is not None and a.remind_at < a.due_at for a in apps)
    checked = services.check_many(
        member, [a.pk for a in apps], monthly_income=0, documents=["身份证"]
    )
    for a in checked:
        a.refresh_from_db()
        assert a.remind_at is not None and a.remind_at < a.due_at and a.warned_for is None
