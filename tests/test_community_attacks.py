"""The community work audited as an attacker with a phone's JWT would probe it: who else could
this reach? Another grid's records through ids in bodies (batch items and single POSTs),
detail ids and actions, list filters and ``page_size``; neighbours (楼长, 单元长, 物业, 业委会)
and members whose post ended or who are on leave reaching what only a running post may (a
五员 调处员 on leave, a former 五员 member after ``valid_to``); masks beside clear fields and
small sums; and retries — the same batch item twice, late (after the post or the campaign
ended) and half-done (one bad item: nothing half-written, the error names the item and the
field). The demo street's people: grid1 … grid7 (grid members of one grid each), cadre5 (the
community's 五员 调处员), bh-001 (a building head), pm-…/oc-… (compound posts), street."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from gridsvc.accounts.models import Member
from gridsvc.cases.models import Case
from gridsvc.chain.models import Position, PositionType
from gridsvc.community import services
from gridsvc.community.models import (
    CampaignReturn,
    FiveRole,
    Mediation,
    Pairing,
    PairingHelp,
    Petition,
    ServiceLog,
    Team,
    TeamMembership,
    VenueVisit,
)
from gridsvc.community.rules import active_mediators, may_mediate
from gridsvc.territory.models import Household, Place

pytestmark = pytest.mark.django_db

BASE = "/api/v1/community"


def _batch(client, items, key: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"HTTP_IDEMPOTENCY_KEY": key or str(uuid.uuid4())}
    r = client.post(f"{BASE}/batch/", {"items": items}, format="json", **headers)
    assert r.status_code == 200, r.content[:400]
    return r.json()["results"]


def _item(kind: str, data: dict, key: str | None = None) -> dict:
    return {"kind": kind, "client_uuid": key or str(uuid.uuid4()), "data": data}


def _rows(r):  # type: ignore[no-untyped-def]
    assert r.status_code == 200, r.content[:300]
    body = r.json()
    return body["results"] if isinstance(body, dict) else body


def _member(username: str) -> Member:
    return Member.objects.get(username=username)


def _pairing(grid, username: str) -> Pairing:  # type: ignore[no-untyped-def]
    """A 结对帮扶 of a household of ``grid``, recorded by its grid member ``username``."""
    hh = Household.objects.filter(unit__building__grid=grid).order_by("pk").first()
    row, _ = services.record_pairing(
        _member(username),
        {
            "kind": "help",
            "partner": "共建单位",
            "household": hh.pk,
            "started": timezone.localdate() - timedelta(days=60),
        },
    )
    return row


def _dispute(grid) -> Case:  # type: ignore[no-untyped-def]
    case = Case.objects.filter(kind="dispute", grid=grid).order_by("pk").first()
    assert case is not None, "the demo has disputes in every grid"
    return case


def _campaign(demo, start_days: int = -10, end_days: int = 20):  # type: ignore[no-untyped-def]
    """A campaign over the whole community (a return per grid), started by the street."""
    today = timezone.localdate()
    campaign, _ = services.start_campaign(
        _member("street"),
        {
            "kind": "instability",
            "name": "排查不稳定因素(审计)",
            "start": today + timedelta(days=start_days),
            "end": today + timedelta(days=end_days),
            "community": demo.community.pk,
        },
    )
    return campaign


def _cadre5_mediator(demo) -> TeamMembership:  # type: ignore[no-untyped-def]
    return TeamMembership.objects.get(
        team=Team.FIVE_MEMBERS,
        role=FiveRole.MEDIATOR,
        member__username="cadre5",
        community=demo.community,
    )


# ---------------------------------------------------------------- ids inside bodies
def test_every_batch_kind_resolves_its_ids_in_the_callers_grid(demo, token_client):
    """grid1's phone names grid 5's pairing, team membership, venue, dispute, petition case
    and handler, and a campaign's return of grid 5: each item is rejected "not found" on the
    field that names it, the good item beside them is stored, and nothing else is."""
    g1, g5 = demo.grids[0], demo.grids[4]
    pairing5 = _pairing(g5, "grid5")
    membership5 = TeamMembership.objects.filter(grid=g5).order_by("pk").first()
    place5 = Place.objects.filter(grid=g5, kind__in=["mosque", "religious_venue"]).first()
    place5 = place5 or Place.objects.filter(grid=g5).order_by("pk").first()
    campaign = _campaign(demo)
    today = str(timezone.localdate())
    before = (
        PairingHelp.objects.count(),
        ServiceLog.objects.count(),
        VenueVisit.objects.count(),
        Mediation.objects.count(),
        Petition.objects.count(),
        CampaignReturn.objects.filter(filed_at__isnull=False).count(),
    )
    hours5 = membership5.hours
    good = _item("activity", {"kind": "forum", "title": "座谈会", "date": today, "grid": g1.pk})
    petition = {"date": today, "petitioner": "张三", "subject": "x", "grid": g1.pk}
    phone = token_client("grid1")
    items = [
        _item("pairing_help", {"pairing": pairing5.pk, "what": "送米面油"}),
        _item("service_log", {"membership": membership5.pk, "hours": "2.0"}),
        _item("venue_visit", {"place": place5.pk, "date": today}),
        _item("mediation", {"case": _dispute(g5).pk, "outcome": "agreed"}),
        good,
        _item("petition", {**petition, "case": _dispute(g5).pk}),
        _item("petition", {**petition, "handled_by": _member("grid5").pk}),
        _item("campaign_return", {"campaign": campaign.pk, "grid": g5.pk, "zero_report": True}),
    ]
    results = _batch(phone, items)
    fields = ["pairing", "membership", "place", "case", None, "case", "handled_by", "grid"]
    for item, result, field in zip(items, results, fields, strict=True):
        if field is None:
            assert result["status"] == "accepted", result
            continue
        assert result["status"] == "rejected", (item["kind"], result)
        assert result["errors"] == {field: ["not found"]}, (item["kind"], result)
        # the rejected result names its item, not only by its place in the list
        assert result["client_uuid"] == item["client_uuid"]
    after = (
        PairingHelp.objects.count(),
        ServiceLog.objects.count(),
        VenueVisit.objects.count(),
        Mediation.objects.count(),
        Petition.objects.count(),
        CampaignReturn.objects.filter(filed_at__isnull=False).count(),
    )
    assert after == before
    membership5.refresh_from_db()
    assert membership5.hours == hours5


def test_detail_ids_and_actions_of_another_grid_are_not_found(demo, member_client):
    """grid1 reads nothing of grid 5 by id and acts on nothing of it: the pairing and its
    help, the team membership's hours and leave, the campaign return, the petition."""
    g5 = demo.grids[4]
    pairing5 = _pairing(g5, "grid5")
    membership5 = TeamMembership.objects.filter(grid=g5).order_by("pk").first()
    ret5 = CampaignReturn.objects.get(campaign=_campaign(demo), grid=g5)
    petition5, _ = services.log_petition(
        _member("grid5"),
        {"date": timezone.localdate(), "petitioner": "张三", "subject": "x", "grid": g5.pk},
    )
    phone = member_client("grid1")
    for path in (
        f"pairings/{pairing5.pk}/",
        f"pairings/{pairing5.pk}/help/",
        f"teams/{membership5.pk}/",
        f"campaign-returns/{ret5.pk}/",
        f"petitions/{petition5.pk}/",
    ):
        assert phone.get(f"{BASE}/{path}").status_code == 404, path
    for path, body in (
        (f"pairings/{pairing5.pk}/help/", {"what": "送米面油"}),
        (f"teams/{membership5.pk}/hours/", {"hours": "2.0"}),
        (f"teams/{membership5.pk}/leave/", {"on_leave": True}),
        (f"campaign-returns/{ret5.pk}/file/", {"zero_report": True}),
        (f"petitions/{petition5.pk}/resolve/", {}),
    ):
        assert phone.post(f"{BASE}/{path}", body, format="json").status_code == 404, path
    # no row is edited in place (a PATCH naming another grid would move it there)
    for path in (
        f"pairings/{pairing5.pk}/",
        f"petitions/{petition5.pk}/",
        f"campaign-returns/{ret5.pk}/",
        f"teams/{membership5.pk}/",
    ):
        for method in (phone.patch, phone.put, phone.delete):
            r = method(f"{BASE}/{path}", {"grid": demo.grids[0].pk}, format="json")
            assert r.status_code == 405, (method, path, r.status_code)
    membership5.refresh_from_db()
    petition5.refresh_from_db()
    ret5.refresh_from_db()
    assert petition5.grid_id == g5.pk
    assert not membership5.on_leave and petition5.status != Petition.Status.RESOLVED
    assert ret5.filed_at is None and not pairing5.help_records.exists()


def test_filters_and_page_size_stay_inside_the_territory(demo, member_client):
    """A filter naming another grid, its household or its membership lists nothing; the
    biggest page lists only the caller's grid; a page beyond the bound is a 400 naming
    ``page_size``; ordering and search parameters widen nothing."""
    g1, g5 = demo.grids[0], demo.grids[4]
    pairing5 = _pairing(g5, "grid5")
    _pairing(g1, "grid1")
    membership5 = TeamMembership.objects.filter(grid=g5).order_by("pk").first()
    services.log_service(_member("grid5"), membership5, day=timezone.localdate(), hours=2)
    phone = member_client("grid1")
    assert _rows(phone.get(f"{BASE}/pairings/?grid={g5.pk}")) == []
    assert _rows(phone.get(f"{BASE}/pairings/?household={pairing5.household_id}")) == []
    assert _rows(phone.get(f"{BASE}/teams/?grid={g5.pk}")) == []
    assert _rows(phone.get(f"{BASE}/service-logs/?membership={membership5.pk}")) == []
    for name in ("pairings", "teams", "service-logs", "activities", "petitions", "venue-visits"):
        rows = _rows(phone.get(f"{BASE}/{name}/?page_size=500&ordering=-id&search=网格"))
        assert {r.get("grid") for r in rows} <= {g1.pk}, name
        r = phone.get(f"{BASE}/{name}/?page_size=501")
        assert r.status_code == 400 and "page_size" in r.json(), name


# ---------------------------------------------------------------- roles
@pytest.mark.parametrize("username", ["bh-001", "uh-001-1", "pm-C01", "oc-C01"])
def test_neighbours_reach_no_community_work(demo, member_client, username):
    """楼长, 单元长, 物业, 业委会 are neighbours: they list nothing, sum nothing, and record
    nothing — by a POST or by the phone's batch."""
    client = member_client(username)
    case = _dispute(demo.grids[0])
    for name in ("pairings", "teams", "petitions", "mediations", "campaign-returns"):
        assert _rows(client.get(f"{BASE}/{name}/")) == [], name
    for path in ("figures/", "screening/day/", "changes/", "activities/map/"):
        assert client.get(f"{BASE}/{path}").status_code == 403, path
    r = client.post(f"{BASE}/mediations/", {"case": case.pk, "outcome": "agreed"}, format="json")
    assert r.status_code == 403
    assert not Mediation.objects.filter(recorded_by__username=username).exists()
    today = str(timezone.localdate())
    r = client.post(
        f"{BASE}/petitions/", {"date": today, "petitioner": "张三", "subject": "x"}, format="json"
    )
    assert r.status_code == 403
    r = client.post(f"{BASE}/batch/", {"items": []}, format="json")
    assert r.status_code == 403


def test_a_mediator_on_leave_may_not_mediate_as_routing_passes_them_over(demo, member_client):
    """Known gap 1: routing (``active_mediators``) passes a 调处员 on leave over; recording a
    session (``may_mediate``) now follows the same rule. Back from leave (销假) they mediate
    again; an inactive account never does. A session stored before the leave, retried after
    it, is the stored one."""
    membership = _cadre5_mediator(demo)
    cadre5 = membership.member
    case = _dispute(demo.grids[4])
    today = timezone.localdate()
    url = f"{BASE}/mediations/"
    phone = member_client("cadre5")
    key = str(uuid.uuid4())
    body = {"case": case.pk, "outcome": "ongoing", "note": "约双方再谈", "client_uuid": key}
    first = phone.post(url, body, format="json")
    assert first.status_code == 201, first.content

    r = member_client("street").post(
        f"{BASE}/teams/{membership.pk}/leave/", {"on_leave": True}, format="json"
    )
    assert r.status_code == 200 and r.json()["on_leave"] is True
    assert membership.pk not in {m.pk for m in active_mediators(demo.community.pk, today)}
    assert not may_mediate(cadre5, demo.community.pk, today)
    r = phone.post(url, {"case": case.pk, "outcome": "agreed"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "not_mediator"
    (res,) = _batch(phone, [_item("mediation", {"case": case.pk, "outcome": "agreed"})])
    assert res["status"] == "rejected" and res["code"] == "not_mediator"
    # the retry of the session stored before the leave: the stored one, by POST and batch
    again = phone.post(url, body, format="json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    (res,) = _batch(phone, [_item("mediation", {"case": case.pk, "outcome": "ongoing"}, key)])
    assert (res["status"], res["id"]) == ("duplicate", first.json()["id"])
    assert Mediation.objects.filter(client_uuid=key).count() == 1
    assert not Mediation.objects.filter(mediator=cadre5, case=case, outcome="agreed").exists()

    membership.on_leave = False  # 销假
    membership.save(update_fields=["on_leave"])
    assert may_mediate(cadre5, demo.community.pk, today)
    assert phone.post(url, {"case": case.pk, "outcome": "agreed"}, format="json").status_code == 201
    cadre5.is_active = False
    cadre5.save(update_fields=["is_active"])
    assert not may_mediate(cadre5, demo.community.pk, today)
    assert membership.pk not in {m.pk for m in active_mediators(demo.community.pk, today)}


def test_a_mediation_committee_post_on_leave_may_not_mediate(demo):
    """The committee's post follows the chain: on leave, its holder mediates nothing."""
    post = Position.objects.held_at().get(
        member__username="mediator", position_type=PositionType.MEDIATION_COMMITTEE
    )
    mediator, today = post.member, timezone.localdate()
    assert may_mediate(mediator, demo.community.pk, today)
    post.on_leave = True
    post.save(update_fields=["on_leave"])
    assert not may_mediate(mediator, demo.community.pk, today)


def test_a_former_mediator_after_valid_to_and_a_session_before_the_case(demo, member_client):
    """A 调处员 whose membership ended yesterday records no session today; a session is
    never dated before its case was reported (a backdated one would reach back into a
    term that has ended)."""
    membership = _cadre5_mediator(demo)
    case = _dispute(demo.grids[4])
    phone = member_client("cadre5")
    url = f"{BASE}/mediations/"
    before_case = timezone.localdate(case.reported_at) - timedelta(days=1)
    r = phone.post(
        url, {"case": case.pk, "outcome": "agreed", "date": str(before_case)}, format="json"
    )
    assert r.status_code == 400 and "date" in r.json(), r.content
    membership.valid_to = timezone.localdate() - timedelta(days=1)
    membership.save(update_fields=["valid_to"])
    r = phone.post(url, {"case": case.pk, "outcome": "agreed"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "not_mediator"


def test_a_former_five_member_files_no_screening_report(demo, member_client):
    """一日一报 is a running 五员 membership's: after ``valid_to`` the report is refused."""
    membership = TeamMembership.objects.get(
        team=Team.FIVE_MEMBERS, member__username="cadre1", community=demo.community
    )
    membership.valid_to = timezone.localdate() - timedelta(days=1)
    membership.save(update_fields=["valid_to"])
    r = member_client("cadre1").post(f"{BASE}/screening/", {"zero_report": True}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "not_five"


def test_service_hours_outside_the_membership_are_refused(demo, member_client):
    """A former member's hours after ``valid_to`` (and before ``valid_from``) are no team's
    service: refused naming ``date``, the running total untouched. Hours of a day inside the
    period sent late are taken; the retry of a stored log after the end is the stored one."""
    g1 = demo.grids[0]
    membership = TeamMembership.objects.filter(grid=g1).order_by("pk").first()
    today = timezone.localdate()
    phone = member_client("grid1")
    key = str(uuid.uuid4())
    within = {"membership": membership.pk, "date": str(today - timedelta(days=3)), "hours": "2.0"}
    (res,) = _batch(phone, [_item("service_log", within, key)])
    assert res["status"] == "accepted"
    membership.valid_to = today - timedelta(days=2)
    membership.save(update_fields=["valid_to"])
    membership.refresh_from_db()
    total = membership.hours
    late = {"membership": membership.pk, "date": str(today), "hours": "3.0"}
    early = {**late, "date": str(membership.valid_from - timedelta(days=1))}
    results = _batch(phone, [_item("service_log", late), _item("service_log", early)])
    assert [r["status"] for r in results] == ["rejected", "rejected"]
    assert all(set(r["errors"]) == {"date"} for r in results)
    r = phone.post(f"{BASE}/teams/{membership.pk}/hours/", {"hours": "1.0"}, format="json")
    assert r.status_code == 400 and "date" in r.json()
    (res,) = _batch(phone, [_item("service_log", within, key)])  # the retry, after the end
    assert res["status"] == "duplicate"
    sent_late = {**within, "date": str(today - timedelta(days=2))}
    (res,) = _batch(phone, [_item("service_log", sent_late)])
    assert res["status"] == "accepted"
    membership.refresh_from_db()
    assert membership.hours == total + Decimal("2.0")


# ---------------------------------------------------------------- retries
def test_a_campaign_return_after_the_campaign_ended(demo, member_client):
    """The phone hides an ended campaign's return; the server refuses a filing recorded after
    the last day (409 ``campaign_ended`` naming ``campaign``), online or in a batch. One
    recorded on the phone while the campaign ran and sent late is taken; its retry is the
    stored filing."""
    g1 = demo.grids[0]
    campaign = _campaign(demo, start_days=-20, end_days=-1)
    ret = CampaignReturn.objects.get(campaign=campaign, grid=g1)
    phone = member_client("grid1")
    r = phone.post(f"{BASE}/campaign-returns/{ret.pk}/file/", {"zero_report": True}, format="json")
    assert r.status_code == 409 and r.json()["code"] == "campaign_ended"
    assert "campaign" in r.json()
    now = timezone.now()
    after = _item("campaign_return", {"campaign": campaign.pk, "client_time": now.isoformat()})
    (res,) = _batch(phone, [after])
    assert res["status"] == "rejected" and res["code"] == "campaign_ended"
    ret.refresh_from_db()
    assert ret.filed_at is None
    while_running = (now - timedelta(days=2)).isoformat()
    key = str(uuid.uuid4())
    data = {"campaign": campaign.pk, "client_time": while_running}
    (res,) = _batch(phone, [_item("campaign_return", data, key)])
    assert res["status"] == "accepted", res
    (res,) = _batch(phone, [_item("campaign_return", data, key)])
    assert res["status"] == "duplicate" and res["id"] == ret.pk
    ret.refresh_from_db()
    assert ret.filed_at is not None and ret.filings.count() == 1


def test_the_same_item_twice_in_a_batch_and_the_batch_again(demo, member_client):
    """A network retry: the same item twice in one batch, then the whole batch again under
    another Idempotency-Key: one help record, one petition; the others say ``duplicate``."""
    g1 = demo.grids[0]
    pairing = _pairing(g1, "grid1")
    help_item = _item("pairing_help", {"pairing": pairing.pk, "what": "送米面油", "amount": "200"})
    petition = _item(
        "petition",
        {"date": str(timezone.localdate()), "petitioner": "张三", "subject": "x", "grid": g1.pk},
    )
    phone = member_client("grid1")
    first = _batch(phone, [help_item, help_item, petition, petition])
    assert [r["status"] for r in first] == ["accepted", "duplicate", "accepted", "duplicate"]
    again = _batch(phone, [help_item, petition])
    assert [r["status"] for r in again] == ["duplicate", "duplicate"]
    assert pairing.help_records.count() == 1
    assert Petition.objects.filter(client_uuid=petition["client_uuid"]).count() == 1
    # another member sending that client_uuid is refused on that item, never given the row
    (res,) = _batch(member_client("cadre1"), [help_item])
    assert res["status"] == "rejected" and "client_uuid" in res["errors"]


def test_one_bad_item_is_rejected_whole_and_names_its_field(demo, member_client):
    """Half-done: an item failing its rule stores nothing of itself (no help record, no
    hours added), names the field, and the items beside it are stored."""
    g1 = demo.grids[0]
    pairing = _pairing(g1, "grid1")
    membership = TeamMembership.objects.filter(grid=g1).order_by("pk").first()
    total, logs = membership.hours, ServiceLog.objects.filter(membership=membership).count()
    today = str(timezone.localdate())
    items = [
        _item("service_log", {"membership": membership.pk, "hours": "30"}),
        _item("pairing_help", {"pairing": pairing.pk, "what": "送米面油", "amount": "-5"}),
        _item("pairing_help", {"pairing": pairing.pk, "what": "", "date": today}),
        _item("pairing_help", {"pairing": pairing.pk, "what": "陪同就医", "date": today}),
    ]
    results = _batch(member_client("grid1"), items)
    assert [r["status"] for r in results] == ["rejected", "rejected", "rejected", "accepted"]
    assert [set(r["errors"]) for r in results[:3]] == [{"hours"}, {"amount"}, {"what"}]
    assert [r["client_uuid"] for r in results] == [i["client_uuid"] for i in items]
    membership.refresh_from_db()
    assert membership.hours == total
    assert ServiceLog.objects.filter(membership=membership).count() == logs
    assert list(pairing.help_records.values_list("what", flat=True)) == ["陪同就医"]


# ---------------------------------------------------------------- masks and small sums
def test_a_petitioner_and_a_help_amount_stay_masked_on_every_path(demo, member_client):
    """Below the street a petitioner's name is masked in the list, the detail, the feed and
    the batch's answer, and so is the name written again in the subject (a phone in it for
    every tier); a help amount is ``**`` in the list and the feed, in what was done too, and
    the month's sum over one household is suppressed (it would tell what it was given)."""
    g1 = demo.grids[0]
    pairing = _pairing(g1, "grid1")
    phone = member_client("grid1")
    today = timezone.localdate()
    petition = _item(
        "petition",
        {
            "date": str(today),
            "petitioner": "马建国",
            "subject": "马建国反映楼上噪音，电话13993001234",
            "grid": g1.pk,
        },
    )
    helped = _item("pairing_help", {"pairing": pairing.pk, "what": "送现金350元", "amount": "350"})
    results = _batch(phone, [petition, helped])
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    assert "马建国" not in str(results)
    pid = results[0]["id"]
    listed = [p for p in _rows(phone.get(f"{BASE}/petitions/?page_size=500")) if p["id"] == pid]
    detail = phone.get(f"{BASE}/petitions/{pid}/").json()
    feed = phone.get(f"{BASE}/changes/").json()
    fed = [p for p in feed["petitions"] if p["id"] == pid]
    for shown in (listed[0], detail, fed[0]):
        assert shown["petitioner"] == "马*国", shown
        # the name and a phone written into the subject are masked with it
        assert shown["subject"] == "马*国反映楼上噪音，电话*******1234", shown
    assert "马建国" not in str(feed) and "13993001234" not in str(feed)
    street = member_client("street").get(f"{BASE}/petitions/{pid}/").json()
    assert street["petitioner"] == "马建国"
    assert street["subject"] == "马建国反映楼上噪音，电话*******1234"

    help_rows = _rows(phone.get(f"{BASE}/pairings/{pairing.pk}/help/"))
    fed_help = [h for h in feed["pairing_help"] if h["pairing"] == pairing.pk]
    for rows in (help_rows, fed_help):
        # the amount masked, and the amount written into what was done with it
        assert [(h["amount"], h["what"]) for h in rows] == [("**", "送现金**元")]
    month = f"{today:%Y-%m}"
    mine = phone.get(f"{BASE}/figures/?month={month}&grid={g1.pk}").json()
    assert mine["pairing_help"] >= 1
    given = PairingHelp.objects.filter(
        grid=g1, date__year=today.year, date__month=today.month, amount__isnull=False
    )
    households = given.values("pairing__household").distinct().count()
    if households < 5:  # 1–4 households: their sum would tell what each was given
        assert mine["pairing_help_amount"] is None
    else:
        assert mine["pairing_help_amount"] == float(sum(h.amount for h in given))
    # the street reads the sum
    street_figures = member_client("street").get(f"{BASE}/figures/?month={month}&grid={g1.pk}")
    assert street_figures.json()["pairing_help_amount"] >= 350


def test_the_same_client_uuid_with_other_content_is_a_conflict(demo, member_client):
    """A client_uuid the phone reuses for another record (another pairing, membership,
    campaign) is a conflict on that item, never the stored row passed off as it."""
    g1 = demo.grids[0]
    first, second = _pairing(g1, "grid1"), _pairing(g1, "grid1")
    memberships = list(TeamMembership.objects.filter(grid=g1).order_by("pk")[:2])
    campaigns = [_campaign(demo), _campaign(demo)]
    phone = member_client("grid1")
    keys = [str(uuid.uuid4()) for _ in range(3)]
    sent = [
        _item("pairing_help", {"pairing": first.pk, "what": "送米面油"}, keys[0]),
        _item("service_log", {"membership": memberships[0].pk, "hours": "1.0"}, keys[1]),
        _item("campaign_return", {"campaign": campaigns[0].pk}, keys[2]),
    ]
    assert [r["status"] for r in _batch(phone, sent)] == ["accepted"] * 3
    other = [
        _item("pairing_help", {"pairing": second.pk, "what": "送米面油"}, keys[0]),
        _item("service_log", {"membership": memberships[1].pk, "hours": "1.0"}, keys[1]),
        _item("campaign_return", {"campaign": campaigns[1].pk}, keys[2]),
    ]
    results = _batch(phone, other)
    assert [(r["status"], r.get("code")) for r in results] == [("rejected", "conflict")] * 3
    assert all(set(r["errors"]) == {"client_uuid"} for r in results)
    assert not second.help_records.exists()
    assert not ServiceLog.objects.filter(membership=memberships[1], client_uuid=keys[1]).exists()
    assert CampaignReturn.objects.get(campaign=campaigns[1], grid=g1).filed_at is None


def test_a_petition_is_handled_by_staff_and_help_names_a_visit_in_scope(demo, member_client):
    """信访's handler is a staff post of the territory: a building head of the grid (who may
    read no 信访) is "not found" like a foreign member. A help record's visit is resolved in
    the caller's territory: another grid's visit is "not found"."""
    from gridsvc.visits.models import Visit

    g1, g5 = demo.grids[0], demo.grids[4]
    head = (
        Position.objects.held_at()
        .filter(position_type=PositionType.BUILDING_HEAD, building__grid=g1)
        .exclude(member__positions__position_type__in=["grid_member", "community_cadre"])
        .order_by("pk")
        .first()
    )
    assert head is not None
    phone = member_client("grid1")
    today = str(timezone.localdate())
    body = {"date": today, "petitioner": "张三", "subject": "x", "grid": g1.pk}
    r = phone.post(f"{BASE}/petitions/", {**body, "handled_by": head.member_id}, format="json")
    assert r.status_code == 400 and r.json()["handled_by"] == ["not found"], r.content
    r = phone.post(
        f"{BASE}/petitions/", {**body, "handled_by": _member("cadre1").pk}, format="json"
    )
    assert r.status_code == 201 and r.json()["handled_by"] == _member("cadre1").pk
    visit5 = Visit.objects.filter(household__unit__building__grid=g5).order_by("pk").first()
    assert visit5 is not None
    pairing = _pairing(g1, "grid1")
    (res,) = _batch(
        phone, [_item("pairing_help", {"pairing": pairing.pk, "what": "x", "visit": visit5.pk})]
    )
    assert res["status"] == "rejected" and res["errors"] == {"visit": ["not found"]}
    assert not pairing.help_records.exists()
