"""Issue 19, the two paths a phone hits all day, counted in statements:

- a quiet poll of the change feed (``GET /api/v1/sync/changes/?since=<cursor>``, nothing new)
  is ONE statement: the feed's probe rides in the caller's query
  (gridsvc.accounts.authentication.Rider), its row read only once the caller passed every
  check and the cursor was found to be theirs — same bytes as the probe run on its own;
- report + route a case (``POST /api/v1/cases/`` with an Idempotency-Key).
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from api.visits import views as visit_views
from gridsvc.accounts.models import Device, Member

pytestmark = pytest.mark.django_db
PASSWORD = "gridsvc-demo"
FEED = "/api/v1/sync/changes/"


def _login(username: str, device: str = "phone-1") -> tuple[APIClient, dict]:
    r = APIClient().post(
        "/api/v1/auth/token/",
        {"username": username, "password": PASSWORD, "device": device},
        format="json",
    )
    assert r.status_code == 200, r.content[:300]
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {r.json()['access']}")
    return c, r.json()


def _drain(client: APIClient) -> str:
    body: dict = {"cursor": None}
    for _ in range(100):
        r = client.get(FEED + (f"?since={body['cursor']}" if body["cursor"] else ""))
        assert r.status_code == 200, r.content[:300]
        body = r.json()
        if not body["has_more"]:
            return body["cursor"]
    raise AssertionError("the feed did not end")


def _get(client: APIClient, path: str):  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        r = client.get(path)
    return r, [q["sql"] for q in ctx.captured_queries]


@pytest.mark.parametrize("who", ["grid1", "cadre1", "street", "bh-001"])
def test_a_quiet_poll_is_one_statement_with_the_bytes_of_the_probe_alone(
    demo, who, monkeypatch
) -> None:
    client, _ = _login(who)
    cursor = _drain(client)
    client.get(f"{FEED}?since={cursor}")  # per-process caches are not the request's cost
    r, sqls = _get(client, f"{FEED}?since={cursor}")
    assert r.status_code == 200
    assert len(sqls) == 1, sqls
    assert "accounts_device" in sqls[0] and "gridsvc_feed_probe_" in sqls[0]
    # the probe on its own (no rider): two statements, the same bytes
    with monkeypatch.context() as m:
        m.setattr(visit_views, "probe_rider_statement", lambda cursor: None)
        alone, sqls_alone = _get(client, f"{FEED}?since={cursor}")
    assert len(sqls_alone) == 2
    assert alone.content == r.content
    # something new: the rider's row says so and the streams bring it, as without it
    from gridsvc.chain.scope import scope_for
    from gridsvc.territory.models import Household

    hh = scope_for(Member.objects.get(username=who)).filter(Household.objects.all()).first()
    hh.room = (hh.room or "") + "R"
    hh.save()
    r = client.get(f"{FEED}?since={cursor}")
    with monkeypatch.context() as m:
        m.setattr(visit_views, "probe_rider_statement", lambda cursor: None)
        alone = client.get(f"{FEED}?since={cursor}")
    assert hh.id in [h["id"] for h in r.json()["households"]]
    assert alone.content == r.content


def test_a_revoked_device_or_a_bad_token_polls_nothing(demo) -> None:
    client, tokens = _login("grid1", device="lost-phone-feed")
    cursor = _drain(client)
    assert client.get(f"{FEED}?since={cursor}").status_code == 200
    Device.objects.filter(pk=tokens["device"]).update(revoked_at=timezone.now())
    r, sqls = _get(client, f"{FEED}?since={cursor}")
    assert r.status_code == 401 and r.json()["code"] == "device_revoked"
    assert "cursor" not in r.json() and "tasks" not in r.json()
    # a tampered token: refused before any statement
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access'][:-2]}xx")
    r, sqls = _get(bad, f"{FEED}?since={cursor}")
    assert r.status_code == 401 and "cursor" not in r.json()
    assert not any("gridsvc_feed_probe_" in s for s in sqls)
    # no token at all
    r = APIClient().get(f"{FEED}?since={cursor}")
    assert r.status_code == 401 and "cursor" not in r.json()


def test_an_inactive_member_polls_nothing(demo) -> None:
    client, _ = _login("grid3")
    cursor = _drain(client)
    Member.objects.filter(username="grid3").update(is_active=False)
    r = client.get(f"{FEED}?since={cursor}")
    assert r.status_code == 401 and "cursor" not in r.json()


def test_someone_elses_cursor_is_refused_though_its_probe_rode(demo) -> None:
    """The rider read the cursor before the caller was known: its row is used only once the
    cursor's signature is the caller's; another member's cursor is a 400 as before."""
    grid1, _ = _login("grid1")
    cursor = _drain(grid1)
    grid2, _ = _login("grid2")
    r, sqls = _get(grid2, f"{FEED}?since={cursor}")
    assert r.status_code == 400 and "since" in json.dumps(r.json())
    assert "cursor" not in r.json()
    assert len(sqls) == 1  # the probe rode; nothing of it was answered


# ---------------------------------------------------------------- report + route
def _report_body(username: str, title: str) -> dict:
    from gridsvc.chain.models import Position
    from gridsvc.territory.models import Building

    post = Position.objects.held_at().filter(member__username=username, grid__isnull=False).first()
    b = Building.objects.filter(grid_id=post.grid_id).exclude(point=None).order_by("id").first()
    return {"category": "neighbour.noise", "title": title, "lon": b.point.x, "lat": b.point.y}


def _post(client: APIClient, body: dict, key: str):  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        r = client.post(
            "/api/v1/cases/",
            json.dumps(body),
            content_type="application/json",
            headers={"Idempotency-Key": key},
        )
    # the test's own transaction makes the middleware's a savepoint: not the request's cost
    sqls = [q["sql"] for q in ctx.captured_queries]
    return r, [s for s in sqls if not s.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))], sqls


def test_a_report_with_an_idempotency_key_is_fifteen_statements_and_replays(demo) -> None:
    """Was 24 (the key's savepoint, SET lock_timeout, INSERT, SET back, release; the
    report's savepoint and release; time limits, calendar days and office hours apart; the
    handler loaded again for the answer): now the key is one statement, the report's block
    has no savepoint, the deadline's rules one statement, the handler's name the routing's."""
    from gridsvc.cases.models import Case

    client, _ = _login("grid1")
    _post(client, _report_body("grid1", "测试 预热"), "warm-write-1")  # per-process caches
    body = _report_body("grid1", "测试 计数")
    r, sqls, raw = _post(client, body, "count-write-1")
    assert r.status_code == 201, r.content[:300]
    assert len(sqls) <= 15, "\n".join(s[:120] for s in sqls)
    assert len(raw) - len(sqls) == 2, "only the middleware's block is a savepoint (the test's)"
    assert sum("lock_timeout" in s for s in sqls) == 1
    assert sum("supervision_calendarday" in s for s in sqls) == 1
    assert any("cases_timelimit" in s and "supervision_workinghours" in s for s in sqls)
    assert not any(s.startswith('SELECT "accounts_member"') for s in sqls)
    case = Case.objects.select_related("handler").get(pk=r.json()["case"]["id"])
    assert case.handler_id is not None
    assert r.json()["case"]["handler_name"] == str(case.handler)
    # the retry: the first answer, byte for byte, no second case
    again, _, _ = _post(client, body, "count-write-1")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.content == r.content
    assert Case.objects.filter(title="测试 计数").count() == 1
    # a refusal is answered and kept, before the report's transaction
    bad = {**body, "on_the_spot": True}
    r, _, _ = _post(client, bad, "count-write-2")
    assert r.status_code == 400
    again, _, _ = _post(client, bad, "count-write-2")
    assert again.status_code == 400 and again["Idempotent-Replayed"] == "true"


def test_the_key_sets_its_lock_timeout_for_its_own_wait_only(demo) -> None:
    from django.db import transaction

    from gridsvc.sync import idempotency

    member = Member.objects.get(username="grid2")
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SET LOCAL lock_timeout = '7s'")
        got = idempotency.claim(member.pk, "lt-1", "POST", "/api/v1/cases/", "x" * 64)
        assert not got.replay and got.record.pk is not None
        with connection.cursor() as cur:
            cur.execute("SHOW lock_timeout")
            assert cur.fetchone()[0] == "7s"
        # the record is the row stored
        stored = idempotency.IdempotencyRecord.objects.get(pk=got.record.pk)
        assert (stored.member_id, stored.key, stored.status) == (member.pk, "lt-1", None)
        assert stored.response_headers == {}
        # the same key again in the same transaction: still running → 409
        with pytest.raises(idempotency.KeyRefused) as exc:
            idempotency.claim(member.pk, "lt-1", "POST", "/api/v1/cases/", "x" * 64)
        assert exc.value.status == 409


def test_a_reports_deadline_follows_the_streets_calendar_and_office_hours(demo) -> None:
    """The deadline read in one statement is the one the ORM path computes (street calendar
    days win over all-street ones, the street's office hours)."""
    from datetime import timedelta

    from gridsvc.cases.models import Case
    from gridsvc.cases.services.deadlines import compute_deadline
    from gridsvc.supervision.models import CalendarDay, WorkingHours

    client, _ = _login("grid1")
    r, _, _ = _post(client, _report_body("grid1", "测试 时限 1"), "deadline-1")
    case = Case.objects.get(pk=r.json()["case"]["id"])
    street = case.street_id
    assert street is not None and case.due_at is not None
    today = timezone.localdate()
    for n in range(1, 6):
        CalendarDay.objects.update_or_create(
            street_id=None, date=today + timedelta(days=n), defaults={"is_workday": True}
        )
        CalendarDay.objects.update_or_create(
            street_id=street, date=today + timedelta(days=n), defaults={"is_workday": False}
        )
    WorkingHours.objects.update_or_create(
        street_id=street, defaults={"periods": [["09:00", "11:00"], ["13:00", "17:00"]]}
    )
    r, _, _ = _post(client, _report_body("grid1", "测试 时限 2"), "deadline-2")
    moved = Case.objects.get(pk=r.json()["case"]["id"])
    assert moved.due_at is not None
    assert (moved.due_at, "") == compute_deadline(moved)  # the ORM path: its own queries
    assert r.json()["case"]["due_at"] is not None
    # the clock and limits read in one statement are the ORM's
    from gridsvc.cases.services.deadlines import time_limits, time_limits_and_clock
    from gridsvc.supervision.clock import WorkClock

    wanted = {"accept": moved.level, "handle": moved.level, "verify": ""}
    limits, clock = time_limits_and_clock(moved.category, wanted, street)
    orm = WorkClock(street)
    assert clock._overrides == orm._overrides
    assert clock._overrides[today + timedelta(days=1)] is False  # the street's row wins
    assert clock.periods == orm.periods and clock.periods != WorkClock(None).periods
    assert {k: (v and (v.pk, v.amount, v.unit)) for k, v in limits.items()} == {
        k: (v and (v.pk, v.amount, v.unit)) for k, v in time_limits(moved.category, wanted).items()
    }
