"""Issue 20, what a grid member records in the field (items 3 and 7, "offline batches where a
phone records it"): the community batch's new kinds (a campaign's return, a day's service
hours, pairing help), photos on activities (checked, deduplicated, served only in scope) and
pairing help as records (API, feed, demo)."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest

from gridsvc.accounts.models import Member
from gridsvc.community import services
from gridsvc.community.models import CampaignReturn, ServiceLog, TeamMembership

pytestmark = pytest.mark.django_db

BASE = "/api/v1/community"
REF = "2026-11-24"


def _batch(client, items, key: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"HTTP_IDEMPOTENCY_KEY": key or str(uuid.uuid4())}
    r = client.post(f"{BASE}/batch/", {"items": items}, format="json", **headers)
    assert r.status_code == 200, r.content[:400]
    return r.json()


def _campaign(demo, grid=None):  # type: ignore[no-untyped-def]
    """A running campaign over the community (or one grid): a pending return per grid."""
    campaign, _ = services.start_campaign(
        Member.objects.get(username="mediator"),
        {
            "kind": "instability",
            "name": "排查不稳定因素(冬季)",
            "start": date(2026, 11, 20),
            "end": date(2026, 12, 20),
            "community": demo.community.pk,
            "grid": grid.pk if grid else None,
        },
    )
    return campaign


def _membership(grid) -> TeamMembership:  # type: ignore[no-untyped-def]
    return TeamMembership.objects.filter(grid=grid).order_by("id").first()


# ---------------------------------------------------------------- batch kinds (item 1)
def test_a_campaign_return_and_service_hours_from_the_phone(demo, member_client):
    g1 = demo.grids[0]
    campaign = _campaign(demo)
    ms = _membership(g1)
    hours_before = ms.hours
    ret_uuid, log_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    items = [
        {"kind": "campaign_return", "client_uuid": ret_uuid,
         "data": {"campaign": campaign.pk, "grid": g1.pk, "zero_report": True}},
        {"kind": "service_log", "client_uuid": log_uuid,
         "data": {"membership": ms.pk, "date": REF, "hours": "2.5", "note": "入户宣传"}},
    ]  # fmt: skip
    phone = member_client("grid1")
    body = _batch(phone, items)
    assert body["summary"] == {"accepted": 2, "duplicate": 0, "rejected": 0}, body
    ret = CampaignReturn.objects.get(campaign=campaign, grid=g1)
    assert ret.filed_at is not None and ret.zero_report is True
    assert ret.filed_by.username == "grid1" and body["results"][0]["id"] == ret.pk
    log = ServiceLog.objects.get(client_uuid=log_uuid)
    assert (log.membership_id, log.date, log.hours) == (ms.pk, date(2026, 11, 24), Decimal("2.5"))
    ms.refresh_from_db()
    assert ms.hours == hours_before + Decimal("2.5")
    # the phone did not hear the answer and sends the same items again (another key)
    again = _batch(phone, items)
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert [r["id"] for r in again["results"]] == [ret.pk, log.pk]
    ms.refresh_from_db()
    assert ms.hours == hours_before + Decimal("2.5")  # the hours are counted once
    assert ServiceLog.objects.filter(membership=ms, date=date(2026, 11, 24)).count() == 1
    # a later filing of the same grid's return replaces it, as campaign-returns/{id}/file/ does
    later = [
        {"kind": "campaign_return", "client_uuid": str(uuid.uuid4()),
         "data": {"campaign": campaign.pk, "zero_report": False,
                  "findings": "两户邻里因漏水起纠纷", "findings_count": 1}},
    ]  # fmt: skip
    assert [r["status"] for r in _batch(phone, later)["results"]] == ["accepted"]
    ret.refresh_from_db()
    assert (ret.zero_report, ret.findings_count) == (False, 1)
    assert CampaignReturn.objects.filter(campaign=campaign, grid=g1).count() == 1
    # the REST endpoint reads the same return
    r = phone.get(f"{BASE}/campaign-returns/{ret.pk}/")
    assert r.status_code == 200 and r.json()["findings"] == "两户邻里因漏水起纠纷"


def test_batch_ids_outside_the_work_scope_are_rejected_and_not_stored(demo, member_client):
    g1, g5 = demo.grids[0], demo.grids[4]
    campaign = _campaign(demo)
    only_g5 = _campaign(demo, grid=g5)
    foreign_ms = _membership(g5)
    hours_before = foreign_ms.hours
    items = [
        {"kind": "campaign_return", "client_uuid": str(uuid.uuid4()),
         "data": {"campaign": campaign.pk, "grid": g5.pk}},
        {"kind": "campaign_return", "client_uuid": str(uuid.uuid4()),
         "data": {"campaign": only_g5.pk}},
        {"kind": "service_log", "client_uuid": str(uuid.uuid4()),
         "data": {"membership": foreign_ms.pk, "hours": "3"}},
        {"kind": "service_log", "client_uuid": str(uuid.uuid4()),
         "data": {"membership": _membership(g1).pk, "hours": "30"}},
    ]  # fmt: skip
    body = _batch(member_client("grid1"), items)
    assert body["summary"] == {"accepted": 0, "duplicate": 0, "rejected": 4}
    errors = [r["errors"] for r in body["results"]]
    assert errors[0] == {"grid": ["not found"]}
    assert errors[1] == {"campaign": ["not found"]}
    assert errors[2] == {"membership": ["not found"]}
    assert "hours" in errors[3]  # more than a day: the single POST's rule
    assert not CampaignReturn.objects.filter(
        filed_at__isnull=False, campaign__in=[campaign, only_g5]
    )
    foreign_ms.refresh_from_db()
    assert foreign_ms.hours == hours_before
    # the grid of that campaign files it
    ok = [{"kind": "campaign_return", "client_uuid": str(uuid.uuid4()),
           "data": {"campaign": only_g5.pk}}]  # fmt: skip
    assert _batch(member_client("grid5"), ok)["summary"]["accepted"] == 1
    # neighbours record nothing
    r = member_client("bh-001").post(f"{BASE}/batch/", {"items": ok}, format="json")
    assert r.status_code == 403
