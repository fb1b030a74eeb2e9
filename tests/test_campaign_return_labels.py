"""The field app's 排查报送 card names a grid's return by its campaign and hides it once the
campaign has ended, but a grid member may not list a community-wide campaign (campaigns/): so
each return carries its campaign's ``campaign_name``, ``campaign_start`` and ``campaign_end``
(read-only), in campaign-returns/ (list and detail) and in the community feed, joined rather
than read per row, and a grid member still sees only their own grid's returns."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from gridsvc.accounts.models import Member
from gridsvc.chain.models import Position
from gridsvc.community import services
from gridsvc.community.models import Campaign, CampaignReturn

pytestmark = pytest.mark.django_db

BASE = "/api/v1/community"
START = date(2026, 11, 20)


def _campaign(demo, name: str, days: int = 30) -> Campaign:  # type: ignore[no-untyped-def]
    """A campaign over the whole community (a pending return per grid), started by the
    street."""
    campaign, _ = services.start_campaign(
        Member.objects.get(username="street"),
        {
            "kind": "disputes",
            "name": name,
            "start": START,
            "end": START + timedelta(days=days),
            "community": demo.community.pk,
        },
    )
    return campaign


def _grid1_grid() -> int:
    post = Position.objects.held_at().get(member__username="grid1", position_type="grid_member")
    return post.grid_id


def test_a_grid_member_sees_the_campaign_name_and_period_of_their_returns(demo, member_client):
    campaign = _campaign(demo, "冬季矛盾纠纷排查化解月")
    grid = _grid1_grid()
    assert CampaignReturn.objects.filter(campaign=campaign).exclude(grid_id=grid).exists()
    client = member_client("grid1")
    # the campaign itself is not theirs to list (it lies over the whole community) ...
    listed = client.get(f"{BASE}/campaigns/?page_size=200").json()["results"]
    assert campaign.pk not in {c["id"] for c in listed}

    # ... but their grid's return names it, and no other grid's return is shown
    r = client.get(f"{BASE}/campaign-returns/?campaign={campaign.pk}")
    assert r.status_code == 200, r.content[:300]
    (row,) = r.json()["results"]
    assert row["grid"] == grid
    assert (row["campaign_name"], row["campaign_start"], row["campaign_end"]) == (
        "冬季矛盾纠纷排查化解月",
        "2026-11-20",
        "2026-12-20",
    )
    detail = client.get(f"{BASE}/campaign-returns/{row['id']}/").json()
    assert detail["campaign_name"] == "冬季矛盾纠纷排查化解月"
    assert detail["campaign_end"] == "2026-12-20"

    # the phone's feed shows the return as the list does
    feed = client.get(f"{BASE}/changes/").json()["campaign_returns"]
    (fed,) = [f for f in feed if f["id"] == row["id"]]
    assert (fed["campaign_name"], fed["campaign_start"]) == ("冬季矛盾纠纷排查化解月", "2026-11-20")

    # read-only: filing a return does not rename or move its campaign
    r = client.post(
        f"{BASE}/campaign-returns/{row['id']}/file/",
        {"zero_report": True, "campaign_name": "改名", "campaign_end": "2030-01-01"},
        format="json",
    )
    assert r.status_code == 200, r.content[:300]
    assert r.json()["campaign_name"] == "冬季矛盾纠纷排查化解月"
    campaign.refresh_from_db()
    assert (campaign.name, campaign.end) == ("冬季矛盾纠纷排查化解月", date(2026, 12, 20))


def _queries(client, path: str) -> tuple[int, list[dict]]:  # type: ignore[no-untyped-def]
    """``(number of queries, rows)`` of a GET, after one call to warm per-process caches."""
    client.get(path)
    with CaptureQueriesContext(connection) as ctx:
        r = client.get(path)
    assert r.status_code == 200, r.content[:300]
    body = r.json()
    return len(ctx.captured_queries), body.get("results", body.get("campaign_returns"))


def test_the_campaign_is_joined_not_read_per_row(demo, member_client):
    client = member_client("grid1")
    _campaign(demo, "排查活动 1")
    lists = f"{BASE}/campaign-returns/?page_size=200"
    feed = f"{BASE}/changes/"
    one, rows_one = _queries(client, lists)
    one_fed, fed_one = _queries(client, feed)
    for n in range(2, 6):
        _campaign(demo, f"排查活动 {n}")
    five, rows_five = _queries(client, lists)
    five_fed, fed_five = _queries(client, feed)
    assert len(rows_five) == len(rows_one) + 4
    assert len(fed_five) == len(fed_one) + 4
    assert {f"排查活动 {n}" for n in range(1, 6)} <= {r["campaign_name"] for r in rows_five}
    assert five == one
    assert five_fed == one_fed
