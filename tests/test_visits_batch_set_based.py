"""A visit batch is stored set-based (issue 19 item 3): the number of queries does not grow with
the batch, one INSERT stores it (the layers' statement-level tile trigger runs once and still
drops the visit tiles under it), savepoints only for the items whose findings open cases, and the
in-batch task rules hold (the first visit of a household takes its task; a refused item closes
nothing)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.contrib.gis.geos import Polygon
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from gridsvc.layers.models import TileCache
from gridsvc.territory.models import Household
from gridsvc.visits.models import Visit, VisitTask

pytestmark = pytest.mark.django_db


def _households(username: str, n: int) -> list[Household]:
    from gridsvc.accounts.models import Member
    from gridsvc.chain.scope import scope_for

    member = Member.objects.get(username=username)
    qs = scope_for(member).filter(Household.objects.all()).select_related("unit__building")
    homes = list(qs.order_by("id")[:n])
    assert len(homes) == n, f"{username} has fewer than {n} households"
    return homes


def _item(household: Household, when, **extra) -> dict:  # type: ignore[no-untyped-def]
    p = household.unit.building.point
    body = {
        "client_uuid": str(uuid.uuid4()),
        "household": household.id,
        "client_time": when.isoformat(),
        "lon": p.x,
        "lat": p.y,
        "accuracy_m": 12,
        "purpose": "入户走访",
        "notes": "正常",
    }
    body.update(extra)
    return body


def _post(client, items: list[dict]):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/visits/batch/", json.dumps({"visits": items}), content_type="application/json"
    )


def _count(client, items: list[dict]) -> tuple[list[str], dict]:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        r = _post(client, items)
    assert r.status_code == 200, r.content[:300]
    return [q["sql"] for q in ctx.captured_queries], r.json()


def test_the_queries_of_a_batch_do_not_grow_with_its_size(demo, member_client):
    client = member_client("grid1")
    now = timezone.now() - timedelta(hours=1)
    with_task = {
        t.household_id
        for t in VisitTask.objects.filter(
            assigned_member__username="grid1", status="open", rule__code="all-households-yearly"
        )
    }
    homes = _households("grid1", 120)
    due = [h for h in homes if h.id in with_task]
    rest = [h for h in homes if h.id not in with_task]
    assert len(due) >= 2 and len(rest) >= 55
    _count(client, [_item(rest[54], now)])  # per-process caches are not the batch's cost
    small, small_body = _count(client, [_item(h, now) for h in [due[0], *rest[:4]]])
    large, large_body = _count(client, [_item(h, now) for h in [due[1], *rest[4:52]]])
    assert small_body["summary"]["accepted"] == 5
    assert large_body["summary"]["accepted"] == 49
    # both batches close tasks (the grid member's yearly visits), so both run the task UPDATE
    assert any(r["closed_tasks"] for r in small_body["results"])
    assert any(r["closed_tasks"] for r in large_body["results"])
    ids = [r["id"] for r in large_body["results"]]
    assert ids == sorted(ids), "visits get their ids in batch order"
    assert abs(len(large) - len(small)) <= 1, (len(small), len(large), large)
    assert len(large) <= 14, large
    # one INSERT stores the batch, no savepoint per item
    inserts = [q for q in large if q.lstrip().upper().startswith("WITH") and "INSERT" in q]
    assert len(inserts) == 1, inserts
    assert sum(q.startswith("SAVEPOINT") for q in large) <= 1


def test_the_tile_trigger_still_drops_the_visit_tiles_under_a_batch(demo, member_client):
    homes = _households("grid1", 3)
    p = homes[0].unit.building.point
    now = timezone.now()
    tile = TileCache.objects.create(
        layer="visits",
        z=17,
        x=1,
        y=1,
        variant="test",
        data=b"",
        size=0,
        etag="e",
        bounds=Polygon.from_bbox((p.x - 0.001, p.y - 0.001, p.x + 0.001, p.y + 0.001)),
        created_at=now,
        expires_at=now + timedelta(days=1),
    )
    r = _post(member_client("grid1"), [_item(h, now - timedelta(minutes=5)) for h in homes])
    assert r.json()["summary"]["accepted"] == 3
    assert not TileCache.objects.filter(pk=tile.pk).exists()


def test_only_items_that_open_cases_get_a_savepoint(demo, member_client):
    from gridsvc.cases.models import Case

    homes = _households("grid1", 12)
    now = timezone.now() - timedelta(hours=2)
    finding = {"category": "hazard.fire", "description": "楼道堆物", "open_case": True}
    items = [_item(h, now) for h in homes[:10]]
    items[4]["findings"] = [finding]
    items[7]["findings"] = [{"category": "no-such-category", "open_case": True}]
    before = Case.objects.count()
    queries, body = _count(member_client("grid1"), items)
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["accepted"] * 7 + ["rejected", "accepted", "accepted"], body["results"]
    assert "findings" in body["results"][7]["errors"]
    assert len(body["results"][4]["case_ids"]) == 1 and Case.objects.count() == before + 1
    visit = Visit.objects.get(pk=body["results"][4]["id"])
    assert visit.case_ids == body["results"][4]["case_ids"]
    assert visit.findings[0]["case_number"]
    # the batch's own savepoint (the test runs in a transaction), one per case item (and what
    # reporting a case uses inside it) — not one per item (10 and more before)
    savepoints = sum(q.startswith("SAVEPOINT") for q in queries)
    assert 3 <= savepoints < 8, queries


def test_in_a_batch_the_first_visit_of_a_household_takes_its_task(demo, member_client):
    task = (
        VisitTask.objects.filter(
            assigned_member__username="grid1", status="open", rule__code="all-households-yearly"
        )
        .select_related("household__unit__building")
        .order_by("id")
        .first()
    )
    now = timezone.now()
    bad = {"category": "no-such-category", "open_case": True}
    results = _post(
        member_client("grid1"),
        [
            # refused: closes nothing, so the next visit of the household takes the task
            _item(task.household, now - timedelta(hours=3), findings=[bad]),
            _item(task.household, now - timedelta(hours=2)),
            _item(task.household, now - timedelta(hours=1)),
        ],
    ).json()["results"]
    assert [r["status"] for r in results] == ["rejected", "accepted", "accepted"]
    assert task.id in results[1]["closed_tasks"] and results[1]["task_link"] == "linked"
    assert task.id not in results[2]["closed_tasks"]
    task.refresh_from_db()
    assert task.status == "done" and task.done_by_id == results[1]["id"]
    assert Visit.objects.get(pk=results[1]["id"]).task_id in results[1]["closed_tasks"]


def test_a_batch_keeps_the_clock_rows_and_the_distance(demo, member_client):
    from gridsvc.sync.models import VisitClock

    homes = _households("grid1", 2)
    now = timezone.now()
    items = [_item(h, now - timedelta(minutes=30)) for h in homes]
    items[1]["client_time"] = (now + timedelta(days=2)).isoformat()  # a phone from the future
    body = _post(member_client("grid1"), items).json()
    assert body["summary"]["accepted"] == 2, body
    clocks = {
        c.visit_id: c
        for c in VisitClock.objects.filter(visit_id__in=[r["id"] for r in body["results"]])
    }
    assert len(clocks) == 2
    assert clocks[body["results"][1]["id"]].flag == "future"
    assert body["results"][1]["time_flag"] == "future"
    for r in body["results"]:
        assert r["distance_m"] == 0 and r["far_off"] is False
        v = Visit.objects.get(pk=r["id"])
        assert v.distance_m == 0 and v.location is not None and v.accuracy_grade == "fair"
