"""The community feed when the member's work territory changes (a hand-over 交接, a post
ended, a move to another grid): rows of a grid no longer theirs must not stay on the phone.
The cursor keeps the territory it was made for; a poll with a cursor of another territory
answers ``reset: true`` and starts again from nothing, and a member left with no post is
told once to drop what they hold (then 403)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from gridsvc.accounts.models import Member
from gridsvc.chain.models import Position
from gridsvc.chain.services import hand_over
from gridsvc.community.models import Activity
from gridsvc.territory.models import Grid

pytestmark = pytest.mark.django_db
FEED = "/api/v1/community/changes/"


def _sync(client, since: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    """Every page from ``since``: streams' rows merged, the first page's ``reset``, the last
    cursor."""
    out: dict = {"rows": {}, "reset": None}
    cursor = since
    while True:
        r = client.get(FEED + "?limit=500" + (f"&since={cursor}" if cursor else ""))
        assert r.status_code == 200, r.content[:300]
        body = r.json()
        if out["reset"] is None:
            out["reset"] = body["reset"]
        else:
            assert body["reset"] is False  # only the first page of a restart says so
        for key, value in body.items():
            if isinstance(value, list):
                out["rows"].setdefault(key, set()).update(row["id"] for row in value)
        cursor = body["cursor"]
        if not body["has_more"]:
            out["cursor"] = cursor
            return out


def _grid_post(username: str) -> Position:
    now = timezone.now()
    return (
        Position.objects.filter(
            member__username=username, position_type="grid_member", valid_from__lte=now
        )
        .exclude(valid_to__lte=now)
        .get()
    )


def test_a_poll_in_the_same_territory_is_no_reset(demo, member_client):
    client = member_client("grid1")
    first = _sync(client)
    assert first["reset"] is False and first["rows"]["activities"]
    again = _sync(client, first["cursor"])
    assert again["reset"] is False
    assert not any(again["rows"].values())  # nothing new


def test_moved_to_another_grid_the_phone_starts_again_with_the_new_grids_rows(demo, member_client):
    client = member_client("grid1")
    post = _grid_post("grid1")
    old_grid = post.grid_id
    before = _sync(client)
    own_grid_activities = set(
        Activity.objects.filter(grid_id=old_grid).values_list("id", flat=True)
    )
    assert own_grid_activities and own_grid_activities <= before["rows"]["activities"]

    # 交接: grid 1 goes to a newcomer, grid1 takes another grid (its post handed over to them)
    newcomer = Member.objects.create(username="gm-newcomer", display_name="新网格员")
    hand_over(post, newcomer)
    other = _grid_post("grid2")
    hand_over(other, Member.objects.get(username="grid1"))
    new_grid = other.grid_id
    assert Grid.objects.filter(pk=new_grid).exists() and new_grid != old_grid

    after = _sync(client, before["cursor"])
    assert after["reset"] is True  # drop everything held, then apply
    got = after["rows"]["activities"]
    assert got == set(Activity.objects.filter(grid_id=new_grid).values_list("id", flat=True))
    assert not got & own_grid_activities
    # the next poll is an ordinary one
    assert _sync(client, after["cursor"])["reset"] is False


def test_a_member_whose_post_ended_is_told_once_to_drop_then_refused(demo, member_client):
    client = member_client("grid3")
    before = _sync(client)
    assert before["rows"]["activities"]
    post = _grid_post("grid3")
    post.valid_to = timezone.now()
    post.save()

    r = client.get(FEED + f"?since={before['cursor']}")
    assert r.status_code == 200, r.content[:300]
    body = r.json()
    assert body["reset"] is True
    assert not body["activities"] and not body["petitions"] and not body["teams"]
    # told once: the cursor of the empty territory is refused like a first sync would be
    assert client.get(FEED + f"?since={body['cursor']}").status_code == 403
    assert client.get(FEED).status_code == 403
    # someone else's cursor never earns the one answer
    other = _sync(member_client("grid4"))["cursor"]
    assert client.get(FEED + f"?since={other}").status_code == 403
