"""Territory rules: building → grid/compound containment, codes, ID numbers."""

from __future__ import annotations

import pytest
from django.contrib.gis.geos import Point
from django.core.exceptions import ValidationError

from gridsvc.territory.codes import (
    ethnicity_code,
    id_check_char,
    make_id_number,
    mask_id_number,
    validate_id_number,
)
from gridsvc.territory.models import Building, Community, Compound, Grid, Street
from gridsvc.territory.services import locate, orphan_buildings
from tests.conftest import square

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_grids():
    """Two grids sharing the edge lon=100.001 (A west, code …001; B east, code …002)."""
    street = Street.objects.create(code="110101001", name="测试街道")
    community = Community.objects.create(street=street, code="110101001001", name="测试社区")
    a = Grid.objects.create(
        community=community,
        code="110101001001001",
        name="A",
        boundary=square(100.000, 30.000, 100.001, 30.001),
    )
    b = Grid.objects.create(
        community=community,
        code="110101001001002",
        name="B",
        boundary=square(100.001, 30.000, 100.002, 30.001),
    )
    return a, b


def test_building_inside_a_grid_gets_that_grid(two_grids):
    a, b = two_grids
    bld = Building.objects.create(
        code="T-1", name="t1", footprint=square(100.0012, 30.0002, 100.0015, 30.0004)
    )
    assert bld.grid == b
    assert bld.point is not None and bld.footprint.covers(bld.point)


def test_building_straddling_the_edge_goes_to_the_larger_share(two_grids):
    a, b = two_grids
    bld = Building.objects.create(
        code="T-2", name="t2", footprint=square(100.0009, 30.0002, 100.0013, 30.0004)
    )
    assert bld.grid == b  # 3/4 of the footprint lies in B


def test_building_exactly_halved_by_the_edge_is_deterministic(two_grids):
    a, b = two_grids
    for n in range(3):
        bld = Building.objects.create(
            code=f"T-3{n}", name="t3", footprint=square(100.0008, 30.0002, 100.0012, 30.0004)
        )
        assert bld.grid == a, "equal shares: the lowest grid code wins, every time"


def test_point_on_shared_edge_is_located_in_the_lowest_code(two_grids):
    a, b = two_grids
    loc = locate(Point(100.001, 30.0005, srid=4326))
    assert loc.grid == a
    assert loc.method == "point"


def test_building_outside_every_grid_is_reported_not_dropped(two_grids):
    bld = Building.objects.create(
        code="T-4", name="far", footprint=square(101.0, 31.0, 101.0003, 31.0002)
    )
    assert bld.grid is None
    assert Building.objects.filter(pk=bld.pk).exists()
    assert bld in list(orphan_buildings())


def test_moving_a_grid_boundary_rederives_its_buildings(two_grids):
    from gridsvc.territory.services import rederive_buildings_near

    a, b = two_grids
    bld = Building.objects.create(
        code="T-5", name="t5", footprint=square(100.0012, 30.0002, 100.0015, 30.0004)
    )
    assert bld.grid == b
    a.boundary = square(100.000, 30.000, 100.0016, 30.001)
    a.save()
    b.boundary = square(100.0016, 30.000, 100.002, 30.001)
    b.save()
    rederive_buildings_near(a.boundary)
    bld.refresh_from_db()
    assert bld.grid == a


def test_compound_is_derived_too(two_grids):
    a, b = two_grids
    comp = Compound.objects.create(
        community=a.community,
        code="TC-1",
        name="测试小区",
        boundary=square(100.0005, 30.0001, 100.0018, 30.0009),
    )
    bld = Building.objects.create(
        code="T-6", name="t6", footprint=square(100.0012, 30.0002, 100.0015, 30.0004)
    )
    assert bld.compound == comp and bld.grid == b  # compounds may straddle grids


def test_grid_code_must_extend_the_community_code(two_grids):
    a, _ = two_grids
    bad = Grid(community=a.community, code="999999999999001", name="x", boundary=a.boundary)
    with pytest.raises(ValidationError) as err:
        bad.full_clean()
    assert "code" in err.value.message_dict


# ---------------------------------------------------------------- ID numbers (GB 11643)
def test_known_valid_id_number():
    # The published GB 11643 example: 11010519491231002X
    assert validate_id_number("11010519491231002x") == "11010519491231002X"
    assert id_check_char("11010519491231002") == "X"


@pytest.mark.parametrize(
    "bad",
    ["110105194912310021", "11010519491231002", "1101051949123100XX", "110105194913310028"],
)
def test_bad_id_numbers_are_rejected(bad):
    with pytest.raises(ValidationError):
        validate_id_number(bad)


def test_generated_id_numbers_validate_and_carry_gender():
    from datetime import date

    idn = make_id_number("620103", date(1980, 5, 17), 42, female=True)
    assert validate_id_number(idn) == idn
    assert int(idn[16]) % 2 == 0  # even = female
    assert mask_id_number(idn) == idn[:6] + "********" + idn[-4:]


def test_ethnicity_by_code_or_name():
    assert ethnicity_code("03") == "03"
    assert ethnicity_code("回族") == "03"
    assert ethnicity_code("Dongxiang") == "26"
    assert ethnicity_code("撒拉") == "35"
    with pytest.raises(ValidationError):
        ethnicity_code("Klingon")


def test_check_territory_is_clean_on_the_demo_and_reports_an_orphan(demo):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("check_territory", stdout=out)
    assert "territory is clean" in out.getvalue()
    Building.objects.create(
        code="ORPHAN-1", name="荒地楼", footprint=square(90.0, 20.0, 90.0003, 20.0002)
    )
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("check_territory", stdout=out)
    assert "ORPHAN-1" in out.getvalue()
