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
    assert "accounts_device" in sqls[0] and "WITH pos AS MATERIALIZED" in sqls[0]
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
    assert not any("WITH pos AS MATERIALIZED" in s for s in sqls)
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
