"""Finding cases on ``/api/v1/cases/`` (issue 22 item 3, API side): ``?community=`` next to
``?grid=`` and ``?category=``, ``?ordering=`` by deadline, priority and age, all inside the
caller's territory, declared in the OpenAPI schema, and a bad value answered 400 naming the
parameter. (``?q=`` itself: tests/test_web_page.py.)"""

from __future__ import annotations

from datetime import timedelta

import pytest

pytestmark = pytest.mark.django_db

URL = "/api/v1/cases/"


def _rows(client, **params) -> list[dict]:
    r = client.get(URL, {"page_size": 500, **params})
    assert r.status_code == 200, r.content
    return r.json()["results"]


def test_community_filter_keeps_to_that_community_and_the_callers_territory(demo, member_client):
    from gridsvc.cases.models import Case

    street = member_client("street")
    rows = _rows(street, community=demo.community.pk)
    expected = set(Case.objects.filter(community=demo.community).values_list("number", flat=True))
    assert expected and {c["number"] for c in rows} == expected
    assert all(c["community"] == demo.community.pk for c in rows)
    # a grid member sees only their own part of the community
    grid1 = member_client("grid1")
    mine = {c["number"] for c in _rows(grid1)}
    theirs = {c["number"] for c in _rows(grid1, community=demo.community.pk)}
    assert theirs <= mine and theirs < expected


def test_filters_combine_with_search(demo, member_client):
    from gridsvc.cases.models import Case

    case = Case.objects.filter(community=demo.community, grid__isnull=False).order_by("pk").first()
    street = member_client("street")
    found = _rows(
        street,
        q=case.number,
        community=case.community_id,
        grid=case.grid_id,
        category=case.category.code,
    )
    assert [c["number"] for c in found] == [case.number]
    other = Case.objects.exclude(grid=case.grid).filter(grid__isnull=False).first()
    assert _rows(street, q=case.number, grid=other.grid_id) == []


def _key(value):  # ISO times sort as text within one time zone; None last
    return (value is None, value or "")


def test_ordering_by_deadline_puts_cases_without_one_last(demo, member_client):
    from django.utils import timezone

    from gridsvc.cases.models import Case

    street = member_client("street")
    # a case with no deadline must come after every case with one, in both directions
    nodl = Case.objects.filter(due_at__isnull=False).order_by("pk").first()
    Case.objects.filter(pk=nodl.pk).update(due_at=None)
    Case.objects.filter(pk=Case.objects.exclude(pk=nodl.pk).order_by("pk").first().pk).update(
        due_at=timezone.now() + timedelta(days=400)
    )
    for ordering, reverse in (("deadline", False), ("-deadline", True)):
        rows = _rows(street, ordering=ordering)
        dues = [c["due_at"] for c in rows]
        dated = [d for d in dues if d is not None]
        assert dues[: len(dated)] == dated, "cases without a deadline come last"
        assert [d[:19] for d in dated] == sorted((d[:19] for d in dated), reverse=reverse)
        assert rows[-1]["due_at"] is None


def test_ordering_by_priority_and_age(demo, member_client):
    from gridsvc.cases.models import Case

    ids = list(Case.objects.order_by("-pk").values_list("pk", flat=True)[:3])
    Case.objects.filter(pk=ids[0]).update(priority=1)
    Case.objects.filter(pk=ids[1]).update(priority=4)
    Case.objects.filter(pk=ids[2]).update(priority=2)
    street = member_client("street")
    prios = [c["priority"] for c in _rows(street, ordering="priority")]
    assert prios == sorted(prios) and prios[0] < prios[-1]  # 紧急 (1) first
    assert [c["priority"] for c in _rows(street, ordering="-priority")] == sorted(
        prios, reverse=True
    )
    oldest = [c["reported_at"][:19] for c in _rows(street, ordering="created")]
    assert oldest == sorted(oldest) and oldest[0] < oldest[-1]
    newest = [c["reported_at"][:19] for c in _rows(street, ordering="-created")]
    assert newest == sorted(newest, reverse=True)
    # several keys: priority first, then the soonest deadline within a priority
    rows = _rows(street, ordering="priority,deadline")
    for a, b in zip(rows, rows[1:], strict=False):
        assert a["priority"] <= b["priority"]
        if a["priority"] == b["priority"] and a["due_at"] and b["due_at"]:
            assert a["due_at"][:19] <= b["due_at"][:19]


def test_ordering_stays_in_the_callers_territory(demo, member_client):
    grid1 = member_client("grid1")
    mine = {c["number"] for c in _rows(grid1)}
    assert {c["number"] for c in _rows(grid1, ordering="-deadline")} == mine


@pytest.mark.parametrize(
    "params,field",
    [
        ({"ordering": "title"}, "ordering"),
        ({"ordering": "resident"}, "ordering"),
        ({"community": "abc"}, "community"),
        ({"grid": "x1"}, "grid"),
    ],
)
def test_bad_values_are_refused_naming_the_parameter(member_client, params, field):
    r = member_client("street").get(URL, params)
    assert r.status_code == 400, r.content
    assert field in r.json()


def test_search_filters_and_ordering_are_in_the_schema(member_client):
    r = member_client("street").get("/api/schema/?format=json")
    params = {p["name"]: p for p in r.json()["paths"]["/api/v1/cases/"]["get"]["parameters"]}
    assert {"q", "grid", "community", "category", "ordering"} <= set(params)
    choices = params["ordering"]["schema"]["items"]["enum"]
    assert {"deadline", "-deadline", "priority", "-priority", "created", "-created"} <= set(choices)


def test_the_dispatch_queue_takes_the_same_filters(demo, member_client):
    from gridsvc.cases import services
    from gridsvc.cases.models import Case

    street = member_client("street")
    queue = services.dispatch_queue(Case.objects.all(), "all")
    case = queue.filter(grid__isnull=False).first()
    assert case is not None

    def numbers(**params) -> list[str]:
        r = street.get("/api/v1/dispatch/queue/", params)
        assert r.status_code == 200, r.content
        return [c["number"] for c in r.json()["results"]]

    whole = numbers()
    in_grid = numbers(grid=case.grid_id)
    assert case.number in in_grid and set(in_grid) <= set(whole)
    assert set(in_grid) == set(queue.filter(grid=case.grid_id).values_list("number", flat=True))
    assert numbers(community=case.community_id, q=case.number) == [case.number]
    other = Case.objects.exclude(category=case.category).first().category
    assert case.number not in numbers(category=other.code)
    # the queue keeps its own order (soonest deadline first) unless ordering is given
    newest = street.get("/api/v1/dispatch/queue/", {"ordering": "-created"}).json()["results"]
    times = [c["reported_at"][:19] for c in newest]
    assert times == sorted(times, reverse=True)
    bad = street.get("/api/v1/dispatch/queue/", {"kind": "dispute"})
    assert bad.status_code == 400 and "kind" in bad.json()


def test_the_queue_filters_are_in_the_schema(member_client):
    schema = member_client("street").get("/api/schema/?format=json").json()
    op = schema["paths"]["/api/v1/dispatch/queue/"]["get"]
    names = {p["name"] for p in op["parameters"]}
    assert {"kind", "q", "grid", "community", "category", "ordering"} <= names
