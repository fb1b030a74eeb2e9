"""Shared helpers for the cases tests."""

from __future__ import annotations

from django.contrib.gis.geos import Point
from django.db import connection
from django.db.models import QuerySet

from gridsvc.accounts.models import Member
from gridsvc.cases import services
from gridsvc.cases.models import Case, Category
from gridsvc.territory.models import Building, Household


def member(username: str) -> Member:
    return Member.objects.get(username=username)


def category(code: str) -> Category:
    return Category.objects.get(code=code)


def report(code: str = "neighbour.noise", reporter: str = "grid1", **kwargs):  # type: ignore[no-untyped-def]
    if not any(k in kwargs for k in ("location", "household", "unit", "building", "compound")):
        kwargs["household"] = (
            Household.objects.filter(unit__building__code__endswith="B001").order_by("id").first()
        )
    kwargs.setdefault("title", "测试案件")
    return services.report_case(reporter=member(reporter), category=category(code), **kwargs)


def cases_under_way(grid, n: int = 1, narrow=lambda qs: qs) -> list[Case]:  # type: ignore[no-untyped-def]
    """``n`` cases of ``grid`` under way (``assigned``, ``in_progress``, ``escalated``,
    ``reopened``; ``narrow`` filters them further), oldest first: the demo's, topped up with
    fresh reports from one of the grid's households (routed to its handler, with the
    category's deadline) when the demo has fewer. The demo's cases are the same at any hour of
    loading, but which of them are still open is the demo's business, not a test's."""

    def found() -> list[Case]:
        qs: QuerySet = Case.objects.filter(
            grid=grid, status__in=["assigned", "in_progress", "escalated", "reopened"]
        )
        return list(narrow(qs).order_by("pk")[:n])

    cases = found()
    household = Household.objects.filter(unit__building__grid=grid).order_by("id").first()
    for i in range(n - len(cases)):
        report(household=household, title=f"测试案件 {i}")
    cases = found()
    assert len(cases) == n, (grid, n, len(cases))
    return cases


def building(code_suffix: str) -> Building:
    return Building.objects.get(code__endswith=code_suffix)


def point_on_shared_edge(grid_a, grid_b) -> Point:
    """A point on the shared edge of two grids that no building footprint covers."""
    with connection.cursor() as cur:
        cur.execute(
            """
            WITH edge AS (
              SELECT ST_Intersection(a.boundary, b.boundary) AS g
              FROM territory_grid a, territory_grid b WHERE a.id = %s AND b.id = %s),
            cand AS (SELECT (ST_DumpPoints(g)).geom AS p FROM edge)
            SELECT ST_X(p), ST_Y(p) FROM cand, territory_grid a, territory_grid b
            WHERE a.id = %s AND b.id = %s AND ST_Covers(a.boundary, p) AND ST_Covers(b.boundary, p)
              AND NOT EXISTS (SELECT 1 FROM territory_building bl
                              WHERE ST_DWithin(bl.footprint, cand.p, 0.0003))
            LIMIT 1
            """,
            [grid_a.pk, grid_b.pk, grid_a.pk, grid_b.pk],
        )
        row = cur.fetchone()
    assert row, "the two grids share an edge with a point away from buildings"
    return Point(row[0], row[1], srid=4326)
