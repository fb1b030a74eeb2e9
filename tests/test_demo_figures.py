"""The demo street reproduces the seed figures of 华林山社区 from its records."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Count, Q

from gridsvc.chain.models import Position
from gridsvc.territory.models import Grid, Household, Place, Resident

pytestmark = pytest.mark.django_db


def test_households_and_residents(demo):
    assert Household.objects.count() == 1517
    assert Resident.objects.count() == 4101
    assert Resident.objects.filter(household__isnull=True).count() == 0
    assert Household.objects.filter(head__isnull=True).count() == 0


def test_minority_figures(demo):
    minority = Resident.objects.exclude(ethnicity="01")
    assert minority.count() == 1436
    assert round(100 * minority.count() / Resident.objects.count()) == 35
    minority_households = Household.objects.filter(head__in=minority).count()
    assert minority_households == 532
    assert set(minority.values_list("ethnicity", flat=True)) == {"03", "26", "47", "35"}


def test_low_income_figures(demo):
    """低保 is the approved applications in force (gridsvc.assistance.figures): by the end of
    October 2026 every household recorded as 低保 has one."""
    from datetime import date

    from gridsvc.assistance.figures import kind_figures
    from gridsvc.assistance.models import Application, Kind

    f = kind_figures(Application.objects.all(), Kind.DIBAO, date(2026, 10, 31))
    assert (f["minority_people"], f["minority_households"], f["people"]) == (296, 120, 740)
    assert f["minority_people_share"] == 40.0
    low = Resident.objects.filter(tags__contains=["low_income"])
    assert low.count() == f["people"]


def test_two_religious_venues(demo):
    assert Place.objects.filter(kind__in=["mosque", "religious_venue"]).count() == 2


def test_seven_grids_tile_0_7_km2_without_gaps_or_overlaps(demo):
    grids = Grid.objects.filter(community=demo.community)
    assert grids.count() == 7
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT sum(ST_Area(g.boundary::geography)) / 1e6,
                   ST_Area(ST_SymDifference(ST_Union(g.boundary), c.boundary)::geography),
                   (SELECT coalesce(sum(ST_Area(ST_Intersection(a.boundary, b.boundary)::geography)), 0)
                      FROM territory_grid a JOIN territory_grid b
                        ON a.id < b.id AND a.boundary && b.boundary
                     WHERE a.community_id = %s AND b.community_id = %s)
            FROM territory_grid g JOIN territory_community c ON c.id = g.community_id
            WHERE c.id = %s GROUP BY c.boundary
            """,
            [demo.community.pk] * 3,
        )
        total_km2, gap_m2, overlap_m2 = cur.fetchone()
    assert total_km2 == pytest.approx(0.7, abs=0.01)
    assert gap_m2 < 0.01 and overlap_m2 < 0.01


def test_grid_codes_number_west_east_north_south(demo):
    centroids = [(g.code, g.boundary.centroid) for g in demo.grids]
    top = [c for c in centroids if c[1].y > demo.community.boundary.centroid.y]
    assert [c[0][-3:] for c in top] == ["001", "002", "003", "004"]
    assert all(a[1].x < b[1].x for a, b in zip(top, top[1:], strict=False))


def test_every_building_is_in_exactly_one_grid(demo):
    from gridsvc.territory.models import Building

    assert Building.objects.filter(grid__isnull=True).count() == 0
    per_grid = Grid.objects.annotate(n=Count("buildings")).filter(community=demo.community)
    assert all(g.n > 0 for g in per_grid)


def test_chain_has_positions_and_some_realistic_vacancies(demo):
    held = Position.objects.held_at()
    assert held.filter(position_type="street_dispatcher").exists()
    assert held.filter(position_type="grid_member").count() == 7
    assert held.filter(position_type="community_cadre").count() == 6  # grid 4 vacant
    assert held.filter(Q(on_leave=True)).exists()
    from gridsvc.territory.models import Unit

    assert Unit.objects.count() > held.filter(position_type="unit_head").count()
