"""Offline sync: the change feed (cursor moves, an update appears once), bad cursors, the
phone-size estimate."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gridsvc.territory.models import Household
from gridsvc.visits.models import VisitTask

pytestmark = pytest.mark.django_db
TZ = ZoneInfo("Asia/Shanghai")


def _drain(client, cursor=None, rounds: int = 30):
    """Follow the feed until it has no more; return (cursor, tasks, households)."""
    tasks, households = [], []
    for _ in range(rounds):
        url = "/api/v1/sync/changes/" + (f"?since={cursor}" if cursor else "")
        r = client.get(url)
        assert r.status_code == 200, r.content
        body = r.json()
        tasks += body["tasks"]
        households += body["households"]
        cursor = body["cursor"]
        if not body["has_more"]:
            return cursor, tasks, households
    raise AssertionError("feed did not end")


def test_change_feed_after_an_update(demo, member_client):
    client = member_client("grid1")
    cursor, tasks, _ = _drain(client)
    assert tasks, "a first sync brings the member's tasks"
    assert len({t["id"] for t in tasks}) == len(tasks), "no task twice"
    grid2_task_ids = set(
        VisitTask.objects.filter(household__unit__building__grid=demo.grids[1]).values_list(
            "id", flat=True
        )
    )
    assert not grid2_task_ids & {t["id"] for t in tasks}, "only the member's territory"

    # nothing new: same cursor comes back empty
    again = client.get(f"/api/v1/sync/changes/?since={cursor}").json()
    assert again["tasks"] == [] and again["households"] == []

    # a visit closes a task; a household in the grid is edited
    task = VisitTask.objects.filter(
        assigned_member__username="grid1", status="open", period="2026"
    ).first()
    p = task.household.unit.building.point
    r = client.post(
        "/api/v1/visits/",
        {
            "client_uuid": str(uuid.uuid4()),
            "household": task.household_id,
            "client_time": datetime(2026, 11, 20, 9, tzinfo=TZ).isoformat(),
            "lon": p.x,
            "lat": p.y,
        },
        format="json",
    )
    assert r.status_code == 201
    hh = Household.objects.filter(unit__building__grid=demo.grids[0]).first()
    hh.tenure = "rented"
    hh.save()

    body = client.get(f"/api/v1/sync/changes/?since={cursor}").json()
    assert [t["id"] for t in body["tasks"]] == [task.id]
    assert body["tasks"][0]["status"] == "done"
    assert [h["id"] for h in body["households"]] == [hh.id]
    assert body["households"][0]["tenure"] == "rented"
    assert body["cursor"] != cursor

    after = client.get(f"/api/v1/sync/changes/?since={body['cursor']}").json()
    assert after["tasks"] == [] and after["households"] == [], "the update appears once"


def test_change_feed_does_not_leak_other_grids_households(demo, member_client):
    cursor, _, _ = _drain(member_client("grid1"))
    other = Household.objects.filter(unit__building__grid=demo.grids[1]).first()
    other.floor = 3
    other.save()
    body = member_client("grid1").get(f"/api/v1/sync/changes/?since={cursor}").json()
    assert body["households"] == []


@pytest.mark.parametrize("bad", ["xyz", "e30", "eyJ2IjoxLCJ0IjpbImEiLDFdfQ"])
def test_bad_cursor_is_400_naming_since(demo, member_client, bad):
    r = member_client("grid1").get(f"/api/v1/sync/changes/?since={bad}")
    assert r.status_code == 400 and "since" in r.json()


def test_phone_estimate(demo, member_client):
    r = member_client("grid1").get("/api/v1/sync/estimate/")
    assert r.status_code == 200, r.content
    body = r.json()
    grid_households = Household.objects.filter(unit__building__grid=demo.grids[0]).count()
    assert body["counts"]["households"] == grid_households
    assert body["counts"]["tiles"] > 0
    assert body["total_bytes"] > 0
    # the street office estimates a member's phone before handing it out
    from gridsvc.accounts.models import Member

    grid1 = Member.objects.get(username="grid1")
    street = member_client("street").get(f"/api/v1/sync/estimate/?member={grid1.id}").json()
    assert street["counts"]["households"] == grid_households
    # but grid2 cannot look at grid1's phone
    r = member_client("grid2").get(f"/api/v1/sync/estimate/?member={grid1.id}")
    assert r.status_code == 400 and "member" in r.json()


def test_a_building_head_does_not_learn_who_is_under_community_correction(demo, member_client):
    """Tasks of sensitive groups (社区矫正, 两劳帮教, disability) are not shown to neighbours in
    building/unit positions; the grid member who does the visit sees them."""
    from django.db.models import Q
    from django.utils import timezone

    from gridsvc.chain.models import Position

    sensitive = VisitTask.objects.filter(rule__target_group="community_correction")
    heads = Position.objects.filter(
        Q(valid_to__isnull=True) | Q(valid_to__gt=timezone.now()),
        position_type="building_head",
        on_leave=False,
        building__in=sensitive.values("household__unit__building"),
    ).select_related("member")
    head = next(p for p in heads if not sensitive.filter(assigned_member=p.member).exists())
    in_building = sensitive.filter(household__unit__building=head.building)
    assert in_building.exists()
    client = member_client(head.member.username)
    listed = client.get("/api/v1/visit-tasks/?page_size=500").json()["results"]
    assert listed, "the building head still sees the building's ordinary tasks"
    assert not {t["id"] for t in listed} & set(in_building.values_list("id", flat=True))
    _, fed, _ = _drain(client)
    assert not {t["id"] for t in fed} & set(in_building.values_list("id", flat=True))
    grid_member = in_building.first().assigned_member
    theirs = member_client(grid_member.username).get(
        f"/api/v1/visit-tasks/?household={in_building.first().household_id}"
    )
    assert in_building.first().id in {t["id"] for t in theirs.json()["results"]}


def test_neighbours_get_no_task_of_any_sensitive_group_in_the_feed(demo, member_client):
    """Low income / hardship (困难家庭) is as sensitive as correction: a building head's feed
    and task list carry no hardship task of the building; the coverage counts leave them
    out too."""
    from gridsvc.chain.models import Position

    hardship = VisitTask.objects.filter(rule__target_group="hardship")
    head = (
        Position.objects.held_at()
        .filter(
            position_type="building_head",
            on_leave=False,
            building__in=hardship.values("household__unit__building"),
        )
        .exclude(member__in=hardship.values("assigned_member"))
        .select_related("member")
        .first()
    )
    in_building = set(
        hardship.filter(household__unit__building=head.building).values_list("id", flat=True)
    )
    assert in_building
    client = member_client(head.member.username)
    _, fed, _ = _drain(client)
    assert fed, "the building head still gets the building's ordinary tasks"
    assert not {t["id"] for t in fed} & in_building
    listed = client.get("/api/v1/visit-tasks/?page_size=500").json()["results"]
    assert not {t["id"] for t in listed} & in_building
    due = VisitTask.objects.filter(id__in=in_building).order_by("due_on").first().due_on
    cov = client.get(f"/api/v1/visits/coverage/?from={due}&to={due}").json()["results"]
    visible_due = sum(r["due"] for r in cov)
    all_due = VisitTask.objects.filter(household__unit__building=head.building, due_on=due).count()
    assert visible_due == all_due - VisitTask.objects.filter(id__in=in_building, due_on=due).count()


def test_a_building_head_cannot_look_at_the_grid_members_phone(demo, member_client):
    from gridsvc.accounts.models import Member

    grid1 = Member.objects.get(username="grid1")
    r = member_client("bh-001").get(f"/api/v1/sync/estimate/?member={grid1.id}")
    assert r.status_code == 400 and "member" in r.json()
    assert member_client("bh-001").get("/api/v1/sync/estimate/").status_code == 200
    r = member_client("cadre1").get(f"/api/v1/sync/estimate/?member={grid1.id}")
    assert r.status_code == 200 and r.json()["member"] == grid1.id
