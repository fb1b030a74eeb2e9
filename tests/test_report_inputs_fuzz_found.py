"""Two server errors schemathesis found once every case got a fresh Idempotency-Key (this
session): each is now a 400 naming the field, and nothing is stored.

- ``POST /api/v1/community/reports/`` with ``year`` 0 raised ``ValueError`` (year 0 is out of
  range) in ``report_period``: a 500.
- ``POST /api/v1/reports/issued/`` with a JSON array as the body: ``'list' object has no
  attribute 'get'``: a 500; a month in year 0000 (``0000-01``) the same.
"""

from __future__ import annotations

import pytest

from gridsvc.community.models import UnityReport
from gridsvc.reports.models import IssuedReport

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("year", [0, -1, 1899, 3000, 10**12])
def test_a_unity_report_for_a_year_out_of_range_is_a_400_naming_year(member_client, year):
    before = UnityReport.objects.count()
    r = member_client("street").post(
        "/api/v1/community/reports/", {"year": year, "kind": "plan"}, format="json"
    )
    assert r.status_code == 400, r.content[:300]
    assert "year" in r.json(), r.json()
    assert UnityReport.objects.count() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([None, None], "non_field_errors"),
        (["month", "2026-10"], "non_field_errors"),
        ({"month": ["2026-10"], "community": "x"}, "month"),
        ({"month": "0000-01", "street": "620103003"}, "month"),
        ({"year": "0000", "street": "620103003"}, "year"),
    ],
)
def test_an_issue_report_body_that_is_not_a_report_is_a_400_naming_it(member_client, body, field):
    before = IssuedReport.objects.count()
    r = member_client("street").post("/api/v1/reports/issued/", body, format="json")
    assert r.status_code == 400, r.content[:300]
    assert field in r.json(), r.json()
    assert IssuedReport.objects.count() == before
