"""More leaks of the session-8 privacy audit, each test one attack as the attacker would make
it, asserting what they must not learn.

- An ID number in a URL: query strings are written to access logs (gunicorn, nginx), browser
  history and proxies in clear; the search by ID number takes the number in a POST body.
- A mask beside a clear field, cases: a phone or ID number typed into a case's description or
  a note comes back masked wherever the parties' names are masked (API and the phone's feed).
- Ledgers (台账): a street dispatcher who is also a grid member in another street gets that
  grid's sheets with small counts suppressed, as the reports do.
- Small cells by subtraction: the report's 廉租房 households beside the 低保 total.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from gridsvc.accounts.models import Member
from gridsvc.audit.models import AuditEntry
from gridsvc.chain.models import Position
from gridsvc.territory.models import Resident

from .test_privacy_attacks import _street_post_elsewhere

pytestmark = pytest.mark.django_db
SHANGHAI = ZoneInfo("Asia/Shanghai")
RESIDENTS = "/api/v1/residents/"
SEARCH = "/api/v1/residents/search/"


def _member(username: str) -> Member:
    return Member.objects.get(username=username)


# ================================================================ an ID number in a URL
def test_an_id_number_in_the_query_string_is_refused_and_points_to_the_post(demo, member_client):
    target = Resident.objects.filter(household__unit__building__grid=demo.grids[0]).last()
    client = member_client("grid1")
    r = client.get(RESIDENTS, {"id_number": target.id_number})
    assert r.status_code == 400
    assert "residents/search/" in str(r.json()["id_number"])
    # refused before any lookup: nothing searched, nothing audited as found
    assert not AuditEntry.objects.filter(object_type="resident", fields=["id_number"]).exists()


def test_the_search_by_post_answers_as_the_list_did_and_is_audited(demo, member_client):
    target = Resident.objects.filter(household__unit__building__grid=demo.grids[0]).last()
    client = member_client("grid1")
    r = client.post(SEARCH, {"id_number": target.id_number.lower()}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["count"] == 1 and [row["id"] for row in body["results"]] == [target.pk]
    listed = client.get(f"{RESIDENTS}{target.pk}/").json()
    assert body["results"][0] == listed  # the same masked row as the list and detail give
    entry = AuditEntry.objects.get(object_type="resident", fields=["id_number"])
    assert entry.detail == {"search": "id_number", "found": [target.pk]}
    assert target.id_number not in str(entry.detail) + entry.reason + entry.object_id
    # another grid's resident is not found; a neighbour may not search; a bad number is a 400
    elsewhere = Resident.objects.filter(household__unit__building__grid=demo.grids[2]).first()
    r = client.post(SEARCH, {"id_number": elsewhere.id_number}, format="json")
    assert r.status_code == 200 and r.json()["results"] == []
    building = Position.objects.get(member__username="bh-001").building
    neighbour = Resident.objects.filter(household__unit__building=building).first()
    r = member_client("bh-001").post(SEARCH, {"id_number": neighbour.id_number}, format="json")
    assert r.status_code == 400 and "id_number" in r.json()
    r = client.post(SEARCH, {"id_number": "12345"}, format="json")
    assert r.status_code == 400 and "id_number" in r.json()
    r = client.post(SEARCH, {}, format="json")
    assert r.status_code == 400 and "id_number" in r.json()


# ================================================================ a mask beside a clear field: cases
PHONE, SPACED, IDN = "13912345678", "139 1234 5678", "620103197105060179"


def _case_with_numbers_in_its_text():  # type: ignore[no-untyped-def]
    from gridsvc.cases import services as case_services

    from .cases_helpers import report

    case = report(
        title=f"楼上噪音 {PHONE}",
        description=f"楼上深夜装修,报告人马建国,电话 {SPACED},身份证{IDN}",
        parties=[{"name": "马建国", "phone": PHONE, "id_number": IDN}],
    ).case
    case.refresh_from_db()
    assert case.handler is not None
    case_services.record(case, "note", case.handler, note=f"已电话联系马建国 {PHONE}")
    case.refresh_from_db()
    return case


def _assert_masked(text: str) -> None:
    for clear in (PHONE, SPACED, IDN, "马建国"):
        assert clear not in text, clear


def test_a_phone_or_id_number_in_a_cases_text_is_masked_with_its_parties(demo, member_client):
    case = _case_with_numbers_in_its_text()
    reader = member_client("street")  # the street office: the case is in its territory
    # the list (its fast path), the detail and the timeline
    listed = reader.get("/api/v1/cases/", {"q": case.number})
    assert listed.status_code == 200 and [c["id"] for c in listed.json()["results"]] == [case.pk]
    detail = reader.get(f"/api/v1/cases/{case.pk}/")
    assert detail.status_code == 200
    row = detail.json()
    assert listed.json()["results"][0] == row  # the fast path writes what the serializer does
    assert row["parties"][0]["name"] == "马**"
    _assert_masked(detail.content.decode())
    assert row["title"] == "楼上噪音 *******5678"
    assert "*******5678" in row["description"] and "620103********0179" in row["description"]
    assert "马**" in row["description"]
    timeline = reader.get(f"/api/v1/cases/{case.pk}/events/")
    assert timeline.status_code == 200
    _assert_masked(timeline.content.decode())
    assert any(e["note"] == "已电话联系马** *******5678" for e in timeline.json()["events"])
    # the handler reads the parties, and so the text, in clear
    mine = member_client(case.handler.username).get(f"/api/v1/cases/{case.pk}/").json()
    assert mine["description"] == case.description and mine["title"] == case.title


def test_the_phones_feed_gives_a_cases_title_as_the_api_does(demo, member_client):
    case = _case_with_numbers_in_its_text()
    handler = case.handler.username
    readers = [
        p.member.username
        for p in Position.objects.filter(grid=case.grid).select_related("member")
        if p.member.username != handler and p.member_id != case.reported_by_id
    ]
    assert readers
    reader = member_client(readers[0])
    rows, cursor = {}, None
    for _ in range(100):
        url = "/api/v1/sync/changes/?limit=500" + (f"&since={cursor}" if cursor else "")
        body = reader.get(url).json()
        rows.update({c["id"]: c for c in body["cases"]})
        cursor = body["cursor"]
        if not body["has_more"]:
            break
    assert rows[case.pk]["title"] == "楼上噪音 *******5678"
    api = reader.get(f"/api/v1/cases/{case.pk}/").json()
    assert api["title"] == rows[case.pk]["title"]


# ================================================================ ledgers: the street tier elsewhere
def _sheets(grid, username: str) -> dict[str, list[tuple]]:  # type: ignore[no-untyped-def]
    import io

    from openpyxl import load_workbook

    from gridsvc.dataio.ledgers import ledger_workbook

    wb = load_workbook(io.BytesIO(ledger_workbook(grid, _member(username), year=2026)))
    return {ws.title: list(ws.iter_rows(values_only=True)) for ws in wb if ws.title != "汇总"}


def test_a_street_post_elsewhere_changes_nothing_in_this_grids_ledgers(demo):
    from gridsvc.community.models import Petition

    grid = demo.grids[0]
    petition = Petition.objects.filter(grid=grid).order_by("id").first()
    assert petition is not None and petition.petitioner  # a name the staff tier sees masked
    as_staff = _sheets(grid, "grid1")
    street = _sheets(grid, "street")  # the demo street's own office: exact, names in clear
    assert street != as_staff  # the tiers differ on this grid: the test can tell them apart
    _street_post_elsewhere("grid1")
    assert _sheets(grid, "grid1") == as_staff


# ================================================================ small cells by subtraction: 廉租房
def test_a_small_rest_beside_the_low_rent_households_is_suppressed(demo, member_client):
    """Grid 1 with all but three households in 廉租房: 'N−3 of N' tells that three named
    households are not, as surely as '3' would."""
    from gridsvc.territory.models import Household

    households = Household.objects.filter(unit__building__grid=demo.grids[0])
    others = list(households.order_by("id").values_list("id", flat=True)[:3])
    households.exclude(id__in=others).update(tenure=Household.Tenure.LOW_RENT)
    households.filter(id__in=others).exclude(tenure=Household.Tenure.LOW_RENT).update(
        tenure=Household.Tenure.OWNED
    )
    assert households.count() > 50
    url = f"/api/v1/reports/monthly/?community={demo.community.code}&month=2026-10"
    body = member_client("grid1").get(url).json()
    assert body["population"]["households"] == households.count()
    assert body["population"]["low_rent_households"] is None
    # the street office reads its street exactly
    street = member_client("street").get(url).json()
    assert street["population"]["low_rent_households"] >= households.count() - 3
