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


@pytest.mark.parametrize("who", ["street", "grid1"])
@pytest.mark.parametrize("url", list(LIMITS))
def test_list_endpoints_stay_within_their_query_budget(
    demo, member_client, django_assert_max_num_queries, who, url
):
    client = member_client(who)
    client.get(url)  # per-process caches (content types, calendars) are not the endpoint's cost
    with django_assert_max_num_queries(LIMITS[url]):
        r = client.get(url)
    assert r.status_code == 200, r.content[:300]
    body = r.json()
    # pages long enough for an N+1 to show
    if "results" in body:
        assert len(body["results"]) >= 30
    else:
        assert len(body["residents"]) >= 100 and len(body["tasks"]) >= 100 and body["cases"]
