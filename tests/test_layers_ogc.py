"""OGC API - Features, in-process: what a GIS client relies on (GDAL's own client reads the
running server in test_layers_live.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from gridsvc.territory.models import Building
from gridsvc.visits.models import Visit

pytestmark = pytest.mark.django_db


def test_landing_conformance_and_collections(demo, member_client):
    client = member_client("street")
    landing = client.get("/ogc/").json()
    rels = {link["rel"] for link in landing["links"]}
    assert {"conformance", "data"} <= rels
    conformance = client.get("/ogc/conformance").json()["conformsTo"]
    assert any(c.endswith("/conf/core") for c in conformance)
    assert any(c.endswith("/conf/geojson") for c in conformance)
    ids = {c["id"] for c in client.get("/ogc/collections").json()["collections"]}
    assert {"grids", "buildings", "cases", "visits"} <= ids


def test_items_page_with_next_links_and_stay_in_the_territory(demo, member_client):
    grid1 = member_client("grid1")
    url = "/ogc/collections/buildings/items?limit=5"
    seen: set[int] = set()
    while url:
        body = grid1.get(url).json()
        assert body["type"] == "FeatureCollection"
        seen |= {f["id"] for f in body["features"]}
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
    assert seen == set(Building.objects.filter(grid=demo.grids[0]).values_list("id", flat=True))
    other = Building.objects.filter(grid=demo.grids[1]).first()
    assert grid1.get(f"/ogc/collections/buildings/items/{other.id}").status_code == 404
    street = member_client("street").get(f"/ogc/collections/buildings/items/{other.id}")
    assert street.status_code == 200 and street.json()["id"] == other.id


def test_datetime_reaches_visits_older_than_the_default_window(demo, member_client):
    client = member_client("street")
    old = Visit.objects.filter(client_time__lt=timezone.now() - timedelta(days=120)).first()
    assert old is not None, "the demo has a year of visits"
    day = timezone.localtime(old.client_time).date().isoformat()
    default = client.get("/ogc/collections/visits/items?limit=1000").json()
    assert old.id not in {f["id"] for f in default["features"]}, "last 90 days by default"
    in_window = client.get(f"/ogc/collections/visits/items?datetime={day}&limit=1000").json()
    assert old.id in {f["id"] for f in in_window["features"]}
    assert client.get(f"/ogc/collections/visits/items/{old.id}").status_code == 200


@pytest.mark.parametrize(
    ("query", "field"),
    [("colour=red", "colour"), ("limit=0", "limit"), ("datetime=yesterday", "datetime")],
)
def test_bad_items_queries_name_the_field(demo, member_client, query, field):
    r = member_client("street").get(f"/ogc/collections/visits/items?{query}")
    assert r.status_code == 400 and field in r.json(), r.content
