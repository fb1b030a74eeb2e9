"""A pairing (结对帮扶) is listed with its member's name and its help records' count and last
day, on the REST list and in the phone's feed alike, so the page needs no request per
pairing and shows "成员 名字" rather than an id."""

from __future__ import annotations

import pytest
from django.db.models import Max

from gridsvc.community.models import Pairing, PairingHelp

pytestmark = pytest.mark.django_db


def _rows(client, url: str) -> list[dict]:  # type: ignore[no-untyped-def]
    r = client.get(url)
    assert r.status_code == 200, r.content[:300]
    body = r.json()
    return body["results"] if isinstance(body, dict) and "results" in body else body


def _expected(pairing_id: int) -> tuple[int, str | None]:
    records = PairingHelp.objects.filter(pairing_id=pairing_id)
    last = records.aggregate(d=Max("date"))["d"]
    return records.count(), last.isoformat() if last else None


def test_the_list_and_the_feed_carry_the_help_summary_and_the_members_name(demo, member_client):
    client = member_client("cadre1")
    listed = _rows(client, "/api/v1/community/pairings/?page_size=100")
    assert listed, "the demo has pairings"
    assert any(p["help_count"] for p in listed)
    for p in listed:
        assert (p["help_count"], p["last_help_on"]) == _expected(p["id"])
        pairing = Pairing.objects.select_related("member").get(pk=p["id"])
        if pairing.member is not None:
            assert p["member_name"] == (pairing.member.display_name or pairing.member.username)
        else:
            assert p["member_name"] is None
    fed = {p["id"]: p for p in _rows(client, "/api/v1/community/changes/")["pairings"]}
    for p in listed:
        assert {k: fed[p["id"]][k] for k in ("help_count", "last_help_on", "member_name")} == {
            k: p[k] for k in ("help_count", "last_help_on", "member_name")
        }


def test_a_new_pairing_answers_with_no_help_yet(demo, member_client):
    client = member_client("cadre1")
    listed = _rows(client, "/api/v1/community/pairings/?page_size=1")
    household = next(
        p["household"] for p in _rows(client, "/api/v1/community/pairings/") if p["household"]
    )
    r = client.post(
        "/api/v1/community/pairings/",
        {
            "kind": "help",
            "partner": "七里河区税务局",
            "household": household,
            "grid": listed[0]["grid"],
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    assert (r.json()["help_count"], r.json()["last_help_on"]) == (0, None)
