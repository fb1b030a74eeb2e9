"""Issue 20 item 6 (religious venues: contacts, the joint monthly visit as a visit rule),
item 9 (the district's endpoints) and the ledger's sheets of sign-offs and interpreter calls."""

from __future__ import annotations

import json
from datetime import date

import pytest
from django.contrib.gis.geos import GEOSGeometry

from gridsvc.chain.models import Position
from gridsvc.chain.visibility import Tier
from gridsvc.community.models import VenueContact, VenueTask
from gridsvc.community.venues import present_venue_contact
from gridsvc.territory.models import Place
from gridsvc.visits.models import RELIGIOUS_VENUES, VisitRule, VisitTask
from gridsvc.visits.services import generate_tasks

pytestmark = pytest.mark.django_db
BASE = "/api/v1/community"


def _rows(r):  # type: ignore[no-untyped-def]
    assert r.status_code == 200, r.content[:300]
    body = r.json()
    return body["results"] if isinstance(body, dict) else body


def _venue_rule() -> VisitRule:
    rule = VisitRule(
        code="mosque-joint-monthly",
        name="每个月和清真寺共同走访",
        target_group=RELIGIOUS_VENUES,
        frequency="monthly",
        window_days=20,
        visitor_level="grid_member",
        joint_visit=True,
        joint_with="清真寺管委会",
    )
    rule.full_clean()  # the rule's target is allowed
    rule.save()
    return rule


def _demo_mosque(demo) -> Place:  # type: ignore[no-untyped-def]
    return (
        Place.objects.filter(
            community=demo.community, kind__in=["mosque", "religious_venue"], grid__isnull=False
        )
        .order_by("pk")
        .first()
    )


def test_a_venue_rule_makes_a_task_per_venue_for_its_grid_member_and_a_visit_completes_it(
    demo, member_client
):
    mosque = _demo_mosque(demo)
    assert mosque is not None
    holder = (
        Position.objects.filter(position_type="grid_member", grid=mosque.grid_id)
        .order_by("valid_from", "id")
        .first()
    )
    rule = _venue_rule()
    venues = Place.objects.filter(kind__in=["mosque", "religious_venue"], community__isnull=False)
    result = generate_tasks(date(2027, 2, 1), rules=[rule])
    assert result.by_rule[rule.code] == venues.count()
    assert not VisitTask.objects.filter(rule=rule).exists()  # no household is the target
    task = VenueTask.objects.get(rule=rule, place=mosque)
    assert (task.period, task.due_on, task.status) == ("2027-02", date(2027, 2, 20), "open")
    assert task.assigned_member_id == holder.member_id and task.assigned_level == "grid_member"
    # idempotent
    assert generate_tasks(date(2027, 2, 1), rules=[rule]).by_rule[rule.code] == 0

    gm = member_client(holder.member.username)
    mine = _rows(gm.get(f"{BASE}/venue-tasks/?mine=1&period=2027-02"))
    assert mosque.pk in [t["place"] for t in mine]
    assert all(t["status"] == "open" and t["assigned_member"] == holder.member_id for t in mine)
    assert _rows(member_client("bh-001").get(f"{BASE}/venue-tasks/")) == []

    r = gm.post(
        f"{BASE}/venue-visits/",
        {"place": mosque.pk, "date": "2027-02-10", "participants": 3},
        format="json",
    )
    assert r.status_code == 201, r.content
    task.refresh_from_db()
    assert task.status == "done" and task.done_by_id == r.json()["id"]
    row = gm.get(f"{BASE}/venue-tasks/{task.pk}/").json()
    assert row["status"] == "done" and row["done_by"] == r.json()["id"]

    # a visit recorded before the month's tasks are made completes the task at creation
    r = gm.post(f"{BASE}/venue-visits/", {"place": mosque.pk, "date": "2027-03-02"}, format="json")
    assert r.status_code == 201, r.content
    generate_tasks(date(2027, 3, 1), rules=[rule])
    march = VenueTask.objects.get(rule=rule, place=mosque, period="2027-03")
    assert march.status == "done" and march.done_by_id == r.json()["id"]


def test_venue_contacts_are_kept_on_the_venue_and_the_phone_masked_below_staff(demo, member_client):
    mosque = _demo_mosque(demo)
    cadre = member_client("cadre1")
    r = cadre.post(
        f"{BASE}/venue-contacts/",
        {"place": mosque.pk, "name": "马阿訇", "role": "阿訇", "phone": "13912345678"},
        format="json",
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["phone"] == "13912345678" and body["masked"] == []
    assert body["community"] == mosque.community_id
    shop = Place.objects.exclude(kind__in=["mosque", "religious_venue"]).first()
    if shop is not None:
        r = cadre.post(f"{BASE}/venue-contacts/", {"place": shop.pk, "name": "张三"}, format="json")
        assert r.status_code == 400 and "place" in r.json()
    rows = _rows(cadre.get(f"{BASE}/venue-contacts/?place={mosque.pk}"))
    assert [c["name"] for c in rows] == ["马阿訇"]
    # neighbours (楼长) never reach them; a reader below staff sees the phone masked
    assert _rows(member_client("bh-001").get(f"{BASE}/venue-contacts/")) == []
    contact = VenueContact.objects.get(place=mosque)
    shown = present_venue_contact({"phone": contact.phone}, contact.phone, Tier.NEIGHBOUR)
    assert shown["phone"] != "13912345678" and shown["phone"].endswith("5678")
    assert shown["masked"] == ["phone"]


# ---------------------------------------------------------------- item 9: the district
def test_the_district_office_reads_its_district_the_street_its_name_others_nothing(
    demo, member_client
):
    from gridsvc.territory.models import District

    district = District.objects.get(code=demo.street.code[:6])
    officer = member_client("district")
    rows = _rows(officer.get("/api/v1/districts/"))
    assert [d["code"] for d in rows] == [district.code]
    full = officer.get(f"/api/v1/districts/{district.pk}/").json()
    assert full["name"] == district.name
    assert demo.street.pk in [s["id"] for s in full["streets"]]
    assert full["boundary"]["type"] == "MultiPolygon"
    # without a boundary of its own: the union of its streets'
    District.objects.filter(pk=district.pk).update(boundary=None)
    body = officer.get(f"/api/v1/districts/{district.pk}/").json()
    union = GEOSGeometry(json.dumps(body["boundary"]), srid=4326)
    assert union.equals(demo.street.boundary)

    # the street dispatcher: its street's district, by name only
    street = member_client("street")
    assert _rows(street.get("/api/v1/districts/")) == [{"id": district.pk, "name": district.name}]
    assert street.get(f"/api/v1/districts/{district.pk}/").json() == {
        "id": district.pk,
        "name": district.name,
    }
    # a grid member, a building head: nothing
    for who in ("grid1", "bh-001"):
        assert _rows(member_client(who).get("/api/v1/districts/")) == []
        assert member_client(who).get(f"/api/v1/districts/{district.pk}/").status_code == 404
    other = District.objects.create(code="620104", name="西固区")
    assert officer.get(f"/api/v1/districts/{other.pk}/").status_code == 404


# ---------------------------------------------------------------- ledgers: 签认, 翻译随行
def test_the_community_ledger_lists_sign_offs_and_interpreter_calls(demo, member_client):
    import io

    from django.utils import timezone
    from openpyxl import load_workbook

    from gridsvc.community.models import InterpreterCall, SignOff

    year = timezone.localdate().year
    signs = SignOff.objects.filter(community=demo.community, created_at__year=year)
    assert signs.exists()
    task = (
        VisitTask.objects.filter(household__unit__building__grid=demo.grids[0])
        .exclude(pk__in=InterpreterCall.objects.filter(language="ug").values("visit_task"))
        .first()
    )
    InterpreterCall.objects.create(
        street=demo.street,
        community=demo.community,
        grid=demo.grids[0],
        recorded_by=signs.first().recorded_by,
        visit_task=task,
        household=task.household,
        language="ug",
    )
    calls = InterpreterCall.objects.filter(community=demo.community, created_at__year=year)
    r = member_client("street").get(f"/api/v1/community/ledgers/{demo.community.pk}/")
    assert r.status_code == 200, r.content[:300]
    wb = load_workbook(io.BytesIO(r.content))
    sheets = {ws.title: list(ws.iter_rows(min_row=3, values_only=True)) for ws in wb.worksheets}
    assert len(sheets["签认"]) == signs.count()
    numbers = {row[2] for row in sheets["签认"]}
    assert numbers == {s.case.number for s in signs}
    assert {row[4] for row in sheets["签认"]} <= {"确认", "不予确认"}
    assert len(sheets["翻译随行"]) == calls.count() >= 1
    assert any(row[4] == "维吾尔语" and row[5] == "(无翻译员)" for row in sheets["翻译随行"])
    summary = {row[0]: row[1] for row in sheets["汇总"] if row and row[0]}
    assert summary["签认"] == signs.count() and summary["翻译随行"] == calls.count()
    # a grid's ledger carries them too (its grid's only)
    grid = member_client("grid1").get(f"/api/v1/reports/ledgers/{demo.grids[0].code}/")
    assert grid.status_code == 200
    titles = load_workbook(io.BytesIO(grid.content)).sheetnames
    assert "签认" in titles and "翻译随行" in titles
