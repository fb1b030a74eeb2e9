"""What the read paths a phone hits most cost in queries (issue 19), with a real JWT request
(the caller, their device and their scope are one query, tests/test_request_cost.py):

- the change feed when nothing changed: the caller and one probe (was 14 queries);
- a first sync: plain rows, no model instance per household, resident or case;
- my tasks and my cases: the page and its count in one query, of only the columns shown;
- a revalidated tile (304): the caller and one cache lookup.

And the cheap answers are the ones the long way gives."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Model
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from gridsvc.accounts.models import Member
from gridsvc.cases.models import Case
from gridsvc.chain.scope import scope_for
from gridsvc.territory.models import Household, Resident
from gridsvc.visits.models import VisitTask

from .test_layers_tiles import fetch, tile_of
from .test_request_cost import jwt_client

pytestmark = pytest.mark.django_db

FEED = "/api/v1/sync/changes/"


def _get(client, path: str, **headers):  # type: ignore[no-untyped-def]
    """``(response, SQL of the queries it ran)``."""
    with CaptureQueriesContext(connection) as ctx:
        r = client.get(path, **headers)
    return r, [q["sql"] for q in ctx.captured_queries]


def _drain(client, cursor: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    body: dict = {"cursor": cursor}
    for _ in range(100):
        r = client.get(FEED + (f"?since={body['cursor']}" if body["cursor"] else ""))
        assert r.status_code == 200, r.content[:300]
        body = r.json()
        if not body["has_more"]:
            return body
    raise AssertionError("the feed did not end")


# ---------------------------------------------------------------- the change feed
def test_nothing_new_is_the_caller_and_one_probe(demo) -> None:
    client = jwt_client("grid1")
    last = _drain(client)
    client.get(f"{FEED}?since={last['cursor']}")  # per-process caches are not the cost
    r, sqls = _get(client, f"{FEED}?since={last['cursor']}")
    assert r.status_code == 200
    body = r.json()
    assert len(sqls) <= 2, sqls  # was 14: snapshot, tier, buildings, held-outside, streams …
    assert body["cursor"] == last["cursor"] and not body["has_more"]
    for key in ("tasks", "households", "residents", "cases", "inbox"):
        assert body[key] == [], key
    assert not any(body["purge"].values()) and body["territory_changed"] is False


def test_after_the_quiet_answer_a_change_still_comes(demo) -> None:
    """The probe only says "maybe": each stream's change makes the next answer a full one."""
    grid1 = Member.objects.get(username="grid1")
    scope = scope_for(grid1)
    client = jwt_client("grid1")
    cursor = _drain(client)["cursor"]
    # a task of the territory changes
    task = VisitTask.objects.filter(id__in=scope.filter(VisitTask.objects.all())).first()
    task.save()
    body = client.get(f"{FEED}?since={cursor}").json()
    assert task.id in [t["id"] for t in body["tasks"]]
    cursor = body["cursor"]
    # a household of the territory changes (the change log)
    hh = scope.filter(Household.objects.all()).first()
    hh.room = (hh.room or "") + "A"
    hh.save()
    body = client.get(f"{FEED}?since={cursor}").json()
    assert hh.id in [h["id"] for h in body["households"]]
    cursor = body["cursor"]
    # a case of the grid changes
    case = Case.objects.filter(grid=demo.grids[0]).first()
    case.title = case.title + "。"
    case.save()
    body = client.get(f"{FEED}?since={cursor}").json()
    assert case.id in [c["id"] for c in body["cases"]]
    # and then it is quiet again
    again = client.get(f"{FEED}?since={body['cursor']}").json()
    assert again["cursor"] == body["cursor"] and not again["tasks"] and not again["cases"]


def test_the_quiet_answer_names_the_offline_packages_as_package_states(demo) -> None:
    from gridsvc.layers.models import GridChange, OfflinePackage
    from gridsvc.layers.offline import package_states

    grid = demo.grids[0]
    built = timezone.now().replace(microsecond=120000) - timedelta(hours=1)
    OfflinePackage.objects.create(
        grid=grid, crs="gcj02", status="ready", etag="e-gcj", size=123, built_at=built
    )
    OfflinePackage.objects.create(
        grid=grid, crs="wgs84", status="ready", etag="e-wgs", size=456, built_at=built
    )
    GridChange.objects.create(grid_id=grid.id, changed_at=timezone.now())
    client = jwt_client("grid1")
    cursor = _drain(client)["cursor"]
    r, sqls = _get(client, f"{FEED}?since={cursor}")
    assert len(sqls) <= 2, sqls
    states = package_states(scope_for(Member.objects.get(username="grid1")))
    assert [p["crs"] for p in states] == ["wgs84", "gcj02"] and states[0]["stale"]
    assert r.json()["offline_packages"] == json.loads(JSONRenderer().render(states))


def test_a_first_sync_builds_no_model_instance_per_row(demo, monkeypatch) -> None:
    """Households, residents and cases are written from plain rows (each instance cost
    more than its row's SQL; a case carried a GEOS point)."""
    built: list[type] = []
    original = Model.from_db.__func__  # type: ignore[attr-defined]

    def spy(cls, db, field_names, values):  # type: ignore[no-untyped-def]
        built.append(cls)
        return original(cls, db, field_names, values)

    for model in (Household, Resident, Case):
        monkeypatch.setattr(model, "from_db", classmethod(spy))
    client = jwt_client("grid1")
    client.get(FEED)  # the territory's snapshot row, made once and shared
    built.clear()
    r, sqls = _get(client, FEED)
    assert r.status_code == 200
    body = r.json()
    assert body["households"] and body["residents"] and body["cases"]
    assert not built, {m.__name__ for m in built}
    assert len(sqls) <= 11, sqls  # was 17


# ---------------------------------------------------------------- my tasks, my cases
def test_my_tasks_is_one_query_after_the_caller_and_what_the_serializer_writes(demo) -> None:
    from api.visits.views import VisitTaskSerializer

    client = jwt_client("grid1")
    grid1 = Member.objects.get(username="grid1")
    assert VisitTask.objects.filter(assigned_member=grid1).count() > 50, "more than a page"
    client.get("/api/v1/visit-tasks/?mine=1")
    r, sqls = _get(client, "/api/v1/visit-tasks/?mine=1")
    assert r.status_code == 200
    assert len(sqls) <= 2, sqls  # was 3: the caller, COUNT, the page
    body = r.json()
    assert body["count"] == VisitTask.objects.filter(assigned_member=grid1).count()
    assert body["next"].endswith("/api/v1/visit-tasks/?mine=1&page=2") and not body["previous"]
    tasks = VisitTask.objects.filter(assigned_member=grid1).order_by("due_on", "id")[:50]
    expected = json.loads(JSONRenderer().render(VisitTaskSerializer(tasks, many=True).data))
    assert body["results"] == expected
    # the second page too, and past the end DRF's 404
    page2 = client.get("/api/v1/visit-tasks/?mine=1&page=2").json()
    tasks = VisitTask.objects.filter(assigned_member=grid1).order_by("due_on", "id")[50:100]
    assert page2["results"] == json.loads(
        JSONRenderer().render(VisitTaskSerializer(tasks, many=True).data)
    )
    assert client.get("/api/v1/visit-tasks/?mine=1&page=999").status_code == 404


@pytest.mark.parametrize("who", ["grid1", "cadre1"])
def test_my_cases_is_one_query_of_the_columns_shown(demo, who: str) -> None:
    member = Member.objects.get(username=who)
    mine = Case.objects.filter(handler=member)
    if mine.count() < 2:  # a page of several: an N+1 would show
        others = Case.objects.exclude(handler=member).order_by("id")[:3]
        Case.objects.filter(id__in=[c.id for c in others]).update(handler=member)
    client = jwt_client(who)
    client.get("/api/v1/cases/?mine=1")
    r, sqls = _get(client, "/api/v1/cases/?mine=1")
    assert r.status_code == 200
    assert len(sqls) <= 2, sqls  # was 3: the caller, COUNT, the page
    body = r.json()
    assert body["count"] == mine.count() == len(body["results"])
    assert {c["id"] for c in body["results"]} == set(mine.values_list("id", flat=True))
    page = sqls[-1].split(" FROM ")[0]
    # not the chain walked, nor the handler's password or contacts
    assert '"chain"' not in page and '"password"' not in page and '"email"' not in page, page


# ---------------------------------------------------------------- a revalidated tile
def test_a_revalidated_tile_is_the_caller_and_one_lookup(demo) -> None:
    client = jwt_client("grid1")
    z, x, y = tile_of(demo.grids[0], 16)
    first, _ = fetch(client, "buildings", z, x, y)
    r, sqls = _get(client, f"/tiles/buildings/{z}/{x}/{y}.mvt", HTTP_IF_NONE_MATCH=first["ETag"])
    assert r.status_code == 304 and r.content == b""
    assert len(sqls) <= 2, sqls
    assert "data" not in sqls[-1].split(" FROM ")[0].replace("ELSE data END", ""), sqls[-1]
