"""Every date-time a client sends is read by one rule (api.fields): ISO 8601 from 1970-01-01
to 2099-12-31 UTC, else a 400 naming the field and nothing stored or changed. A phone once
sent a visit in year 706, stored and echoed with Shanghai's local mean time (+08:05:43), which
no RFC 3339 date-time can carry; a deadline, a hand-over's time, an application's made_at and
the cases' date-time filters took such times too. Normal times with an offset are stored as
the instant they name and answered as before."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from api.fields import CLIENT_TIME_MESSAGE
from gridsvc.accounts.models import Member
from gridsvc.assistance.models import Application
from gridsvc.cases.models import Case, CaseEvent
from gridsvc.chain.models import Position
from gridsvc.territory.models import Household

from .cases_helpers import report

pytestmark = pytest.mark.django_db

#: as the phone sent it, and as Shanghai's local mean time echoed it; the calendar's far end
#: (also past it in UTC)
OUT_OF_RANGE = [
    "0706-01-29T10:18:58",
    "0706-01-29T10:18:58+08:05:43",
    "1969-12-31T23:59:59Z",
    "2100-01-01T00:00:00Z",
    "9999-12-31T23:59:59+08:00",
    "9999-12-31T23:00:00-08:00",
]
EAST8 = timezone.get_fixed_timezone(8 * 60)


def _east8(moment: datetime) -> datetime:
    """``moment`` on a +08:00 clock, to the second (as a client sends it)."""
    return moment.astimezone(EAST8).replace(microsecond=0)


def _refused(r, field: str) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == 400, (field, r.status_code, r.content[:300])
    assert CLIENT_TIME_MESSAGE in r.json()[field], r.json()


# ---------------------------------------------------------------- a case's deadline
def test_a_deadline_out_of_range_is_refused_naming_due_at_and_nothing_changes(demo, member_client):
    case = report().case
    street = member_client("street")
    before = Case.objects.get(pk=case.pk)
    events = CaseEvent.objects.filter(case=case).count()
    for bad in OUT_OF_RANGE:
        r = street.post(
            f"/api/v1/cases/{case.pk}/actions/set_deadline/", {"due_at": bad}, format="json"
        )
        _refused(r, "due_at")
        r = street.post(
            "/api/v1/dispatch/set_deadline/", {"ids": [case.pk], "due_at": bad}, format="json"
        )
        _refused(r, "due_at")
    after = Case.objects.get(pk=case.pk)
    assert (after.due_at, after.version) == (before.due_at, before.version)
    assert CaseEvent.objects.filter(case=case).count() == events


def test_a_deadline_with_an_offset_is_stored_and_answered_as_before(demo, member_client):
    case = report().case
    street = member_client("street")
    wanted = _east8(timezone.now() + timedelta(days=3))
    r = street.post(
        f"/api/v1/cases/{case.pk}/actions/set_deadline/",
        {"due_at": wanted.isoformat()},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert r.json()["due_at"] == wanted.isoformat()  # the server's zone is +08:00 too
    case.refresh_from_db()
    assert case.due_at == wanted
    event = CaseEvent.objects.filter(case=case, kind="set_deadline").latest("pk")
    assert event.data["due_at"] == wanted.isoformat()  # recorded as sent
    # the dispatch desk, several cases at once
    later = wanted + timedelta(days=1)
    r = street.post(
        "/api/v1/dispatch/set_deadline/",
        {"ids": [case.pk], "due_at": later.isoformat()},
        format="json",
    )
    assert r.status_code == 200 and r.json()["results"][0]["ok"], r.content
    case.refresh_from_db()
    assert case.due_at == later


def test_a_past_deadline_in_range_is_still_the_rules_to_refuse(demo, member_client):
    """Only the range is new: a deadline in the past is refused by the case rules as before."""
    case = report().case
    r = member_client("street").post(
        f"/api/v1/cases/{case.pk}/actions/set_deadline/",
        {"due_at": "2001-01-01T08:00:00+08:00"},
        format="json",
    )
    assert r.status_code == 400 and "future" in str(r.json()["due_at"]), r.content


# ---------------------------------------------------------------- a hand-over's time
def _post(pos: Position) -> tuple[Position, Member]:
    return pos, Member.objects.create_user(f"next-{uuid.uuid4().hex[:8]}", password="x-long-pw-1")


def test_a_hand_over_out_of_range_is_refused_naming_when(demo, member_client):
    pos, newcomer = _post(
        Position.objects.held_at().get(member__username="grid1", position_type="grid_member")
    )
    street = member_client("street")
    for bad in OUT_OF_RANGE:
        r = street.post(
            f"/api/v1/positions/{pos.pk}/hand-over/",
            {"member": newcomer.pk, "when": bad},
            format="json",
        )
        _refused(r, "when")
    pos.refresh_from_db()
    assert pos.valid_to is None and not Position.objects.filter(member=newcomer).exists()


def test_a_hand_over_at_a_time_with_an_offset_is_stored_as_that_instant(demo, member_client):
    pos, newcomer = _post(
        Position.objects.held_at().get(member__username="grid1", position_type="grid_member")
    )
    when = _east8(timezone.now() - timedelta(hours=1))
    r = member_client("street").post(
        f"/api/v1/positions/{pos.pk}/hand-over/",
        {"member": newcomer.pk, "when": when.isoformat()},
        format="json",
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["closed"]["valid_to"] == when.isoformat()
    assert body["opened"]["valid_from"] == when.isoformat()
    pos.refresh_from_db()
    assert pos.valid_to == when


# ---------------------------------------------------------------- an application's made_at
def _application(household: Household, made_at: str) -> dict:
    return {
        "kind": "application",
        "client_uuid": str(uuid.uuid4()),
        "data": {"household": household.pk, "kind": "temp_relief", "made_at": made_at},
    }


def _household(demo) -> Household:  # type: ignore[no-untyped-def]
    household = (
        Household.objects.filter(unit__building__grid=demo.grids[0], residents__isnull=False)
        .distinct()
        .order_by("id")[2]
    )
    Application.objects.filter(household=household, kind="temp_relief").delete()
    return household


def test_an_application_made_out_of_range_is_rejected_naming_made_at(demo, member_client):
    household = _household(demo)
    items = [_application(household, bad) for bad in OUT_OF_RANGE]
    r = member_client("grid1").post("/api/v1/assistance/batch/", {"items": items}, format="json")
    assert r.status_code == 200, r.content  # a batch answers per item
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["rejected"] * len(OUT_OF_RANGE), results
    for x in results:
        assert x["errors"] == {"made_at": [CLIENT_TIME_MESSAGE]}, x
    assert not Application.objects.filter(household=household, kind="temp_relief").exists()


def test_an_application_made_at_a_time_with_an_offset_runs_from_that_instant(demo, member_client):
    from gridsvc.assistance.services import STAGE_WORKING_DAYS
    from gridsvc.supervision.clock import deadline

    household = _household(demo)
    made = _east8(timezone.now() - timedelta(days=2))
    r = member_client("grid1").post(
        "/api/v1/assistance/batch/",
        {"items": [_application(household, made.isoformat())]},
        format="json",
    )
    assert r.json()["results"][0]["status"] == "accepted", r.content
    app = Application.objects.get(pk=r.json()["results"][0]["id"])
    assert app.due_at == deadline(
        made, STAGE_WORKING_DAYS["submitted"], "working_days", demo.street.pk
    )


# ---------------------------------------------------------------- the cases' filters
@pytest.mark.parametrize("name", ["since", "until", "updated_since"])
def test_a_date_time_filter_out_of_range_is_a_400_naming_it(demo, member_client, name):
    street = member_client("street")
    for url in ("/api/v1/cases/", "/api/v1/dispatch/queue/"):
        for bad in OUT_OF_RANGE:
            _refused(street.get(url, {name: bad}), name)


def test_a_date_time_filter_with_an_offset_names_the_same_instant(demo, member_client):
    street = member_client("street")
    since = timezone.now() - timedelta(days=30)
    utc = since.replace(microsecond=0).astimezone(timezone.get_fixed_timezone(0))
    counts = []
    for moment in (utc, _east8(since)):
        r = street.get("/api/v1/cases/", {"since": moment.isoformat(), "page_size": 1})
        assert r.status_code == 200, r.content
        counts.append(r.json()["count"])
    assert counts[0] == counts[1] > 0
