"""The street office page's second pass (issue 22) on the API side: ``/api/v1/cases/?q=``
searches by case number, address (building, compound, grid) and free text, inside the
caller's territory, and never by a party's (当事人) name; the page's own assets keep to the
Content-Security-Policy (no inline script or style attribute) and carry the new states."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db

URL = "/api/v1/cases/"


def _numbers(client, **params) -> list[str]:
    r = client.get(URL, {"page_size": 500, **params})
    assert r.status_code == 200, r.content
    return [c["number"] for c in r.json()["results"]]


def test_search_by_case_number(demo, member_client):
    from gridsvc.cases.models import Case

    case = Case.objects.filter(grid__isnull=False).order_by("pk").first()
    street = member_client("street")
    assert _numbers(street, q=case.number) == [case.number]
    # a part of the number (what a dispatcher types from a phone call) finds it too
    assert case.number in _numbers(street, q=case.number[-5:])


def test_search_by_building_address_and_free_text(demo, member_client):
    from gridsvc.cases.models import Case

    case = Case.objects.filter(building__isnull=False).order_by("pk").first()
    street = member_client("street")
    in_building = set(
        Case.objects.filter(building__name=case.building.name).values_list("number", flat=True)
    )
    found = set(_numbers(street, q=case.building.name))
    assert in_building <= found
    assert case.number in found
    # two words: building and a word of the title, both must match
    word = case.title[:2]
    both = _numbers(street, q=f"{case.building.name} {word}")
    assert case.number in both
    assert all(
        Case.objects.get(number=n).title.find(word) >= 0
        or word in Case.objects.get(number=n).description
        or word in Case.objects.get(number=n).category.name
        for n in both
    )
    assert _numbers(street, q="不存在的字样zzz") == []


def test_search_never_matches_a_party_name(demo, member_client):
    from gridsvc.cases.models import Case

    case = Case.objects.filter(grid__isnull=False).order_by("pk").first()
    Case.objects.filter(pk=case.pk).update(
        parties=[{"name": "欧阳测试人", "role": "party", "phone": "13900000000"}]
    )
    street = member_client("street")
    assert _numbers(street, q="欧阳测试人") == []
    assert _numbers(street, q="13900000000") == []


def test_search_stays_in_the_callers_territory(demo, member_client):
    from gridsvc.cases.models import Case

    grid1 = member_client("grid1")
    mine = set(_numbers(grid1))
    other = Case.objects.exclude(number__in=mine).filter(grid__isnull=False).first()
    assert other is not None
    assert _numbers(grid1, q=other.number) == []
    assert _numbers(member_client("street"), q=other.number) == [other.number]


def test_search_is_in_the_openapi_schema(member_client):
    r = member_client("street").get("/api/schema/?format=json")
    params = {p["name"] for p in r.json()["paths"]["/api/v1/cases/"]["get"]["parameters"]}
    assert "q" in params


STATIC = Path(__file__).resolve().parent.parent / "gridsvc" / "web"


def test_page_has_no_inline_script_or_style_attribute():
    """The CSP (gridsvc/web/csp.py) forbids inline scripts and style attributes."""
    for tpl in (STATIC / "templates" / "web").glob("*.html"):
        text = tpl.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), tpl
        assert not re.search(r"\sstyle=\"", text), tpl
        assert not re.search(r"\son[a-z]+=\"", text), tpl


def test_page_offers_exports_search_and_print(demo):
    from django.test import Client

    client = Client()
    r = client.post("/login/", {"username": "street", "password": "gridsvc-demo"})
    assert r.status_code == 302
    html = client.get("/").content.decode()
    for needle in ('id="search"', 'id="queue-sort"', 'id="grid-filter"', 'data-tab="exports"'):
        assert needle in html, needle
    css = (STATIC / "static" / "web" / "app.css").read_text()
    assert "@media print" in css
