"""Every date-time a client sends is read by one rule (api.fields): ISO 8601 from 1970-01-01
to 2099-12-31 UTC, else a 400 naming the field and nothing stored or changed. A phone once
sent a visit in year 706, stored and echoed with Shanghai's local mean time (+08:05:43), which
no RFC 3339 date-time can carry; a deadline, a hand-over's time, an application's made_at and
the cases' date-time filters took such times too, and so did the chain's "as it was at" (``at``),
Open311's ``start_date``/``end_date`` and the layers' ``since``/``until`` and OGC API
``datetime`` (each end of an interval). Normal times with an offset are stored as the instant
they name and answered as before."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from api.fields import CLIENT_TIME_MESSAGE
from gridsvc.accounts.models import Member
from gridsvc.assistance.models import Application
from gridsvc.cases.models import Case, CaseEvent
from gridsvc.chain.models import Position
from gridsvc.territory.models import Building, Household

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


# ---------------------------------------------------------------- the chain's "as it was at"
#: days alone, where a parameter also takes a day (Open311, the layers)
OUT_OF_RANGE_DAYS = ["0706-01-29", "9999-12-31"]


def _jwt(username: str) -> APIClient:
    """A phone's client (a bearer token: the chain's statement rides with the caller)."""
    r = APIClient().post(
        "/api/v1/auth/token/",
        {"username": username, "password": "gridsvc-demo", "device": "phone-times"},
        format="json",
    )
    assert r.status_code == 200, r.content[:300]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {r.json()['access']}")
    return client


def _b003() -> Building:
    return Building.objects.get(code__endswith="B003")


@pytest.mark.parametrize("path", ["/api/v1/positions/", "/api/v1/chain/"])
def test_at_out_of_range_is_a_400_naming_at(demo, member_client, path):
    building = _b003().pk
    for client in (member_client("street"), _jwt("street")):
        for bad in OUT_OF_RANGE:
            _refused(client.get(path, {"building": building, "at": bad}), "at")


def test_positions_at_a_time_with_an_offset_are_those_held_at_that_instant(demo, member_client):
    street = member_client("street")
    building = _b003().pk

    def held(at: str) -> list[int]:
        r = street.get("/api/v1/positions/", {"building": building, "at": at})
        assert r.status_code == 200, r.content
        return [p["id"] for p in r.json()["results"]]

    march = held("2026-03-01T00:00:00Z")
    assert march and held("2026-03-01T08:00:00+08:00") == march
    assert held("2026-08-01T08:00:00+08:00") == held("2026-08-01T00:00:00Z") != march


def test_the_chain_at_a_time_with_an_offset_answers_as_before(demo, member_client):
    """The answer's ``when`` is the time as sent (its offset kept), the chain that instant's."""
    building = _b003()
    path = "/api/v1/chain/"
    at = _east8(timezone.now() - timedelta(days=3))
    utc = at.astimezone(timezone.get_fixed_timezone(0))
    for client in (member_client("street"), _jwt("street")):
        for ref in ({"building": building.pk}, {"lon": building.point.x, "lat": building.point.y}):
            sent = client.get(path, {**ref, "at": at.isoformat()})
            assert sent.status_code == 200, sent.content
            assert sent.json()["when"] == at.isoformat()
            same = client.get(path, {**ref, "at": utc.isoformat()}).json()
            assert same["when"] == utc.isoformat()
            assert {**same, "when": None} == {**sent.json(), "when": None}


# ---------------------------------------------------------------- Open311's start/end_date
OPEN311 = "/open311/v2/requests.json"


@pytest.mark.parametrize("name", ["start_date", "end_date"])
def test_an_open311_date_out_of_range_is_a_400_naming_it(demo, member_client, name):
    grid1 = member_client("grid1")
    for bad in OUT_OF_RANGE + OUT_OF_RANGE_DAYS:
        r = grid1.get(OPEN311, {name: bad})
        assert r.status_code == 400, (bad, r.content[:300])
        (error,) = r.json()
        assert error["description"].startswith(f"{name}: "), error
        if bad in OUT_OF_RANGE:
            assert CLIENT_TIME_MESSAGE in error["description"], error


def test_an_open311_window_with_an_offset_lists_the_same_requests(demo, member_client):
    street = member_client("street")
    now = timezone.now()
    start, end = now - timedelta(days=60), now + timedelta(hours=1)
    listed = []
    for clock in (timezone.get_fixed_timezone(0), EAST8):
        r = street.get(
            OPEN311,
            {
                "start_date": start.astimezone(clock).replace(microsecond=0).isoformat(),
                "end_date": end.astimezone(clock).replace(microsecond=0).isoformat(),
            },
        )
        assert r.status_code == 200, r.content[:300]
        listed.append([x["service_request_id"] for x in r.json()])
    assert listed[0] == listed[1] != []


# ---------------------------------------------------------------- the layers' times
@pytest.mark.parametrize("name", ["since", "until", "from", "to"])
def test_a_layer_time_out_of_range_is_a_400_naming_it(demo, member_client, name):
    street = member_client("street")
    for url in ("/api/v1/heatmap/cases/", "/api/v1/layers/cases/", "/api/v1/choropleth/grids/"):
        for bad in OUT_OF_RANGE + OUT_OF_RANGE_DAYS:
            r = street.get(url, {name: bad})
            assert r.status_code == 400 and name in r.json(), (url, bad, r.content[:300])
            if bad not in ("9999-12-31",):  # the day after it is past the calendar
                assert CLIENT_TIME_MESSAGE in r.json()[name], (url, bad, r.json())


def test_an_ogc_datetime_with_an_end_out_of_range_is_a_400_naming_datetime(demo, member_client):
    street = member_client("street")
    fine = "2026-01-01T00:00:00+08:00"
    for bad in OUT_OF_RANGE + OUT_OF_RANGE_DAYS:
        for value in (bad, f"{bad}/..", f"../{bad}", f"{bad}/{fine}", f"{fine}/{bad}"):
            r = street.get("/ogc/collections/cases/items", {"datetime": value})
            assert r.status_code == 400 and "datetime" in r.json(), (value, r.content[:300])


def test_layer_times_with_an_offset_answer_as_before(demo, member_client):
    """The heatmap echoes ``since``/``until`` as sent; the same instants in UTC count the
    same cases; an OGC API interval with +08:00 ends lists what its UTC twin lists."""
    street = member_client("street")
    since = _east8(timezone.now() - timedelta(days=120))
    until = _east8(timezone.now() + timedelta(hours=1))
    utc = timezone.get_fixed_timezone(0)
    r = street.get(
        "/api/v1/heatmap/cases/", {"since": since.isoformat(), "until": until.isoformat()}
    )
    assert r.status_code == 200, r.content[:300]
    body = r.json()
    assert (body["since"], body["until"]) == (since.isoformat(), until.isoformat())
    twin = street.get(
        "/api/v1/heatmap/cases/",
        {"since": since.astimezone(utc).isoformat(), "until": until.astimezone(utc).isoformat()},
    ).json()
    assert twin["total"] == body["total"] > 0
    items = []
    for clock in (utc, EAST8):
        interval = f"{since.astimezone(clock).isoformat()}/{until.astimezone(clock).isoformat()}"
        r = street.get("/ogc/collections/cases/items", {"datetime": interval, "limit": 1000})
        assert r.status_code == 200, r.content[:300]
        items.append(sorted(f["id"] for f in r.json()["features"]))
    assert items[0] == items[1] != []


def test_an_offset_postgresql_cannot_take_is_read_as_the_same_instant(demo, member_client):
    """Python takes offsets up to ±23:59, PostgreSQL's timestamptz only to ±15:59: such a
    time is the same instant in UTC, not a 500."""
    street = member_client("street")
    far = "2026-03-01T00:00:00-23:54"
    assert street.get("/api/v1/positions/", {"building": _b003().pk, "at": far}).status_code == 200
    assert street.get("/api/v1/chain/", {"building": _b003().pk, "at": far}).status_code == 200
    assert street.get(OPEN311, {"start_date": far}).status_code == 200
    r = street.get("/api/v1/heatmap/cases/", {"since": far})
    assert r.status_code == 200 and r.json()["since"] == "2026-03-01T23:54:00+00:00", r.content
    r = street.get("/ogc/collections/cases/items", {"datetime": f"{far}/.."})
    assert r.status_code == 200, r.content[:300]
