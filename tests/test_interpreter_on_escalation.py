"""Escalation re-checks the interpreter for the new handler (issue 20 item 11): a case of a
household with a resident needing 东乡语 that moves up to someone who does not speak it gets a
民族语言翻译员 attached (and told), one who does speak it drops the call, and a retried clock
job makes no second call."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gridsvc.cases import services
from gridsvc.cases.models import Case
from gridsvc.cases.tasks import sweep_once
from gridsvc.community.models import (
    InterpreterCall,
    MemberLanguage,
    TeamMembership,
)
from gridsvc.supervision.models import InboxMessage

from .cases_helpers import report
from .unity_helpers import interpreter_with_account, needing_household

pytestmark = pytest.mark.django_db


def _speaks(member_id: int) -> None:
    MemberLanguage.objects.update_or_create(
        member_id=member_id, defaults={"languages": ["sce"], "recorded_by_id": member_id}
    )


def _told(interp: TeamMembership, case: Case) -> int:
    return InboxMessage.objects.filter(member=interp.member, object_id=str(case.pk)).count()


def test_escalation_by_the_clock_attaches_and_drops_the_interpreter(demo):
    hh, _ = needing_household()
    interp = interpreter_with_account(hh, "interp-esc")
    case = report("neighbour.noise", household=hh).case
    assert case.handler_id is not None and case.household_id == hh.pk
    # the first handler speaks 东乡语: no interpreter along
    _speaks(case.handler_id)
    InterpreterCall.objects.filter(case=case).delete()
    InboxMessage.objects.filter(member=interp.member).delete()
    first = case.handler_id

    # overdue: the clock moves it up to a handler who does not speak it → an interpreter
    now = case.due_at + timedelta(minutes=1)
    assert services.apply_clock(case.pk, now) == "escalated"
    case.refresh_from_db()
    assert case.handler_id is not None and case.handler_id != first
    assert not MemberLanguage.objects.filter(member_id=case.handler_id).exists()
    call = InterpreterCall.objects.get(case=case)
    assert call.language == "sce" and call.interpreter == interp
    assert call.assignee_id == case.handler_id
    assert _told(interp, case) == 1

    # the job retried (and the sweep catching up at the same minute): no second call, no
    # second message
    assert services.apply_clock(case.pk, now) != "escalated"
    sweep_once(now)
    case.refresh_from_db()
    assert InterpreterCall.objects.filter(case=case).count() == 1
    assert InterpreterCall.objects.get(case=case).pk == call.pk
    assert _told(interp, case) == 1

    # the next level's holder speaks 东乡语: escalated to them, the call is dropped
    second = case.handler_id
    case.refresh_from_db()
    later = case.due_at + timedelta(minutes=1)
    from gridsvc.chain.services import LEVELS, walk
    from gridsvc.territory.services import locate

    loc = locate(case.location, household=case.household, unit=case.unit, building=case.building)
    step, _ = walk(loc, later).first_active_from(LEVELS[case.level_index + 1].name)
    assert step.primary is not None
    _speaks(step.primary.member_id)
    assert services.apply_clock(case.pk, later) == "escalated"
    case.refresh_from_db()
    assert case.handler_id not in (None, second)
    assert not InterpreterCall.objects.filter(case=case).exists()


def test_escalation_by_hand_attaches_the_interpreter_for_the_new_handler(demo, member_client):
    hh, _ = needing_household()
    interp = interpreter_with_account(hh, "interp-esc")
    case = report("neighbour.noise", household=hh).case
    _speaks(case.handler_id)
    InterpreterCall.objects.filter(case=case).delete()
    first = case.handler_id
    r = member_client(case.handler.username).post(
        f"/api/v1/cases/{case.pk}/actions/escalate/", {"note": "需上级协调"}, format="json"
    )
    assert r.status_code == 200, r.content
    case.refresh_from_db()
    assert case.handler_id not in (None, first)
    call = InterpreterCall.objects.get(case=case)
    assert call.assignee_id == case.handler_id and call.interpreter == interp
    assert _told(interp, case) >= 1
