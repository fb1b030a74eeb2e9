"""No input gives a 5xx (issue 15 item 5): tiles for every role, hostile JSON (deep nesting,
NUL characters) and form bodies are 400s naming the field, and nothing is stored half-way."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from geo.hexbin import lonlat_to_tile
from gridsvc.accounts.models import Member
from gridsvc.cases.models import Case, CaseEvent
from gridsvc.territory.models import Grid, Household
from gridsvc.visits.models import DailyReport, Visit

from .cases_helpers import report

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000
TILE_LAYERS = ("grids", "compounds", "buildings", "households", "places", "cases", "visits")
ROLES = ("uh-001-1", "bh-001", "pm-C01", "oc-C03", "grid1", "mediator", "street")


def _tile_over(grid: Grid, z: int) -> tuple[int, int, int]:
    c = grid.boundary.point_on_surface
    return (z, *lonlat_to_tile(c.x, c.y, z))


@pytest.mark.parametrize("role", ROLES)
def test_every_tile_layer_answers_every_role(demo, member_client, role):
    """The compounds tile used to be a 500 (EmptyResultSet) for every unit head."""
    client = member_client(role)
    z, x, y = _tile_over(demo.grids[0], 15)
    for layer in (*TILE_LAYERS, "heatmap"):
        r = client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt")
        assert r.status_code == 200, (role, layer, r.status_code, r.content[:200])
        if layer != "heatmap":
            r = client.get(f"/api/v1/layers/{layer}/?page_size=5")
            assert r.status_code == 200, (role, layer, r.status_code)
    for collection in TILE_LAYERS:
        r = client.get(f"/ogc/collections/{collection}/items?limit=5")
        assert r.status_code == 200, (role, collection, r.status_code)


def test_a_member_without_any_position_gets_empty_tiles(demo):
    nobody = Member.objects.create_user(username="nobody-inputs", password="x-x-x-x-x-x")
    client = APIClient()
    client.force_authenticate(nobody)
    z, x, y = _tile_over(demo.grids[0], 15)
    for layer in (*TILE_LAYERS, "heatmap"):
        r = client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt")
        assert r.status_code == 200, (layer, r.status_code)


@pytest.mark.parametrize(
    "url", ["/api/v1/auth/token/", "/api/v1/auth/token/refresh/", "/api/v1/auth/logout/"]
)
def test_deeply_nested_json_is_a_400_without_login(demo, url):
    r = APIClient().post(url, DEEP, content_type="application/json")
    assert r.status_code == 400, (url, r.status_code)
    assert "nested deeper" in r.content.decode()


def test_nesting_at_the_limit_is_read_and_one_more_level_is_refused(demo, member_client):
    client = member_client("grid1")
    ok = {"nothing_abnormal": True, "extra": [[[["deep enough"]]]]}
    assert client.post("/api/v1/daily-reports/", ok, format="json").status_code == 201
    body = '{"items": ' + "[" * 64 + "]" * 64 + "}"
    r = client.post("/api/v1/daily-reports/", body, content_type="application/json")
    assert r.status_code == 400 and "items" + "[0]" * 63 in r.json(), r.content


def test_deeply_nested_json_on_open311_is_a_400(demo, member_client):
    r = member_client("grid1").post(
        "/open311/v2/requests.json", DEEP, content_type="application/json"
    )
    assert r.status_code == 400, r.content[:300]


def _open311_body(grid: Grid, **extra: str) -> dict:
    b = Household.objects.filter(unit__building__grid=grid).first().unit.building
    body = {
        "service_code": "neighbour.noise",
        "lat": str(b.point.y),
        "long": str(b.point.x),
        "description": "楼上深夜装修噪音",
    }
    body.update(extra)
    return body


@pytest.mark.parametrize("fmt", ["json", "multipart"])
def test_nul_in_an_open311_report_is_a_400_naming_the_field(demo, member_client, fmt):
    before = Case.objects.count()
    body = _open311_body(demo.grids[0], description="噪音\u0000很大")
    r = member_client("grid1").post("/open311/v2/requests.json", body, format=fmt)
    assert r.status_code == 400, r.content[:300]
    assert "description" in r.content.decode()
    assert Case.objects.count() == before


def test_nul_in_a_form_encoded_open311_report_is_a_400(demo, member_client):
    from urllib.parse import urlencode

    before = Case.objects.count()
    body = urlencode(_open311_body(demo.grids[0], description="噪音\u0000很大"))
    r = member_client("grid1").post(
        "/open311/v2/requests.json", body, content_type="application/x-www-form-urlencoded"
    )
    assert r.status_code == 400, r.content[:300]
    assert "description" in r.content.decode()
    assert Case.objects.count() == before


def test_nul_in_visit_notes_is_a_400_and_nothing_is_stored(demo, member_client):
    import uuid

    hh = Household.objects.filter(unit__building__grid=demo.grids[0]).order_by("id").first()
    p = hh.unit.building.point
    visit = {
        "client_uuid": str(uuid.uuid4()),
        "household": hh.id,
        "client_time": "2026-11-20T10:30:00+08:00",
        "lon": p.x,
        "lat": p.y,
        "accuracy_m": 8,
        "purpose": "年度入户走访",
        "notes": "家中\u0000一切正常",
    }
    client = member_client("grid1")
    before = Visit.objects.count()
    r = client.post("/api/v1/visits/", visit, format="json")
    assert r.status_code == 400 and "notes" in r.json(), r.content[:300]
    r = client.post("/api/v1/visits/batch/", {"visits": [visit]}, format="json")
    assert r.status_code == 400 and "visits[0].notes" in r.json(), r.content[:300]
    r = client.post("/api/v1/visits/", visit, format="multipart")
    assert r.status_code == 400 and "notes" in r.json(), r.content[:300]
    assert Visit.objects.count() == before


def test_nul_in_daily_report_items_is_a_400_naming_the_item(demo, member_client):
    before = DailyReport.objects.count()
    r = member_client("grid1").post(
        "/api/v1/daily-reports/",
        {"items": [{"category": "safety_hazard", "description": "楼道\u0000堆物"}]},
        format="json",
    )
    assert r.status_code == 400, r.content[:300]
    assert "items[0].description" in r.json()
    assert DailyReport.objects.count() == before


def test_nul_in_a_case_action_note_is_a_400_and_no_event(demo, member_client):
    case = report(reporter="grid1").case
    events = CaseEvent.objects.filter(case=case).count()
    client = member_client("grid1")
    for name, body in (
        ("comment", {"note": "看过\u0000了"}),
        ("reject", {"reason": "不\u0000受理"}),
    ):
        r = client.post(f"/api/v1/cases/{case.pk}/actions/{name}/", body, format="json")
        assert r.status_code == 400, (name, r.content[:300])
        assert next(iter(body)) in r.json()
    assert CaseEvent.objects.filter(case=case).count() == events
    # and a NUL in a key is refused too, as is one in a new case's title
    r = client.post(f"/api/v1/cases/{case.pk}/actions/comment/", {"no\u0000te": "x"}, format="json")
    assert r.status_code == 400
    before = Case.objects.count()
    r = client.post(
        "/api/v1/cases/",
        {"category": "neighbour.noise", "title": "噪\u0000音", "household": case.household_id},
        format="json",
    )
    assert r.status_code == 400 and "title" in r.json()
    assert Case.objects.count() == before


def test_json_inside_a_multipart_visit_has_the_same_limits(demo, member_client):
    """Multipart visits carry lists as JSON strings: a NUL escaped inside them, or nesting
    past the recursion limit, is a 400 naming the field, not a 500."""
    import uuid

    hh = Household.objects.filter(unit__building__grid=demo.grids[0]).order_by("id").first()
    p = hh.unit.building.point
    base = {
        "household": hh.id,
        "client_time": "2026-11-20T10:30:00+08:00",
        "lon": p.x,
        "lat": p.y,
        "accuracy_m": 8,
        "purpose": "年度入户走访",
    }
    client = member_client("grid1")
    before = Visit.objects.count()
    for name, raw in (
        ("findings", '[{"category": "safety_hazard", "description": "a\\u0000b"}]'),
        ("participant_members", "[" * 100_000),
    ):
        body = {**base, "client_uuid": str(uuid.uuid4()), name: raw}
        r = client.post("/api/v1/visits/", body, format="multipart")
        assert r.status_code == 400, (name, r.status_code, r.content[:200])
        assert name in r.json()
    assert Visit.objects.count() == before


@pytest.mark.parametrize(
    "url, field",
    [
        ("/api/v1/reports/ledgers/a%00/", "path"),
        ("/api/v1/reports/monthly/?community=%00&month=2026-10", "community"),
        ("/api/v1/residents/?name=a%00b", "name"),
    ],
)
def test_nul_in_the_path_or_query_string_is_a_400(demo, member_client, url, field):
    r = member_client("street").get(url)
    assert r.status_code == 400 and field in r.json(), (url, r.status_code)


@pytest.mark.parametrize("role", ["uh-001-1", None])
def test_no_get_endpoint_answers_5xx_for_the_smallest_scopes(demo, role):
    """Every GET of the site (from the URL walk of the scoping matrix) for a unit head and for
    a member without any position: 2xx/4xx, never a 5xx (the compounds tile was one)."""
    from .test_scoping_matrix import endpoints

    who = (
        Member.objects.get(username=role)
        if role
        else Member.objects.create_user(username="nobody-get", password="x-x-x-x-x-x")
    )
    client = APIClient()
    client.force_authenticate(who)
    grid = Grid.objects.order_by("code").first()
    queries = {
        "monthly": "?month=2026-10",
        "annual": "?year=2026",
        "coverage": "?from=2026-01-01&to=2026-02-01",
    }
    checked = 0
    for ep in endpoints().values():
        if ep.method != "GET":
            continue
        path = (
            ep.path.replace("<grid_id>", str(grid.pk))
            .replace("<grid>", grid.code)
            .replace("<layer>", "compounds")
            .replace("<collection_id>", "compounds")
        )
        if "<" in path:
            continue
        query = next((q for k, q in queries.items() if k in path), "")
        r = client.get(path + query)
        assert r.status_code < 500, (role, path, r.status_code)
        checked += 1
    assert checked > 40
