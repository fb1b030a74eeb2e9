"""GeoJSON layers (bbox, filters, paging, simplification, crs), the case heatmap (counts equal
the raw counts; cells equal ST_HexagonGrid's), its MVT twin, and the grid choropleth."""

from __future__ import annotations

import gzip
import math
from datetime import timedelta

import mapbox_vector_tile
import pytest
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from geo import crs as geocrs
from geo.hexbin import hex_size_for_zoom, lonlat_to_tile
from gridsvc.accounts.models import Member
from gridsvc.cases.models import DONE_STATUSES, OPEN_STATUSES, Case, Category
from gridsvc.chain.scope import scope_for
from gridsvc.layers import services as S
from gridsvc.territory.models import Building, Grid
from gridsvc.visits.models import Visit

pytestmark = pytest.mark.django_db


def metres(a, b) -> float:  # type: ignore[no-untyped-def]
    dx = (a[0] - b[0]) * 111_320 * math.cos(math.radians(a[1]))
    dy = (a[1] - b[1]) * 110_574
    return math.hypot(dx, dy)


def street_bbox(margin: float = 0.01) -> tuple[float, float, float, float]:
    from django.contrib.gis.db.models import Extent

    x0, y0, x1, y1 = Grid.objects.aggregate(e=Extent("boundary"))["e"]
    return x0 - margin, y0 - margin, x1 + margin, y1 + margin


def bbox_param(b) -> str:  # type: ignore[no-untyped-def]
    return ",".join(f"{v:.7f}" for v in b)


# ---------------------------------------------------------------------- GeoJSON layers
def test_layer_geojson_with_bbox_paging_and_filters(demo, member_client):
    client = member_client("street")
    g1 = demo.grids[0]
    r = client.get(f"/api/v1/layers/buildings/?bbox={bbox_param(g1.boundary.extent)}&page_size=5")
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "FeatureCollection" and len(body["features"]) == 5
    in_bbox = Building.objects.filter(footprint__bboverlaps=g1.boundary.envelope).count()
    assert body["count"] == in_bbox and body["next"]
    page2 = client.get(body["next"]).json()
    assert not {f["id"] for f in body["features"]} & {f["id"] for f in page2["features"]}
    r = client.get(f"/api/v1/layers/buildings/?grid={g1.id}&page_size=500").json()
    assert {f["id"] for f in r["features"]} == set(
        Building.objects.filter(grid=g1).values_list("id", flat=True)
    )
    r = client.get("/api/v1/layers/cases/?status=open&page_size=500").json()
    assert r["count"] == Case.objects.filter(status__in=OPEN_STATUSES).count()
    assert all(f["properties"]["open"] for f in r["features"])
    assert "title" not in r["features"][0]["properties"]


def test_layer_geojson_is_scoped(demo, member_client):
    r = member_client("grid1").get("/api/v1/layers/cases/?page_size=500").json()
    scoped = scope_for(Member.objects.get(username="grid1")).filter(Case.objects.all())
    assert {f["id"] for f in r["features"]} == set(scoped.values_list("id", flat=True))
    assert not Case.objects.filter(id__in=[f["id"] for f in r["features"]], grid=demo.grids[1])
    r = member_client("grid1").get("/api/v1/layers/grids/").json()
    assert [f["id"] for f in r["features"]] == [demo.grids[0].id]


def test_simplification_by_zoom_and_tolerance(demo, member_client):
    client = member_client("street")

    def vertices(url: str) -> int:
        feats = client.get(url).json()["features"]
        return sum(
            len(ring)
            for f in feats
            for poly in f["geometry"]["coordinates"]
            for ring in (poly if f["geometry"]["type"] == "MultiPolygon" else [poly])
        )

    # a wiggly grid so that simplification has something to remove
    g = demo.grids[0]
    from django.contrib.gis.geos import MultiPolygon, Polygon

    x0, y0, x1, y1 = g.boundary.extent
    n = 200
    top = [(x0 + (x1 - x0) * i / n, y1 + (0.00001 if i % 2 else 0)) for i in range(n + 1)]
    ring = [(x0, y0), (x1, y0), *reversed(top), (x0, y0)]
    Grid.objects.filter(pk=g.pk).update(boundary=MultiPolygon(Polygon(ring), srid=4326))
    url = f"/api/v1/layers/grids/?code={g.code}"
    full = vertices(url)
    assert full > 200
    assert vertices(url + "&zoom=12") < 10
    assert vertices(url + "&tolerance=5") < 10
    assert vertices(url + "&tolerance=0.1") > 100


@pytest.mark.parametrize("crs", ["gcj02", "bd09", "cgcs2000"])
def test_crs_on_input_bbox_and_output_coordinates(demo, member_client, crs):
    client = member_client("street")
    b = Building.objects.filter(grid=demo.grids[0]).order_by("code").first()
    x0, y0, x1, y1 = b.footprint.extent
    pad = 0.00003
    wgs = client.get(f"/api/v1/layers/buildings/?code={b.code}").json()["features"][0]
    # the same box, given in the other system
    lo = geocrs.from_wgs84(x0 - pad, y0 - pad, crs)
    hi = geocrs.from_wgs84(x1 + pad, y1 + pad, crs)
    r = client.get(f"/api/v1/layers/buildings/?crs={crs}&bbox={bbox_param((*lo, *hi))}").json()
    assert r["crs"] == crs
    assert b.id in {f["id"] for f in r["features"]}
    other = next(f for f in r["features"] if f["id"] == b.id)
    ring_w = wgs["geometry"]["coordinates"][0]
    ring_o = other["geometry"]["coordinates"][0]
    ring_w = ring_w[0] if isinstance(ring_w[0][0], list) else ring_w
    ring_o = ring_o[0] if isinstance(ring_o[0][0], list) else ring_o
    for pw, po in zip(ring_w, ring_o, strict=True):
        expected = geocrs.from_wgs84(pw[0], pw[1], crs)
        assert metres(po, expected) < 0.05
        assert metres(geocrs.to_wgs84(po[0], po[1], crs), pw) < 0.5  # the iterative inverse
        if crs != "cgcs2000":
            assert metres(po, pw) > 100  # GCJ-02/BD-09 move Lanzhou by hundreds of metres
    # the WGS84 box read as GCJ-02 misses the building (the offset is larger than the box)
    if crs in ("gcj02", "bd09"):
        wrong = client.get(
            f"/api/v1/layers/buildings/?crs={crs}&bbox={bbox_param((x0, y0, x1, y1))}"
        ).json()
        assert b.id not in {f["id"] for f in wrong["features"]}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("bbox=1,2,3", "bbox"),
        ("bbox=a,b,c,d", "bbox"),
        ("bbox=3,2,1,0", "bbox"),
        ("bbox=0,0,50,50", "bbox"),
        ("crs=mars", "crs"),
        ("zoom=99", "zoom"),
        ("tolerance=-1", "tolerance"),
        ("page_size=100000", "page_size"),
        ("grid=abc", "grid"),
    ],
)
def test_bad_layer_queries_name_the_field(member_client, query, field):
    r = member_client("street").get(f"/api/v1/layers/buildings/?{query}")
    assert r.status_code == 400 and field in r.json(), r.content


def test_places_filter_by_kind(demo, member_client):
    from gridsvc.territory.models import Place

    client = member_client("street")
    mosques = client.get("/api/v1/layers/places/?kind=mosque&page_size=500").json()
    assert mosques["count"] == Place.objects.filter(kind="mosque").count() >= 1
    assert {f["properties"]["kind"] for f in mosques["features"]} == {"mosque"}
    assert mosques["count"] < Place.objects.count()
    bad = client.get("/api/v1/layers/places/?kind=dog")
    assert bad.status_code == 400 and "kind" in bad.json()


def test_unknown_layer_is_404_naming_it(member_client):
    r = member_client("street").get("/api/v1/layers/residents/")
    assert r.status_code == 404 and "layer" in r.json()


# ---------------------------------------------------------------------- heatmap
def raw_count(qs, since=None, until=None):  # type: ignore[no-untyped-def]
    if since:
        qs = qs.filter(reported_at__gte=since)
    if until:
        qs = qs.filter(reported_at__lt=until)
    return qs.count()


@pytest.mark.parametrize("zoom", [13, 15, 17])
def test_heatmap_counts_equal_raw_counts_in_the_window(demo, member_client, zoom):
    client = member_client("street")
    today = timezone.localdate()
    since = today - timedelta(days=120)
    r = client.get(
        f"/api/v1/heatmap/cases/?bbox={bbox_param(street_bbox())}&zoom={zoom}"
        f"&since={since}&until={today}"
    )
    assert r.status_code == 200
    body = r.json()
    counts = [f["properties"]["count"] for f in body["features"]]
    start = S.parse_instant(str(since), "since")
    end = S.parse_instant(str(today), "until", end=True)
    expected = raw_count(Case.objects.all(), start, end)
    assert expected > 10
    assert sum(counts) == body["total"] == expected
    assert body["hex_size_m"] == pytest.approx(hex_size_for_zoom(zoom))
    # filters: category (with sub-categories) and state
    neighbour = Category.objects.filter(Q(code="neighbour") | Q(parent__code="neighbour"))
    r = client.get(
        f"/api/v1/heatmap/cases/?bbox={bbox_param(street_bbox())}&zoom={zoom}"
        f"&from={since}&to={today}&category=neighbour&state=closed"
    ).json()
    expected = raw_count(Case.objects.filter(category__in=neighbour, status="closed"), start, end)
    assert sum(f["properties"]["count"] for f in r["features"]) == expected > 0


def test_heatmap_cells_are_st_hexagongrid_cells(demo, member_client):
    zoom = 16
    size = hex_size_for_zoom(zoom)
    r = (
        member_client("street")
        .get(f"/api/v1/heatmap/cases/?bbox={bbox_param(street_bbox())}&zoom={zoom}")
        .json()
    )
    ours = {
        (f["properties"]["i"], f["properties"]["j"]): f["properties"]["count"]
        for f in r["features"]
    }
    with connection.cursor() as cur:
        cur.execute(
            """
            WITH pts AS (SELECT ST_Transform(location, 3857) AS p FROM cases_case),
                 env AS (SELECT ST_Expand(ST_Extent(p)::geometry, %s) AS e FROM pts)
            SELECT h.i, h.j, count(*)
            FROM env, ST_HexagonGrid(%s, ST_SetSRID(env.e, 3857)) h
            JOIN pts ON ST_Intersects(h.geom, pts.p)
            GROUP BY h.i, h.j
            """,
            [size * 2, size],
        )
        reference = {(i, j): n for i, j, n in cur.fetchall()}
    assert ours == reference


def test_heatmap_is_scoped(demo, member_client):
    r = (
        member_client("grid1")
        .get(f"/api/v1/heatmap/cases/?bbox={bbox_param(street_bbox())}&zoom=15")
        .json()
    )
    scoped = scope_for(Member.objects.get(username="grid1")).filter(Case.objects.all())
    assert r["total"] == scoped.count() < Case.objects.count()


def test_heatmap_tiles_have_the_same_counts(demo, member_client):
    client = member_client("street")
    c = Grid.objects.get(pk=demo.grids[3].pk).boundary.centroid
    z = 12  # the whole street in one tile
    x, y = lonlat_to_tile(c.x, c.y, z)
    r = client.get(f"/tiles/heatmap/{z}/{x}/{y}.mvt?status=open", HTTP_ACCEPT_ENCODING="gzip")
    assert r.status_code == 200
    decoded = mapbox_vector_tile.decode(gzip.decompress(r.content))
    cells = decoded["heatmap"]["features"]
    assert (
        sum(f["properties"]["count"] for f in cells)
        == Case.objects.filter(status__in=OPEN_STATUSES).count()
    )
    geojson = client.get(
        f"/api/v1/heatmap/cases/?bbox={bbox_param(street_bbox())}&zoom={z}&status=open"
    ).json()
    assert {
        (f["properties"]["i"], f["properties"]["j"]): f["properties"]["count"] for f in cells
    } == {
        (f["properties"]["i"], f["properties"]["j"]): f["properties"]["count"]
        for f in geojson["features"]
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("zoom=abc", "zoom"),
        ("zoom=-1", "zoom"),
        ("since=2026-13-01", "since"),
        ("from=nope", "from"),
        ("since=2026-02-01&until=2026-01-01", "until"),
        ("status=open,nope", "status"),
        ("state=nope", "state"),
        ("category=nope", "category"),
        ("bbox=0,0,1", "bbox"),
        ("crs=wgs85", "crs"),
        ("kind=dog", "kind"),
    ],
)
def test_bad_heatmap_queries_name_the_field(member_client, query, field):
    r = member_client("street").get(f"/api/v1/heatmap/cases/?{query}")
    assert r.status_code == 400 and field in r.json(), r.content


# ---------------------------------------------------------------------- choropleth
def test_choropleth_figures_per_grid(demo, member_client):
    today = timezone.localdate()
    since = today - timedelta(days=200)
    r = member_client("street").get(f"/api/v1/choropleth/grids/?from={since}&to={today}")
    assert r.status_code == 200
    start = S.parse_instant(str(since), "since")
    end = S.parse_instant(str(today), "until", end=True)
    now = timezone.now()
    feats = {f["id"]: f["properties"] for f in r.json()["features"]}
    assert set(feats) == {g.id for g in demo.grids}
    for g in demo.grids:
        cases = Case.objects.filter(grid=g, reported_at__gte=start, reported_at__lt=end).exclude(
            status__in=["void", "merged"]
        )
        p = feats[g.id]
        assert p["open"] == cases.filter(status__in=OPEN_STATUSES).count()
        assert p["overdue"] == cases.filter(status__in=OPEN_STATUSES, due_at__lt=now).count()
        assert p["resolved"] == cases.filter(status__in=DONE_STATUSES).count()
        total = cases.count()
        assert p["resolution_rate"] == (round(p["resolved"] / total, 4) if total else None)
        assert (
            p["visits_done"]
            == Visit.objects.filter(
                household__unit__building__grid=g, client_time__gte=start, client_time__lt=end
            ).count()
        )
    assert sum(p["visits_done"] for p in feats.values()) > 0
    assert sum(p["resolved"] for p in feats.values()) > 0


def test_choropleth_is_scoped_and_takes_crs(demo, member_client):
    body = member_client("grid1").get("/api/v1/choropleth/grids/?crs=gcj02&zoom=14").json()
    assert [f["id"] for f in body["features"]] == [demo.grids[0].id]
    assert body["crs"] == "gcj02"
    lon, lat = body["features"][0]["geometry"]["coordinates"][0][0][0]
    x0, y0, _, _ = demo.grids[0].boundary.extent
    assert metres(geocrs.to_wgs84(lon, lat, "gcj02"), (x0, y0)) < 5
