"""A year in a query (the 台账, the work reports, the district's overview) is read by one
parser (gridsvc.reports.services.parse_year): a year the calendar cannot hold is a 400 naming
``year``, never a 500 (schemathesis found ``/community/ledgers/{id}/?year=0``)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("year", ["0", "0000", "-5", "10000", "99999", "1899", "20x6"])
def test_a_year_the_calendar_cannot_hold_is_a_400_naming_year(demo, member_client, year):
    street = member_client("street")
    for path in (
        f"/api/v1/community/ledgers/{demo.community.id}/?year={year}",
        f"/api/v1/reports/ledgers/{demo.grids[0].code}/?year={year}",
        f"/api/v1/reports/annual/?community={demo.community.code}&year={year}",
    ):
        r = street.get(path)
        assert r.status_code == 400, (path, r.status_code, r.content[:200])
        assert "year" in r.json(), (path, r.json())


def test_the_district_overview_refuses_a_year_it_cannot_hold(demo, member_client):
    client = member_client("district")  # the demo's 区创建办
    ok = client.get("/api/v1/community/district/?code=620103&year=2026")
    assert ok.status_code == 200, ok.content[:300]
    for year in ("0", "10000"):
        r = client.get(f"/api/v1/community/district/?code=620103&year={year}")
        assert r.status_code == 400 and "year" in r.json(), r.content[:300]
