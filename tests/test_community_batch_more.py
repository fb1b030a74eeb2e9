"""Issue 20, the offline batch's petitions and mediations: a 信访 registered in the field and
the 调处员's session record come through ``community/batch/`` as through their single POSTs —
same rules (who may mediate, ids in the caller's work scope), idempotent by ``client_uuid``."""

from __future__ import annotations

import uuid

import pytest

from gridsvc.accounts.models import Member
from gridsvc.cases.models import Case
from gridsvc.community.models import Mediation, Petition

pytestmark = pytest.mark.django_db

BASE = "/api/v1/community"


def _batch(client, items):  # type: ignore[no-untyped-def]
    headers = {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}
    r = client.post(f"{BASE}/batch/", {"items": items}, format="json", **headers)
    assert r.status_code == 200, r.content[:400]
    return r.json()


def _petition(grid, subject: str = "清真寺周边停车") -> dict:  # type: ignore[no-untyped-def]
    return {
        "grid": grid.pk,
        "date": "2026-11-20",
        "petitioner": "马文清",
        "subject": subject,
        "ethnic_religious": True,
        "group_size": 6,
    }


def test_petition_and_mediation_accepted_and_a_retry_is_a_duplicate(demo, member_client):
    g1 = demo.grids[0]
    dispute = Case.objects.filter(kind="dispute", community=demo.community).order_by("id").first()
    p_uuid, m_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    petition = {"kind": "petition", "client_uuid": p_uuid, "data": _petition(g1)}
    mediation = {
        "kind": "mediation",
        "client_uuid": m_uuid,
        "data": {"case": dispute.pk, "date": "2026-11-20", "outcome": "agreed", "note": "签协议"},
    }
    body = _batch(member_client("grid1"), [petition])
    assert body["summary"] == {"accepted": 1, "duplicate": 0, "rejected": 0}, body
    stored = Petition.objects.get(client_uuid=p_uuid)
    assert body["results"][0]["id"] == stored.pk
    assert stored.grid_id == g1.pk and stored.group_risk
    assert stored.handled_by == Member.objects.get(username="grid1")
    body = _batch(member_client("cadre5"), [mediation])
    assert body["results"][0]["status"] == "accepted", body
    m = Mediation.objects.get(client_uuid=m_uuid)
    assert m.case_id == dispute.pk and m.mediator.username == "cadre5" and m.outcome == "agreed"
    # the answer was lost: the phone sends both again under a new Idempotency-Key
    again = _batch(member_client("grid1"), [petition])
    assert again["results"][0] == {
        "kind": "petition",
        "status": "duplicate",
        "id": stored.pk,
        "client_uuid": p_uuid,
    }
    assert _batch(member_client("cadre5"), [mediation])["results"][0]["status"] == "duplicate"
    assert Petition.objects.filter(subject="清真寺周边停车").count() == 1
    assert Mediation.objects.filter(client_uuid=m_uuid).count() == 1


def test_ids_outside_the_work_scope_are_rejected_and_not_stored(demo, member_client):
    g1, g5 = demo.grids[0], demo.grids[4]
    foreign_case = Case.objects.filter(grid=g5).order_by("id").first()
    items = [
        {"kind": "petition", "client_uuid": str(uuid.uuid4()), "data": _petition(g5, "外格")},
        {
            "kind": "petition",
            "client_uuid": str(uuid.uuid4()),
            "data": {**_petition(g1, "外格案件"), "case": foreign_case.pk},
        },
        {"kind": "petition", "client_uuid": str(uuid.uuid4()), "data": _petition(g1, "本格")},
    ]
    body = _batch(member_client("grid1"), items)
    assert [r["status"] for r in body["results"]] == ["rejected", "rejected", "accepted"]
    assert body["results"][0]["errors"] == {"grid": ["not found"]}
    assert body["results"][1]["errors"] == {"case": ["not found"]}
    assert not Petition.objects.filter(subject__in=["外格", "外格案件"]).exists()
    # a case the 调处员's community does not hold is "not found" too, never mediated
    other = Case.objects.exclude(community=demo.community).order_by("id").first()
    if other is not None:
        item = {
            "kind": "mediation",
            "client_uuid": str(uuid.uuid4()),
            "data": {"case": other.pk, "outcome": "agreed"},
        }
        res = _batch(member_client("cadre5"), [item])["results"][0]
        assert res["status"] == "rejected" and res["errors"] == {"case": ["not found"]}


def test_a_member_who_may_not_mediate_is_rejected_naming_why(demo, member_client):
    g1 = demo.grids[0]
    dispute = Case.objects.filter(kind="dispute", grid=g1).order_by("id").first()
    assert dispute is not None
    before = Mediation.objects.count()
    item = {
        "kind": "mediation",
        "client_uuid": str(uuid.uuid4()),
        "data": {"case": dispute.pk, "outcome": "agreed"},
    }
    # grid1 sees the case (their grid's) but is no 调处员; cadre1 is the 宣传员
    for who in ("grid1", "cadre1"):
        res = _batch(member_client(who), [item])["results"][0]
        assert res["status"] == "rejected", res
        assert any("调处员" in m for m in sum(res["errors"].values(), [])), res
    assert Mediation.objects.count() == before
    # the same item from the 调处员 goes in
    assert _batch(member_client("cadre5"), [item])["results"][0]["status"] == "accepted"


# ---------------------------------------------------------------- service-logs/ (the hours' list)
def _all(client, query: str = ""):  # type: ignore[no-untyped-def]
    r = client.get(f"{BASE}/service-logs/?page_size=500{query}")
    assert r.status_code == 200, r.content[:300]
    return r.json()["results"]


def test_service_logs_are_listed_like_the_teams_and_narrowed(demo, member_client):
    from gridsvc.community.models import ServiceLog, TeamMembership

    g1, g5 = demo.grids[0], demo.grids[4]
    ms = TeamMembership.objects.filter(grid=g1, service_logs__isnull=False).order_by("id").first()
    assert ms is not None
    grid1 = member_client("grid1")
    # one membership's days, in a window: exactly its log rows there, newest first
    days = sorted(set(ServiceLog.objects.filter(membership=ms).values_list("date", flat=True)))
    first, last = days[len(days) // 3], days[-1 - len(days) // 3]
    rows = _all(grid1, f"&membership={ms.pk}&from={first}&to={last}")
    expected = ServiceLog.objects.filter(membership=ms, date__gte=first, date__lte=last).order_by(
        "-date", "-id"
    )
    assert [r["id"] for r in rows] == [x.pk for x in expected] and rows
    assert all(r["membership"] == ms.pk and r["grid"] == g1.pk for r in rows)
    # everything grid1 lists is their grid's; the street sees more
    listed = _all(grid1)
    assert listed and {r["grid"] for r in listed} == {g1.pk}
    assert len(_all(member_client("street"))) > len(listed)
    # another grid's membership lists nothing to grid1; neighbours list nothing at all
    other = TeamMembership.objects.filter(grid=g5, service_logs__isnull=False).first()
    assert other is not None and _all(grid1, f"&membership={other.pk}") == []
    assert _all(member_client("bh-001")) == []
    # a logged day appears (the batch's service_log) and bad parameters are 400 naming them
    key = str(uuid.uuid4())
    item = {
        "kind": "service_log",
        "client_uuid": key,
        "data": {"membership": ms.pk, "date": "2026-11-20", "hours": "2.5", "note": "巡逻"},
    }
    assert _batch(grid1, [item])["results"][0]["status"] == "accepted"
    day = _all(grid1, f"&membership={ms.pk}&from=2026-11-20&to=2026-11-20")
    assert [(r["hours"], r["note"]) for r in day][-1] == ("2.5", "巡逻")
    assert grid1.get(f"{BASE}/service-logs/?from=yesterday").status_code == 400
    assert "membership" in grid1.get(f"{BASE}/service-logs/?membership=x").json()
