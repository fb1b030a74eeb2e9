"""Uploads from the field that lose nothing (issue 16 items 3, 4, 7, 14): visits judged at the
time they were made (hand-over), task links that never reject a visit, daily reports that a
stale device cannot erase, and ``?client_uuid=`` to check what arrived."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from gridsvc.accounts.models import Member
from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.services import hand_over
from gridsvc.visits.models import DailyReport, Visit, VisitTask

pytestmark = pytest.mark.django_db


def _open_tasks(username: str, n: int) -> list[VisitTask]:
    return list(
        VisitTask.objects.filter(
            assigned_member__username=username,
            status="open",
            rule__code="all-households-yearly",
            period="2026",
        ).order_by("id")[:n]
    )


def _item(household_id: int, when, **extra) -> dict:  # type: ignore[no-untyped-def]
    body = {
        "client_uuid": str(uuid.uuid4()),
        "household": household_id,
        "client_time": when.isoformat(),
        "purpose": "入户走访",
        "notes": "正常",
    }
    body.update(extra)
    return body


def _batch(client, items: list[dict]) -> list[dict]:  # type: ignore[no-untyped-def]
    r = client.post(
        "/api/v1/visits/batch/", json.dumps({"visits": items}), content_type="application/json"
    )
    assert r.status_code == 200, r.content
    return r.json()["results"]


def _grid_post(username: str) -> Position:
    return Position.objects.held_at().get(
        member__username=username, position_type=PositionType.GRID_MEMBER
    )


def _hand_over(username: str, when) -> Member:  # type: ignore[no-untyped-def]
    newcomer = Member.objects.create_user(username=f"{username}-new", password="x-x-x-x-x-x-1")
    hand_over(_grid_post(username), newcomer, when=when, note="交接")
    return newcomer


# ---------------------------------------------------------------- item 3: hand-over
def test_visits_made_before_a_hand_over_are_accepted_and_shown_to_the_new_holder(
    demo, member_client
):
    now = timezone.now()
    tasks = _open_tasks("grid1", 5)
    made = now - timedelta(hours=3)
    items = [_item(t.household_id, made + timedelta(minutes=i)) for i, t in enumerate(tasks)]
    newcomer = _hand_over("grid1", now - timedelta(hours=1))

    results = _batch(member_client("grid1"), items)
    assert [r["status"] for r in results] == ["accepted"] * 5, results
    assert all(r["task_link"] == "linked" for r in results)
    assert {t.id for r in results for t in tasks if t.id in r["closed_tasks"]} == {
        t.id for t in tasks
    }
    assert VisitTask.objects.filter(id__in=[t.id for t in tasks], status="done").count() == 5

    # the new holder of the territory sees them
    uuids = ",".join(i["client_uuid"] for i in items)
    r = member_client(newcomer.username).get(f"/api/v1/visits/?client_uuid={uuids}")
    assert r.status_code == 200
    assert sorted(v["client_uuid"] for v in r.json()["results"]) == sorted(
        i["client_uuid"] for i in items
    )
    # the retry after the hand-over is still a duplicate
    again = _batch(member_client("grid1"), items)
    assert [r["status"] for r in again] == ["duplicate"] * 5


def test_a_visit_for_a_time_the_member_held_no_post_there_is_refused_with_a_code(
    demo, member_client
):
    now = timezone.now()
    (task,) = _open_tasks("grid1", 1)
    other = _open_tasks("grid2", 1)[0].household_id
    _hand_over("grid1", now - timedelta(hours=1))
    results = _batch(
        member_client("grid1"),
        [
            _item(task.household_id, now - timedelta(minutes=20)),  # after the hand-over
            _item(other, now - timedelta(hours=3)),  # never grid1's
            _item(task.household_id, now - timedelta(hours=2)),  # before: fine
        ],
    )
    assert [r["status"] for r in results] == ["rejected", "rejected", "accepted"], results
    assert results[0]["code"] == results[1]["code"] == "not_in_territory"
    assert "household" in results[0]["errors"]
    # an unknown household id reads the same as one outside the territory
    (unknown,) = _batch(member_client("grid1"), [_item(10**9, now - timedelta(hours=2))])
    assert unknown["code"] == "not_in_territory"
    assert unknown["errors"] == results[1]["errors"]
    # the single-visit POST says the same
    one = member_client("grid1").post(
        "/api/v1/visits/", _item(task.household_id, now - timedelta(minutes=10)), format="json"
    )
    assert one.status_code == 400 and one.json()["code"] == "not_in_territory"
    assert "household" in one.json()


def test_a_post_left_long_ago_no_longer_takes_visits(demo, member_client):
    now = timezone.now()
    (task,) = _open_tasks("grid1", 1)
    _hand_over("grid1", now - timedelta(days=40))
    (result,) = _batch(member_client("grid1"), [_item(task.household_id, now - timedelta(days=41))])
    assert result["status"] == "rejected" and result["code"] == "not_in_territory"


# ---------------------------------------------------------------- item 4: task links
def test_a_visit_for_a_task_closed_meanwhile_is_stored_without_the_link(demo, member_client):
    client = member_client("grid1")
    now = timezone.now()
    (task,) = _open_tasks("grid1", 1)
    first, second = _batch(
        client,
        [
            _item(task.household_id, now - timedelta(hours=2), task=task.id),
            _item(task.household_id, now - timedelta(hours=1), task=task.id),
        ],
    )
    assert first["status"] == "accepted" and first["task_link"] == "linked"
    assert second["status"] == "accepted", second
    assert second["task_link"] == "task_closed" and second["closed_tasks"] == []
    assert Visit.objects.get(pk=second["id"]).task_id is None
    task.refresh_from_db()
    assert task.done_by_id == first["id"]
    # later, in another upload (the phone did not know): stored, not rejected
    (late,) = _batch(client, [_item(task.household_id, now - timedelta(minutes=5), task=task.id)])
    assert late["status"] == "accepted" and late["task_link"] == "task_closed"
    # no task named, none open for the household: no_task
    (plain,) = _batch(client, [_item(task.household_id, now - timedelta(minutes=4))])
    assert plain["status"] == "accepted" and plain["task_link"] == "no_task"


def test_a_visit_for_a_task_reassigned_meanwhile_closes_it_and_says_so(demo, member_client):
    now = timezone.now()
    (task,) = _open_tasks("grid1", 1)
    newcomer = _hand_over("grid1", now - timedelta(hours=1))
    VisitTask.objects.filter(pk=task.pk).update(assigned_member=newcomer)
    (result,) = _batch(
        member_client("grid1"),
        [_item(task.household_id, now - timedelta(hours=2), task=task.id)],
    )
    assert result["status"] == "accepted", result
    assert result["task_link"] == "task_reassigned" and result["closed_tasks"] == [task.id]
    task.refresh_from_db()
    assert task.status == "done" and task.done_by_id == result["id"]


def test_a_task_marked_missed_while_the_phone_was_offline_is_closed_by_a_timely_visit(
    demo, member_client
):
    now = timezone.now()
    (task,) = _open_tasks("grid1", 1)
    VisitTask.objects.filter(pk=task.pk).update(status="missed")
    (result,) = _batch(
        member_client("grid1"),
        [_item(task.household_id, now - timedelta(hours=2), task=task.id)],
    )
    assert result["status"] == "accepted" and result["task_link"] == "linked"
    task.refresh_from_db()
    assert task.status == "done"


def test_a_task_of_another_household_is_still_refused_with_a_code(demo, member_client):
    now = timezone.now()
    a, b = _open_tasks("grid1", 2)
    (result,) = _batch(member_client("grid1"), [_item(a.household_id, now, task=b.id)])
    assert result["status"] == "rejected" and result["code"] == "unknown_task"


# ---------------------------------------------------------------- item 14: ?client_uuid=
def test_client_uuid_filters_the_visit_list_within_the_scope(demo, member_client):
    now = timezone.now()
    mine = _batch(
        member_client("grid1"),
        [_item(t.household_id, now - timedelta(hours=1)) for t in _open_tasks("grid1", 3)],
    )
    theirs = _batch(
        member_client("grid2"),
        [_item(_open_tasks("grid2", 1)[0].household_id, now - timedelta(hours=1))],
    )
    client = member_client("grid1")
    asked = [mine[0]["client_uuid"], mine[2]["client_uuid"], str(uuid.uuid4())]
    r = client.get("/api/v1/visits/", {"client_uuid": ",".join(asked)})
    assert r.status_code == 200
    assert sorted(v["client_uuid"] for v in r.json()["results"]) == sorted(asked[:2])
    # repeated parameters work too
    r = client.get(f"/api/v1/visits/?client_uuid={asked[0]}&client_uuid={mine[1]['client_uuid']}")
    assert r.json()["count"] == 2
    # another grid's visit is not in grid1's scope
    r = client.get("/api/v1/visits/", {"client_uuid": theirs[0]["client_uuid"]})
    assert r.json()["count"] == 0
    assert client.get("/api/v1/visits/", {"client_uuid": "nope"}).status_code == 400
    too_many = ",".join(str(uuid.uuid4()) for _ in range(501))
    assert client.get("/api/v1/visits/", {"client_uuid": too_many}).status_code == 400


# ---------------------------------------------------------------- item 7: daily reports
def _report(client, body: dict, **headers):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/daily-reports/", json.dumps(body), content_type="application/json", headers=headers
    )


def test_a_stale_tablets_daily_report_does_not_replace_items_sent_earlier(demo, member_client):
    phone, tablet = member_client("grid4"), member_client("grid4")
    fire = {"category": "hazard.fire", "description": "楼道堆放杂物"}
    water = {"category": "infrastructure", "description": "水管漏水"}
    first = _report(phone, {"items": [fire]})
    assert first.status_code == 201
    fire_id = first.json()["items"][0]["id"]
    assert fire_id and first["ETag"]
    # the tablet never saw the phone's item and sends its own copy later
    second = _report(tablet, {"items": [water]})
    assert second.status_code == 200, second.content
    items = second.json()["items"]
    assert [i["description"] for i in items] == ["楼道堆放杂物", "水管漏水"]
    assert second.json()["nothing_abnormal"] is False
    # a stale "nothing abnormal" does not erase them either
    third = _report(tablet, {"nothing_abnormal": True})
    assert len(third.json()["items"]) == 2 and third.json()["nothing_abnormal"] is False
    report = DailyReport.objects.get(member__username="grid4", date=timezone.localdate())
    assert len(report.items) == 2
    # the same upload again (an old app without ids, retrying) adds nothing
    assert len(_report(phone, {"items": [fire]}).json()["items"]) == 2


def test_replacing_a_daily_report_needs_its_current_version(demo, member_client):
    phone, tablet = member_client("grid5"), member_client("grid5")
    first = _report(phone, {"items": [{"id": "a1", "category": "hazard.fire", "description": "x"}]})
    stale_etag = first["ETag"]
    edited = {"id": "a1", "category": "hazard.fire", "description": "x — 已处理"}
    second = _report(phone, {"items": [edited]}, **{"If-Match": stale_etag})
    assert second.status_code == 200 and second.json()["items"] == [edited]
    assert second["ETag"] != stale_etag
    # the tablet replaces with the version it read: 412 with the server's copy
    late = _report(
        tablet,
        {"items": [{"id": "b1", "category": "infrastructure", "description": "y"}]},
        **{"If-Match": stale_etag},
    )
    assert late.status_code == 412
    body = late.json()
    assert body["code"] == "stale_version" and body["current"]["items"] == [edited]
    assert late["ETag"] == second["ETag"] and body["current_version"] == second.json()["version"]
    # an edit of the same item without a version is not applied blindly either
    blind = _report(
        tablet, {"items": [{"id": "a1", "category": "hazard.fire", "description": "x"}]}
    )
    assert blind.status_code == 412
    # with the current version the report is replaced (an item may be removed)
    ok = _report(tablet, {"nothing_abnormal": True, "version": body["current_version"]})
    assert ok.status_code == 200 and ok.json()["items"] == [] and ok.json()["nothing_abnormal"]
    detail = phone.get(f"/api/v1/daily-reports/{ok.json()['id']}/")
    assert detail["ETag"] == ok["ETag"]
