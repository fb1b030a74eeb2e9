"""Issue 20 item 9 on the map: ``GET /api/v1/districts/map/`` serves the district (区) and its
streets as GeoJSON under exactly the rules of ``GET /api/v1/districts/``: the district's 创建
office gets the outline and its streets; a street office its district by name only (no
geometry, no streets); a community cadre, a grid member and the neighbours' roles nothing."""

from __future__ import annotations

import json

import pytest
from django.contrib.gis.geos import GEOSGeometry

from gridsvc.territory.models import District, Street

pytestmark = pytest.mark.django_db
MAP = "/api/v1/districts/map/"


def _map(client) -> list[dict]:  # type: ignore[no-untyped-def]
    r = client.get(MAP)
    assert r.status_code == 200, r.content[:300]
    body = r.json()
    assert body["type"] == "FeatureCollection"
    return body["features"]


def test_the_district_office_gets_the_district_outline_and_its_streets(demo, member_client):
    district = District.objects.get(code=demo.street.code[:6])
    assert district.boundary is not None  # the demo's 七里河区 has an outline
    officer = member_client("district")
    features = _map(officer)
    layers = [(f["properties"]["layer"], f["properties"]["name"]) for f in features]
    assert layers == [("district", "七里河区"), ("street", demo.street.name)]
    outline = GEOSGeometry(json.dumps(features[0]["geometry"]), srid=4326)
    assert outline.equals(district.boundary)
    street = features[1]
    assert street["properties"] == {
        "layer": "street",
        "id": demo.street.pk,
        "code": demo.street.code,
        "name": demo.street.name,
        "district": district.pk,
    }
    assert GEOSGeometry(json.dumps(street["geometry"]), srid=4326).equals(demo.street.boundary)

    # a second street of the district comes in; one with the code prefix but not in it, not
    Street.objects.create(code=demo.street.code[:6] + "998", name="别的街道")
    Street.objects.create(code=demo.street.code[:6] + "999", name="新街道", district=district)
    names = [f["properties"]["name"] for f in _map(officer) if f["properties"]["layer"] == "street"]
    assert names == [demo.street.name, "新街道"]

    # without an outline of its own: the union of its streets' (as /districts/ answers it)
    District.objects.filter(pk=district.pk).update(boundary=None)
    outline = GEOSGeometry(json.dumps(_map(officer)[0]["geometry"]), srid=4326)
    assert outline.equals(demo.street.boundary)


def test_a_street_office_gets_its_district_by_name_only(demo, member_client):
    district = District.objects.get(code=demo.street.code[:6])
    for who in ("street", "ethnic"):  # the dispatch desk, the ethnic-affairs desk
        listed = member_client(who).get("/api/v1/districts/").json()
        assert listed == [{"id": district.pk, "name": district.name}]
        assert _map(member_client(who)) == [
            {
                "type": "Feature",
                "id": district.pk,
                "geometry": None,
                "properties": {"layer": "district", "id": district.pk, "name": district.name},
            }
        ]


def test_cadres_grid_members_and_neighbours_get_no_district(demo, member_client):
    for who in ("cadre1", "grid1", "bh-001", "uh-001-1", "pm-C01", "oc-C03"):
        assert member_client(who).get("/api/v1/districts/").json() == [], who
        assert _map(member_client(who)) == [], who
    from rest_framework.test import APIClient

    assert APIClient().get(MAP).status_code in (401, 403)


def test_another_districts_office_does_not_see_ours(demo, member_client):
    from gridsvc.chain.models import Position, PositionType

    other = District.objects.create(code="620104", name="西固区")
    Position.objects.filter(
        member__username="district", position_type=PositionType.DISTRICT_OFFICER
    ).update(district=other)
    features = _map(member_client("district"))
    assert [(f["properties"]["layer"], f["properties"]["name"]) for f in features] == [
        ("district", "西固区")
    ]
    assert features[0]["geometry"] is None  # no outline, no streets of its own


def test_the_district_map_is_in_the_schema(demo, member_client):
    schema = member_client("street").get("/api/schema/?format=json").json()
    assert "/api/v1/districts/map/" in schema["paths"]
