"""The 应保尽保 map layer (issue 21 item 2, "a layer for the street"): per building, counts of
households that look eligible without an application and of overdue 复核 — never a
household; a count of 1–4 is null below the street; neighbours' roles get no feature.
"""

from __future__ import annotations

from collections import Counter

import pytest

from gridsvc.accounts.models import Member
from gridsvc.assistance import services
from gridsvc.assistance.layer import COUNTS
from gridsvc.layers import services as S
from gridsvc.territory.models import Building, Household

pytestmark = pytest.mark.django_db
URL = "/api/v1/layers/assistance_gaps/?page_size=500"


def _expected(households) -> dict[str, Counter]:  # type: ignore[no-untyped-def]
    """Per count, households per building, from the 应保尽保 rule itself."""
    out = {}
    for key, qs in services.gap_households(households).items():
        out[key] = Counter(qs.values_list("unit__building__code", flat=True))
    return out


def test_the_street_sees_exact_counts_per_building(demo, member_client):
    street_households = Household.objects.filter(
        unit__building__grid__community__street=demo.street
    )
    expected = _expected(street_households)
    assert sum(expected["dibao"].values()) + sum(expected["public_housing"].values()) > 0, (
        "the demo street has 应保尽保 gaps (fixtures/demo_assistance.py)"
    )
    assert sum(expected["recheck_overdue"].values()) > 0
    r = member_client("street").get(URL)
    assert r.status_code == 200, r.content[:300]
    features = r.json()["features"]
    assert features
    for f in features:
        props = f["properties"]
        assert list(props) == ["building", "grid", *COUNTS]  # counts only, no household
        for key in COUNTS:
            assert props[key] == expected[key].get(props["building"], 0), (key, props)
    shown = {f["properties"]["building"] for f in features}
    assert shown == {b for c in expected.values() for b in c}  # no building without a gap
    # it is in the layer list and has a tile
    listed = {x["id"] for x in member_client("street").get("/api/v1/layers/").json()["layers"]}
    assert "assistance_gaps" in listed


def test_staff_get_their_grid_with_small_counts_suppressed(demo, member_client):
    grid = demo.grids[0]
    expected = _expected(Household.objects.filter(unit__building__grid=grid))
    features = member_client("grid1").get(URL).json()["features"]
    codes = set(Building.objects.filter(grid=grid).values_list("code", flat=True))
    assert {f["properties"]["building"] for f in features} <= codes
    for f in features:
        props = f["properties"]
        for key in COUNTS:
            n = expected[key].get(props["building"], 0)
            assert props[key] == (None if 0 < n < 5 else n), (key, props, n)
    # a household's gap closes when the grid member starts an application
    missing = services.gap_households(Household.objects.filter(unit__building__grid=grid))
    household = missing["dibao"].order_by("id").first() or missing["public_housing"].first()
    if household is not None:
        kind = "dibao" if missing["dibao"].filter(pk=household.pk).exists() else "public_housing"
        code = household.unit.building.code
        before = _expected(Household.objects.filter(unit__building__grid=grid))[kind][code]
        services.submit(Member.objects.get(username="grid1"), household, kind)
        after = _expected(Household.objects.filter(unit__building__grid=grid))[kind][code]
        assert after == before - 1
        street = member_client("street").get(URL).json()["features"]
        row = next((f for f in street if f["properties"]["building"] == code), None)
        assert row is None or row["properties"][kind] == after


def test_neighbours_get_no_feature_and_no_tile_content(demo, member_client):
    street_features = member_client("street").get(URL).json()["features"]
    assert street_features
    for name in ("bh-001", "uh-001-1", "pm-C01"):
        r = member_client(name).get(URL)
        assert r.status_code == 200 and r.json()["features"] == [], name
    # the same tile: features for the street, none for a building head
    lon, lat = street_features[0]["geometry"]["coordinates"]
    from geo.hexbin import lonlat_to_tile

    z = 15
    x, y = lonlat_to_tile(lon, lat, z)
    tile = f"/tiles/assistance_gaps/{z}/{x}/{y}.mvt"
    street = member_client("street").get(tile)
    assert street.status_code == 200 and int(street["X-Tile-Features"]) >= 1
    bh = member_client("bh-001").get(tile)
    assert bh.status_code == 200 and int(bh["X-Tile-Features"]) == 0
    assert S.LAYERS["assistance_gaps"].time_dependent  # cached 5 minutes, not a day
