"""``/api/v1/cases/?updated_since=`` (issue 22 item 7, API side): the street office page's poll
asks for the cases changed since the last server time it saw — reassigned, given a deadline,
escalated, closed by another dispatcher — not only the newly reported ones (``since`` filters
``reported_at``). Changed cases come oldest change first, inside the caller's territory as
always, the filter is in the OpenAPI schema and a bad value is a 400 naming it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from .cases_helpers import cases_under_way

pytestmark = pytest.mark.django_db

URL = "/api/v1/cases/"


def _numbers(client, **params) -> list[str]:
    r = client.get(URL, {"page_size": 500, **params})
    assert r.status_code == 200, r.content
    return [c["number"] for c in r.json()["results"]]


def _open_cases(grid, n: int = 1) -> list:  # type: ignore[no-untyped-def]
    """``n`` cases in ``grid`` under way (reassignable, a deadline can be set)."""
    return cases_under_way(grid, n, lambda qs: qs.exclude(handler__username="cadre1"))


def test_a_case_changed_by_another_dispatcher_arrives_and_unchanged_ones_do_not(
    demo, member_client
):
    from gridsvc.accounts.models import Member
    from gridsvc.cases import services
    from gridsvc.cases.models import Case

    street2 = Member.objects.get(username="street2")
    mine, later = _open_cases(demo.grids[0], 2)  # grid 1: grid1's territory
    (elsewhere,) = _open_cases(demo.grids[1])  # grid 2: outside grid1's territory
    assert elsewhere.handler_id != Member.objects.get(username="grid1").pk
    since = timezone.now()
    # another dispatcher reassigns the grid-1 case, then gives the other case a deadline
    services.act(
        mine.pk, "assign", street2, data={"member": Member.objects.get(username="cadre1").pk}
    )
    services.act(
        later.pk,
        "set_deadline",
        street2,
        data={"due_at": (timezone.now() + timedelta(days=5)).isoformat()},
    )
    services.act(
        elsewhere.pk,
        "set_deadline",
        street2,
        data={"due_at": (timezone.now() + timedelta(days=6)).isoformat()},
    )
    iso = since.isoformat()

    # the street desk sees exactly what changed, oldest change first (not newest report first)
    street = member_client("street")
    changed = _numbers(street, updated_since=iso)
    assert changed == [mine.number, later.number, elsewhere.number]
    first = street.get(URL, {"updated_since": iso, "page_size": 1}).json()
    assert first["count"] == 3 and first["results"][0]["handler_name"]
    assert first["results"][0]["version"] == Case.objects.get(pk=mine.pk).version
    # an explicit ordering still wins
    by_deadline = _numbers(street, updated_since=iso, ordering="-deadline")
    assert sorted(by_deadline) == sorted(changed)
    assert by_deadline.index(elsewhere.number) < by_deadline.index(later.number)

    # grid1 sees its own changed case, never the one outside its territory
    grid1 = member_client("grid1")
    seen = _numbers(grid1, updated_since=iso)
    assert mine.number in seen and elsewhere.number not in seen
    assert seen == [mine.number, later.number]
    # nothing changed after the last change: nothing comes
    last = Case.objects.get(pk=elsewhere.pk).updated_at + timedelta(microseconds=1)
    assert _numbers(street, updated_since=last.isoformat()) == []
    # an offset is read as the instant it names (UTC on the server)
    east8 = since.astimezone(timezone.get_fixed_timezone(8 * 60)).isoformat()
    assert _numbers(street, updated_since=east8) == changed


def test_a_bad_updated_since_is_a_400_naming_it(member_client):
    street = member_client("street")
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "9999-12-31T23:59:59-15:00"):
        r = street.get(URL, {"updated_since": bad})
        assert r.status_code == 400, (bad, r.content)
        assert "updated_since" in r.json(), r.json()


def test_updated_since_is_in_the_schema(member_client):
    schema = member_client("street").get("/api/schema/?format=json").json()
    params = {p["name"]: p for p in schema["paths"]["/api/v1/cases/"]["get"]["parameters"]}
    assert params["updated_since"]["schema"] == {"type": "string", "format": "date-time"}
    assert "changed" in params["updated_since"]["description"]
