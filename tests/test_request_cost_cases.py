"""A list of cases is written from a plan made once per process (issue 19), not from DRF
fields rebuilt for every request — and it says exactly what DRF's own writing of the same
serializer says, for every demo case, for each kind of caller (names masked or in clear)
and in each coordinate system."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from api.cases.serializers import CaseSerializer
from gridsvc.accounts.models import Member
from gridsvc.cases.models import Case


def _drf(case: Case, member: Member, crs: str) -> dict:
    """DRF's generic writing of the case (fields built, attribute by attribute)."""
    ser = CaseSerializer(context={"request": SimpleNamespace(user=member), "crs": crs})
    return serializers.ModelSerializer.to_representation(ser, case)


@pytest.mark.parametrize("who", ["grid1", "cadre1", "street", "mediator", "admin"])
@pytest.mark.parametrize("crs", ["wgs84", "gcj02"])
def test_case_list_is_what_drf_writes(demo, member_client, who: str, crs: str) -> None:
    member = Member.objects.get(username=who)
    client = member_client(who)
    r = client.get(f"/api/v1/cases/?page_size=200&crs={crs}")
    assert r.status_code == 200, r.content[:300]
    rows = r.json()["results"]
    if who in ("street", "admin"):
        assert len(rows) >= 5
    cases = Case.objects.select_related("category__parent", "handler", "department").in_bulk(
        [row["id"] for row in rows]
    )
    for row in rows:
        expected = json.loads(JSONRenderer().render(_drf(cases[row["id"]], member, crs)))
        assert row == expected, row["number"]
        one = client.get(f"/api/v1/cases/{row['id']}/?crs={crs}").json()
        assert one == expected


def test_case_list_does_not_build_fields_per_request(demo, member_client, monkeypatch) -> None:
    client = member_client("street")
    assert client.get("/api/v1/cases/").status_code == 200  # the plan, once per process
    built: list[type] = []
    original = serializers.ModelSerializer.get_fields

    def spy(self):  # type: ignore[no-untyped-def]
        built.append(type(self))
        return original(self)

    monkeypatch.setattr(serializers.ModelSerializer, "get_fields", spy)
    r = client.get("/api/v1/cases/?page_size=50")
    assert r.status_code == 200 and len(r.json()["results"]) >= 5
    assert CaseSerializer not in built
