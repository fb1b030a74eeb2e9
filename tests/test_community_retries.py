"""Issue 20 follow-up: "what if this is retried, late, stale?" for a campaign's return and a
day's service hours. A phone that sent return A, then B, then retries A keeps B (every filing
applied to the return is kept by its ``client_uuid``); a filing recorded on the phone before
the one in force never replaces it (the phone's time corrected by ``X-Device-Time``, as
visits are); ``teams/{id}/hours/`` with a ``client_uuid`` adds the hours once."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from gridsvc.accounts.models import Member
from gridsvc.community import services
from gridsvc.community.models import CampaignReturn, ServiceLog, TeamMembership

pytestmark = pytest.mark.django_db

BASE = "/api/v1/community"


def _batch(client, items, **headers):  # type: ignore[no-untyped-def]
    headers.setdefault("HTTP_IDEMPOTENCY_KEY", str(uuid.uuid4()))
    r = client.post(f"{BASE}/batch/", {"items": items}, format="json", **headers)
    assert r.status_code == 200, r.content[:400]
    return r.json()


def _campaign(demo):  # type: ignore[no-untyped-def]
    today = timezone.localdate()
    campaign, _ = services.start_campaign(
        Member.objects.get(username="mediator"),
        {
            "kind": "instability",
            "name": "排查不稳定因素(重试)",
            "start": today - timedelta(days=5),
            "end": today + timedelta(days=20),
            "community": demo.community.pk,
            "grid": demo.grids[0].pk,
        },
    )
    return campaign


def _item(campaign, key: str, findings: str = "", when=None):  # type: ignore[no-untyped-def]
    data = {"campaign": campaign.pk, "zero_report": not findings, "findings": findings}
    if when is not None:
        data["client_time"] = when.isoformat()
    return {"kind": "campaign_return", "client_uuid": key, "data": data}


def _state(campaign) -> tuple[bool, str]:  # type: ignore[no-untyped-def]
    ret = CampaignReturn.objects.get(campaign=campaign)
    return ret.zero_report, ret.findings


def test_a_retry_of_an_earlier_filing_never_overwrites_a_later_one(demo, member_client):
    campaign = _campaign(demo)
    phone = member_client("grid1")
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    assert _batch(phone, [_item(campaign, a)])["results"][0]["status"] == "accepted"
    assert _state(campaign) == (True, "")
    assert _batch(phone, [_item(campaign, b, "两户因漏水起纠纷")])["results"][0]["status"] == (
        "accepted"
    )
    # A's retry (its answer was lost) arrives after B: a duplicate, B stays
    again = _batch(phone, [_item(campaign, a)])
    ret = CampaignReturn.objects.get(campaign=campaign)
    assert again["results"][0] == {
        "kind": "campaign_return",
        "status": "duplicate",
        "id": ret.pk,
        "client_uuid": a,
    }
    assert _state(campaign) == (False, "两户因漏水起纠纷")
    # the single POST alike: A's uuid again is a duplicate, nothing changes
    url = f"{BASE}/campaign-returns/{ret.pk}/file/"
    r = phone.post(url, {"zero_report": True, "client_uuid": a}, format="json")
    assert r.status_code == 200 and r.json()["duplicate"] is True, r.content
    assert r.json()["findings"] == "两户因漏水起纠纷"
    assert _state(campaign) == (False, "两户因漏水起纠纷")
    # a new filing through the POST replaces it; then B's retry by batch is a duplicate
    r = phone.post(
        url, {"zero_report": False, "findings": "已调处", "client_uuid": c}, format="json"
    )
    assert r.status_code == 200 and r.json()["duplicate"] is False
    assert _batch(phone, [_item(campaign, b, "两户因漏水起纠纷")])["summary"]["duplicate"] == 1
    assert _state(campaign) == (False, "已调处")
    # another member sending one of those uuids is refused, not treated as theirs
    other = member_client("cadre1")
    body = _batch(other, [_item(campaign, b, "x")])
    assert body["results"][0]["status"] == "rejected", body
    assert _state(campaign) == (False, "已调处")


def test_a_filing_recorded_earlier_on_the_phone_does_not_replace_the_stored_one(
    demo, member_client
):
    campaign = _campaign(demo)
    phone = member_client("grid1")
    now = timezone.now()
    later, earlier = now - timedelta(minutes=10), now - timedelta(minutes=40)
    body = _batch(phone, [_item(campaign, str(uuid.uuid4()), "晚些记录的发现", later)])
    assert body["summary"]["accepted"] == 1
    # recorded earlier on a tablet that was offline, sent now: refused, the later one stays
    stale = str(uuid.uuid4())
    body = _batch(phone, [_item(campaign, stale, "", earlier)])
    assert body["results"][0]["status"] == "rejected"
    assert "client_time" in body["results"][0]["errors"], body
    assert _state(campaign) == (False, "晚些记录的发现")
    # its retry is refused again, never applied
    assert _batch(phone, [_item(campaign, stale, "", earlier)])["summary"]["rejected"] == 1
    # the phone's clock is two hours fast: its 10:40-looking time is 08:40 on the server's
    # clock (X-Device-Time), before the filing in force — refused though it looks later
    fast = timedelta(hours=2)
    device_now = timezone.localtime(now + fast)
    body = _batch(
        phone,
        [_item(campaign, str(uuid.uuid4()), "", now + fast - timedelta(minutes=30))],
        HTTP_X_DEVICE_TIME=device_now.isoformat(),
    )
    assert body["results"][0]["status"] == "rejected", body
    assert _state(campaign) == (False, "晚些记录的发现")
    # recorded after it (on the corrected clock): it replaces it
    body = _batch(
        phone,
        [_item(campaign, str(uuid.uuid4()), "", now + fast - timedelta(minutes=1))],
        HTTP_X_DEVICE_TIME=device_now.isoformat(),
    )
    assert body["results"][0]["status"] == "accepted", body
    assert _state(campaign) == (True, "")
    # an online filing (no client_time) is recorded now; a phone's older one stays out
    ret = CampaignReturn.objects.get(campaign=campaign)
    r = phone.post(
        f"{BASE}/campaign-returns/{ret.pk}/file/",
        {"zero_report": False, "findings": "网上补报"},
        format="json",
    )
    assert r.status_code == 200, r.content
    r = phone.post(
        f"{BASE}/campaign-returns/{ret.pk}/file/",
        {"zero_report": True, "client_time": later.isoformat(), "client_uuid": str(uuid.uuid4())},
        format="json",
    )
    assert r.status_code == 409 and "client_time" in r.json(), r.content
    assert _state(campaign) == (False, "网上补报")


def test_a_retried_hours_post_adds_no_hours(demo, member_client):
    ms = TeamMembership.objects.filter(grid=demo.grids[0]).order_by("id").first()
    before = ms.hours
    key = str(uuid.uuid4())
    url = f"{BASE}/teams/{ms.pk}/hours/"
    body = {"date": str(date.today() - timedelta(days=1)), "hours": "1.5", "client_uuid": key}
    phone = member_client("grid1")
    r = phone.post(url, body, format="json")
    assert r.status_code == 201, r.content
    assert Decimal(str(r.json()["hours"])) == before + Decimal("1.5")
    r = phone.post(url, body, format="json")
    assert r.status_code == 200, r.content
    assert Decimal(str(r.json()["hours"])) == before + Decimal("1.5")
    ms.refresh_from_db()
    assert ms.hours == before + Decimal("1.5")
    assert ServiceLog.objects.filter(client_uuid=key).count() == 1
    # the same uuid by the batch is the same log too
    item = {"kind": "service_log", "client_uuid": key,
            "data": {"membership": ms.pk, "hours": "1.5"}}  # fmt: skip
    assert _batch(phone, [item])["results"][0]["status"] == "duplicate"
    ms.refresh_from_db()
    assert ms.hours == before + Decimal("1.5")
    # without a client_uuid each POST adds (the web's own form)
    r = phone.post(url, {"hours": "1"}, format="json")
    assert r.status_code == 201
    ms.refresh_from_db()
    assert ms.hours == before + Decimal("2.5")


def test_a_filing_recorded_before_1970_is_refused_naming_client_time(demo, member_client):
    """No phone's clock is before its epoch; such a time would be echoed with Shanghai's local
    mean time offset (+08:05:43), which no ISO 8601 date-time can carry."""
    from datetime import datetime

    campaign = _campaign(demo)
    old = datetime(706, 1, 29, 10, 18, 58, tzinfo=timezone.get_current_timezone())
    body = _batch(member_client("grid1"), [_item(campaign, str(uuid.uuid4()), "发现", old)])
    assert body["results"][0]["status"] == "rejected", body
    assert "client_time" in body["results"][0]["errors"], body
    assert not CampaignReturn.objects.filter(campaign=campaign, findings="发现").exists()
