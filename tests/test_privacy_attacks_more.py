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
