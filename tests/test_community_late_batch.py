"""The phone's community batch after a hand-over (交接后补传): records a grid member made
offline while in post and sent after the post ended are stored (flagged ``late``), as the
visits are; one recorded after the post ended, or for a grid never held, is refused per item
with ``code: not_in_territory`` while the rest of the batch is stored; a retry answers the
same; a post left long ago reaches nothing (403, as for any non-staff member)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from gridsvc.accounts.models import Member
from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.services import hand_over
from gridsvc.community.models import Activity, Petition

pytestmark = pytest.mark.django_db

BATCH = "/api/v1/community/batch/"


def _hand_over_grid1(when) -> Member:  # type: ignore[no-untyped-def]
    post = Position.objects.held_at().get(
        member__username="grid1", position_type=PositionType.GRID_MEMBER
    )
    newcomer = Member.objects.create_user(username="grid1-new", password="x-x-x-x-x-x-1")
    hand_over(post, newcomer, when=when, note="换届")
    return newcomer


def _day(days_ago: int) -> str:
    return (timezone.localdate() - timedelta(days=days_ago)).isoformat()


def _petition(grid_id: int, day: str, subject: str) -> dict:
    return {
        "kind": "petition",
        "client_uuid": str(uuid.uuid4()),
        "data": {"grid": grid_id, "date": day, "petitioner": "马文清", "subject": subject},
    }


def _activity(grid_id: int, day: str, title: str) -> dict:
    return {
        "kind": "activity",
        "client_uuid": str(uuid.uuid4()),
        "data": {"kind": "forum", "title": title, "date": day, "grid": grid_id},
    }


def _send(client, items, key: str):  # type: ignore[no-untyped-def]
    return client.post(BATCH, {"items": items}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_records_made_in_post_and_sent_after_the_hand_over_are_stored_and_flagged_late(
    demo, member_client
):
    g1, g5 = demo.grids[0], demo.grids[4]
    newcomer = _hand_over_grid1(timezone.now() - timedelta(days=3))
    items = [
        _petition(g1.pk, _day(5), "在岗时登记的信访"),
        _activity(g1.pk, _day(4), "在岗时的座谈会"),
        _petition(g1.pk, _day(1), "离岗后登记的信访"),  # after the post ended
        _petition(g5.pk, _day(5), "从未负责的网格"),  # a grid grid1 never held
    ]
    phone = member_client("grid1")  # grid1 holds no staff post now
    r = _send(phone, items, str(uuid.uuid4()))
    assert r.status_code == 200, r.content[:400]
    body = r.json()
    results = body["results"]
    assert [x["status"] for x in results] == ["accepted", "accepted", "rejected", "rejected"]
    assert body["summary"] == {"accepted": 2, "duplicate": 0, "rejected": 2}
    # each result names its item
    assert [x["client_uuid"] for x in results] == [i["client_uuid"] for i in items]
    # the records made in post are stored in their grid, flagged late
    assert results[0]["late"] is True and results[1]["late"] is True
    petition = Petition.objects.get(client_uuid=items[0]["client_uuid"])
    activity = Activity.objects.get(client_uuid=items[1]["client_uuid"])
    assert (petition.pk, petition.grid_id) == (results[0]["id"], g1.pk)
    assert (activity.pk, activity.grid_id) == (results[1]["id"], g1.pk)
    # after the term and never held: refused per item with a clear code, nothing stored
    assert results[2]["code"] == results[3]["code"] == "not_in_territory"
    assert "grid" in results[3]["errors"]
    assert not Petition.objects.filter(subject__in=["离岗后登记的信访", "从未负责的网格"]).exists()
    # the successor sees the late records of the grid
    seen = member_client(newcomer.username).get("/api/v1/community/petitions/?page_size=500")
    assert seen.status_code == 200
    assert petition.pk in {p["id"] for p in seen.json()["results"]}
    # grid1 gets no new reach: the ended post's records are not read back
    mine = member_client("grid1").get("/api/v1/community/petitions/?page_size=500")
    assert mine.status_code == 200
    assert petition.pk not in {p["id"] for p in mine.json()["results"]}


def test_a_retry_of_the_late_batch_answers_the_same(demo, member_client):
    g1 = demo.grids[0]
    _hand_over_grid1(timezone.now() - timedelta(days=2))
    items = [_petition(g1.pk, _day(3), "在岗时的信访"), _petition(g1.pk, _day(0), "离岗后")]
    key = str(uuid.uuid4())
    first = _send(member_client("grid1"), items, key)
    assert first.status_code == 200, first.content[:400]
    # the answer was lost: the same request with the same key is the same answer
    again = _send(member_client("grid1"), items, key)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    # sent again under a new key: the stored record is a duplicate, the refused one still refused
    later = _send(member_client("grid1"), items, str(uuid.uuid4())).json()["results"]
    assert [x["status"] for x in later] == ["duplicate", "rejected"]
    assert later[0]["id"] == first.json()["results"][0]["id"] and later[0]["late"] is True
    assert later[1]["code"] == "not_in_territory"
    assert Petition.objects.filter(subject="在岗时的信访").count() == 1


def test_a_member_still_in_post_is_judged_as_before(demo, member_client):
    g1, g5 = demo.grids[0], demo.grids[4]
    items = [_petition(g1.pk, _day(1), "在岗"), _petition(g5.pk, _day(1), "外格")]
    r = _send(member_client("grid1"), items, str(uuid.uuid4()))
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["accepted", "rejected"]
    assert "late" not in results[0]  # stored in a grid the member holds: not late
    assert results[1]["code"] == "not_in_territory"


def test_a_post_left_beyond_the_upload_window_reaches_nothing(demo, member_client):
    g1 = demo.grids[0]
    _hand_over_grid1(timezone.now() - timedelta(days=40))
    r = _send(member_client("grid1"), [_petition(g1.pk, _day(41), "很久以前")], str(uuid.uuid4()))
    assert r.status_code == 403
    assert not Petition.objects.filter(subject="很久以前").exists()
