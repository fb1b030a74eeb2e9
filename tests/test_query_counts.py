"""Query-count limits on the main list endpoints (a page of 100 rows, as the street office and
as a grid member): a serializer field that reads a relation row by row (N+1) multiplies the
queries by the page size and fails here. The limits are a little above today's counts."""

from __future__ import annotations

import pytest

LIMITS = {
    "/api/v1/residents/?page_size=100": 6,  # 3 today
    "/api/v1/households/?page_size=100": 6,  # 3
    "/api/v1/cases/?page_size=100": 6,  # 3 (67 while the category's parent was read per row)
    "/api/v1/visits/?page_size=100": 8,  # 5
    "/api/v1/visit-tasks/?page_size=100": 6,  # 3
    "/api/v1/sync/changes/": 22,  # 16: the change feed's first page (every kind of row)
}


#: rows on a page for an N+1 to show
PAGE_ENOUGH = 30


def _at_least_cases_in_grid(grid, n: int) -> None:  # type: ignore[no-untyped-def]
    """``n`` cases in ``grid`` (grid1's): the demo's, topped up with fresh reports."""
    from gridsvc.cases.models import Case
    from gridsvc.territory.models import Household

    from .cases_helpers import report

    household = Household.objects.filter(unit__building__grid=grid).order_by("id").first()
    for i in range(n - Case.objects.filter(grid=grid).count()):
        report(household=household, title=f"测试案件 {i}")


@pytest.mark.parametrize("who", ["street", "grid1"])
@pytest.mark.parametrize("url", list(LIMITS))
def test_list_endpoints_stay_within_their_query_budget(
    demo, member_client, django_assert_max_num_queries, who, url
):
    if url.startswith("/api/v1/cases/"):
        _at_least_cases_in_grid(demo.grids[0], PAGE_ENOUGH)
    client = member_client(who)
    client.get(url)  # per-process caches (content types, calendars) are not the endpoint's cost
    with django_assert_max_num_queries(LIMITS[url]):
        r = client.get(url)
    assert r.status_code == 200, r.content[:300]
    body = r.json()
    # pages long enough for an N+1 to show
    if "results" in body:
        assert len(body["results"]) >= PAGE_ENOUGH
    else:
        assert len(body["residents"]) >= 100 and len(body["tasks"]) >= 100 and body["cases"]
