"""One input layer for the map layers (issue 17 item 3): the query parameters the views
accept are the ones the OpenAPI schema describes, with the same constraints, and every
layer property is declared once (LayerDef) — tiles, GeoJSON, OGC API and exports read it."""

from __future__ import annotations

import re

import pytest

from gridsvc.layers import services as S

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def params(schema: dict, path: str) -> dict[str, dict]:
    return {p["name"]: p["schema"] for p in schema["paths"][path]["get"]["parameters"]}


def test_layer_parameters_in_the_schema_carry_the_views_constraints(schema):
    features = params(schema, "/api/v1/layers/{layer}/")
    assert features["zoom"]["minimum"] == 0 and features["zoom"]["maximum"] == S.MAX_ZOOM
    assert features["page_size"]["maximum"] == 500
    assert features["crs"]["enum"] == ["wgs84", "gcj02", "bd09", "cgcs2000"]
    assert re.fullmatch(features["bbox"]["pattern"], "103.7,36.0,103.8,36.1")
    assert not re.fullmatch(features["bbox"]["pattern"], "1,2,3")
    # states come from the case model: a new state is in the schema without a second list
    from gridsvc.cases.models import Status

    for state in Status.values:
        assert re.fullmatch(features["status"]["pattern"], f"open,{state}")
    assert not re.fullmatch(features["status"]["pattern"], "open,nope")
    # a filter declared on a layer (places: kind) is in the schema with its choices
    assert {"mosque", "dispute"} <= set(features["kind"]["enum"])
    tiles = params(schema, "/tiles/{layer}/{z}/{x}/{y}.mvt")
    assert tiles["crs"]["enum"] == ["wgs84", "gcj02", "cgcs2000"]
    assert tiles["z"]["maximum"] == S.MAX_ZOOM
    items = params(schema, "/ogc/collections/{collection_id}/items")
    assert items["limit"]["maximum"] == 10_000 and items["limit"]["minimum"] == 1
    assert "from" not in items and "bbox-crs" in items  # OGC API: no aliases


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=2026-02-30", "since"),
        ("until=2026-01-01T25:00", "until"),
        ("grid=0", "grid"),
        ("far_off=maybe", "far_off"),
        ("page=0", "page"),
        ("crs=EPSG:3857", "crs"),
    ],
)
def test_values_outside_the_schema_are_refused_naming_the_field(member_client, query, field):
    r = member_client("street").get(f"/api/v1/layers/visits/?{query}")
    assert r.status_code == 400 and field in r.json(), r.content


def test_values_the_schema_describes_are_accepted(member_client, demo):
    client = member_client("street")
    ok = [
        "/api/v1/layers/cases/?status=open,resolved&kind=dispute&since=2026-01-01&crs=EPSG:4326",
        "/api/v1/layers/places/?kind=mosque&bbox=103.7,36.0,103.8,36.1",
        "/api/v1/heatmap/cases/?from=2026-01-01T08:00:00%2B08:00&to=2026-12-01&zoom=14.5",
        "/ogc/collections/cases/items?bbox=103.7,36.0,0,103.8,36.1,100&datetime=../2026-12-01",
        "/tiles/cases/16/0/0.mvt?crs=cgcs2000&state=done",
    ]
    for url in ok:
        r = client.get(url)
        assert r.status_code == 200, (url, r.content[:300])


def test_every_layer_property_is_declared_once_and_the_outputs_read_it(member_client, demo):
    client = member_client("street")
    for name, layer in S.LAYERS.items():
        props = {p.name: p for p in layer.props}
        assert len(props) == len(layer.props), f"{name}: a property declared twice"
        assert all(p.label and p.type for p in layer.props)
        geojson = client.get(f"/api/v1/layers/{name}/?page_size=1").json()
        if geojson["features"]:
            assert list(geojson["features"][0]["properties"]) == list(layer.fields)
        assert client.get("/api/v1/layers/").status_code == 200
    # an export writes exactly the declared export columns, under their file names
    for name in S.EXPORT_LAYERS:
        layer = S.LAYERS[name]
        r = client.get(f"/api/v1/reports/export/{name}/?format=geojson")
        assert r.status_code == 200, name
        columns = set(r.json()["features"][0]["properties"])
        assert columns == {p.column_name for p in layer.export_props}, name
    # a neighbour gets no sensitive column (what Prop.sensitive declares)
    cases = member_client("bh-001").get("/api/v1/reports/export/cases/?format=geojson")
    if cases.json()["features"]:
        assert "ethnic_religious" not in cases.json()["features"][0]["properties"]
    listed = {x["id"]: x for x in client.get("/api/v1/layers/").json()["layers"]}
    age = next(p for p in S.LAYERS["cases"].props if p.name == "age_days")
    assert listed["cases"]["labels"]["age_days"] == age.label
