"""What every request pays before its own work (issue 19, the fixed cost): the caller is
read once per request, a token's signature is checked once per process (its expiry and the
device on every request), and the chain's own statement rides in the caller's query — one
statement for the whole ``GET /chain/`` — with the same answers, refusals and 404s."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from gridsvc.accounts.models import Device, Member
from gridsvc.chain.models import Position
from gridsvc.chain.scope import scope_for
from gridsvc.territory.models import Building, Household

pytestmark = pytest.mark.django_db
PASSWORD = "gridsvc-demo"


def _login(username: str, device: str = "phone-1") -> tuple[APIClient, dict]:
    r = APIClient().post(
        "/api/v1/auth/token/",
        {"username": username, "password": PASSWORD, "device": device},
        format="json",
    )
    assert r.status_code == 200, r.content[:300]
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {r.json()['access']}")
    return c, r.json()


def _forced(username: str) -> APIClient:
    c = APIClient()
    c.force_authenticate(Member.objects.get(username=username))
    return c


def _caller_queries(sqls: list[str]) -> int:
    return sum("accounts_device" in s for s in sqls)


def _count(client: APIClient, path: str) -> tuple[int, list[str], object]:
    client.get(path)  # per-process caches are not the request's cost
    with CaptureQueriesContext(connection) as ctx:
        r = client.get(path)
    return len(ctx.captured_queries), [q["sql"] for q in ctx.captured_queries], r


def _without_when(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "when"}


def test_the_chain_for_a_point_is_one_statement_with_the_same_answer(demo):
    """The chain statement rides in the caller's query: one round trip. The answer is the
    one the unridden path gives (a session/forced caller runs the statement itself)."""
    client, _ = _login("grid1")
    grid1 = Member.objects.get(username="grid1")
    for b in scope_for(grid1).filter(Building.objects.all()).order_by("code")[:5]:
        for dx, dy in ((0, 0), (0.00015, 0.00003)):
            path = f"/api/v1/chain/?lon={b.point.x + dx}&lat={b.point.y + dy}"
            n, sqls, r = _count(client, path)
            assert r.status_code == 200 and n == 1, sqls
            assert _caller_queries(sqls) == 1
            assert r.json()["location"]["grid"] is not None
            assert _without_when(r.json()) == _without_when(_forced("grid1").get(path).json())


def test_the_chain_at_a_time_and_in_gcj02_rides_too(demo):
    client, _ = _login("grid1")
    b = scope_for(Member.objects.get(username="grid1")).filter(Building.objects.all()).first()
    from geo.crs import from_wgs84

    x, y = from_wgs84(b.point.x, b.point.y, "gcj02")
    at = (timezone.now() - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    path = f"/api/v1/chain/?lon={x}&lat={y}&crs=gcj02&at={at}"
    n, sqls, r = _count(client, path)
    assert r.status_code == 200 and n == 1, sqls
    assert r.json()["when"].startswith(at[:19])
    assert r.json() == _forced("grid1").get(path).json()


@pytest.mark.parametrize("name", ["household", "unit", "building"])
def test_the_chain_for_a_reference_is_one_statement_and_404_outside(demo, name):
    client, _ = _login("grid1")
    grid1 = Member.objects.get(username="grid1")
    mine = scope_for(grid1).filter(Household.objects.select_related("unit")).first()
    ids = {"household": mine.pk, "unit": mine.unit_id, "building": mine.unit.building_id}
    path = f"/api/v1/chain/?{name}={ids[name]}"
    n, sqls, r = _count(client, path)
    assert r.status_code == 200 and n == 1, sqls
    assert r.json()["location"][name]["id"] == ids[name]
    assert _without_when(r.json()) == _without_when(_forced("grid1").get(path).json())
    # another grid's object, and no such object: the same 404 as before, one statement
    other = (
        Household.objects.exclude(pk__in=scope_for(grid1).filter(Household.objects.all()))
        .select_related("unit")
        .first()
    )
    oids = {"household": other.pk, "unit": other.unit_id, "building": other.unit.building_id}
    for pk in (oids[name], 987654321):
        n, sqls, r = _count(client, f"/api/v1/chain/?{name}={pk}")
        assert r.status_code == 404 and n == 1, sqls
        assert r.json()["detail"] == f"{name} {pk} not found in your territory"


def test_a_point_outside_the_territory_is_404_with_the_rider(demo):
    client, _ = _login("grid1")
    far = Building.objects.exclude(
        pk__in=scope_for(Member.objects.get(username="grid1")).filter(Building.objects.all())
    ).first()
    n, sqls, r = _count(client, f"/api/v1/chain/?lon={far.point.x}&lat={far.point.y}")
    # (the territory's check of a grid outside it may read the grid's parent: not the chain)
    assert r.status_code == 404 and _caller_queries(sqls) == 1 and n <= 2, sqls
    assert r.json()["detail"] == "this point is outside your territory"


def test_a_revoked_device_gets_no_chain(demo):
    client, tokens = _login("grid1", device="lost-phone")
    b = scope_for(Member.objects.get(username="grid1")).filter(Building.objects.all()).first()
    path = f"/api/v1/chain/?lon={b.point.x}&lat={b.point.y}"
    assert client.get(path).status_code == 200
    Device.objects.filter(pk=tokens["device"]).update(revoked_at=timezone.now())
    r = client.get(path)
    assert r.status_code == 401 and r.json()["code"] == "device_revoked"
    assert "steps" not in r.json()


def test_an_inactive_member_gets_no_chain(demo):
    client, _ = _login("grid2")
    b = scope_for(Member.objects.get(username="grid2")).filter(Building.objects.all()).first()
    Member.objects.filter(username="grid2").update(is_active=False)
    r = client.get(f"/api/v1/chain/?lon={b.point.x}&lat={b.point.y}")
    assert r.status_code == 401 and "steps" not in r.json()


def test_a_malformed_chain_request_is_401_before_400(demo):
    for path in ("/api/v1/chain/?lon=x&lat=1", "/api/v1/chain/?household=a", "/api/v1/chain/"):
        assert APIClient().get(path).status_code == 401
    client, _ = _login("grid1")
    r = client.get("/api/v1/chain/?lon=200&lat=1")
    assert r.status_code == 400 and "lon" in json.dumps(r.json())
    r = client.get("/api/v1/chain/?household=a")
    assert r.status_code == 400 and "household" in json.dumps(r.json())
    r = client.get("/api/v1/chain/?lon=1&lat=1&crs=EPSG:9999")
    assert r.status_code == 400 and "crs" in json.dumps(r.json())


def test_a_report_with_an_idempotency_key_reads_the_caller_once(demo):
    """The Idempotency-Key middleware authenticates before DRF: the second authentication
    of the same request is the first one's, not a second query."""
    client, _ = _login("grid1")
    post = Position.objects.held_at().filter(member__username="grid1", grid__isnull=False).first()
    b = Building.objects.filter(grid_id=post.grid_id).exclude(point=None).order_by("id").first()
    body = {"category": "neighbour.noise", "title": "测试 噪音", "lon": b.point.x, "lat": b.point.y}
    with CaptureQueriesContext(connection) as ctx:
        r = client.post(
            "/api/v1/cases/",
            json.dumps(body),
            content_type="application/json",
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
    assert r.status_code == 201, r.content[:300]
    assert _caller_queries([q["sql"] for q in ctx.captured_queries]) == 1


def test_a_verified_token_still_expires(demo):
    """The signature of a token's bytes is checked once per process; its expiry is checked
    on every request, with the answer of a token never seen."""
    grid1 = Member.objects.get(username="grid1")
    token = AccessToken.for_user(grid1)
    token.set_exp(lifetime=timedelta(seconds=2))
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert c.get("/api/v1/me/").status_code == 200
    assert c.get("/api/v1/me/").status_code == 200  # from the cache
    time.sleep(2.1)
    expired = c.get("/api/v1/me/")
    assert expired.status_code == 401 and expired.json()["code"] == "token_not_valid"
    fresh = AccessToken.for_user(grid1)
    fresh.set_exp(from_time=timezone.now() - timedelta(minutes=1), lifetime=timedelta(seconds=1))
    never_seen = APIClient()
    never_seen.credentials(HTTP_AUTHORIZATION=f"Bearer {fresh}")
    assert never_seen.get("/api/v1/me/").json() == expired.json()


def test_a_tampered_token_is_refused_after_the_genuine_one_was_seen(demo):
    client, tokens = _login("grid1")
    assert client.get("/api/v1/me/").status_code == 200
    head, payload, sig = tokens["access"].split(".")
    forged = AccessToken(tokens["access"])
    forged["user_id"] = str(Member.objects.get(username="street").pk)
    import base64

    body = base64.urlsafe_b64encode(json.dumps(forged.payload).encode()).rstrip(b"=").decode()
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {head}.{body}.{sig}")
    r = c.get("/api/v1/me/")
    assert r.status_code == 401 and r.json()["code"] == "token_not_valid"


# ------------------------------------------------------------------------------ tiles
def _tile(client: APIClient, path: str, **headers: str):  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        r = client.get(path, **headers)
    return r, [q["sql"] for q in ctx.captured_queries]


def test_a_cached_tile_and_a_304_are_the_caller_and_one_prepared_lookup(demo):
    """A phone's tile (JWT, no query string): its first, the caller's query, then the cache
    lookup as a prepared statement; the next, the cache row rides in the caller's query (one
    statement, tests/test_probe_function.py); no filter serializer. Bytes and headers as a
    forced caller gets."""
    from .test_layers_tiles import tile_of

    client, _ = _login("grid1")
    z, x, y = tile_of(demo.grids[0], 16)
    path = f"/tiles/buildings/{z}/{x}/{y}.mvt"
    first = client.get(path, HTTP_ACCEPT_ENCODING="gzip")
    assert first.status_code == 200
    r, sqls = _tile(client, path, HTTP_ACCEPT_ENCODING="gzip")
    assert r.status_code == 200 and r["X-Tile-Cache"] == "hit" and len(sqls) == 1, sqls
    assert _caller_queries(sqls) == 1 and "layers_tilecache" in sqls[0]
    plain = _forced("grid1").get(path, HTTP_ACCEPT_ENCODING="gzip")
    assert r.content == plain.content and r.content
    for h in ("ETag", "Last-Modified", "Cache-Control", "Vary", "X-Tile-Features"):
        assert r[h] == plain[h], h
    # a revalidation: the cached variants among the ETags held ride in the caller's query
    r304, sqls = _tile(client, path, HTTP_IF_NONE_MATCH=f'"stale", {r["ETag"]}')
    assert r304.status_code == 304 and r304.content == b"" and len(sqls) == 1, sqls
    plain304 = _forced("grid1").get(path, HTTP_IF_NONE_MATCH=f'"stale", {r["ETag"]}')
    assert plain304.status_code == 304
    for h in ("ETag", "Last-Modified", "Cache-Control", "Vary", "X-Tile-Features", "X-Tile-Cache"):
        assert r304[h] == plain304[h], h
    # an ETag not held: the tile, as before
    stale, sqls = _tile(client, path, HTTP_IF_NONE_MATCH='"stale"', HTTP_ACCEPT_ENCODING="gzip")
    assert stale.status_code == 200 and stale.content == r.content and len(sqls) == 1, sqls


def test_another_scope_never_gets_a_tile_cached_for_the_first(demo):
    """grid2's member asking the tile grid1's member had cached gets their own."""
    from .test_layers_tiles import fetch, tile_of

    z, x, y = tile_of(demo.grids[0], 16)
    c1, _ = _login("grid1")
    c2, _ = _login("grid2")
    fetch(c1, "households", z, x, y)
    r2, d2 = fetch(c2, "households", z, x, y)
    _, want = fetch(_forced("grid2"), "households", z, x, y)
    assert d2 == want
    r1, d1 = fetch(c1, "households", z, x, y)
    assert r1["X-Tile-Cache"] == "hit"
    assert d1 != d2 and r1["ETag"] != r2["ETag"], "the two members see different households"
    # grid2 revalidating with grid1's ETag is not told "not modified": their own tile comes
    r, d = fetch(c2, "households", z, x, y, HTTP_IF_NONE_MATCH=r1["ETag"])
    assert r["ETag"] == r2["ETag"] and d == d2


def test_an_empty_query_string_parses_to_the_empty_layer_query(demo):
    """The tile view skips the filter serializer for a tile without a query string: what
    it would have parsed is the empty query, for every tile layer."""
    from django.http import QueryDict

    from api import layer_params as P
    from gridsvc.layers import services as S

    for layer in S.TILE_LAYERS:
        name = layer if layer != "heatmap" else None
        parsed = P.layer_query(name, QueryDict(""))
        assert parsed == S.layer_query(S.LAYERS[name] if name else None, {}), layer


# ------------------------------------------------------------------------ report + route
def _report_as(client: APIClient, lon: float, lat: float, title: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/cases/",
        json.dumps({"category": "neighbour.noise", "title": title, "lon": lon, "lat": lat}),
        content_type="application/json",
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )


def test_a_report_stores_its_events_in_one_insert_in_order(demo):
    from gridsvc.cases.models import CaseEvent

    client, _ = _login("grid1")
    post = Position.objects.held_at().filter(member__username="grid1", grid__isnull=False).first()
    b = Building.objects.filter(grid_id=post.grid_id).exclude(point=None).order_by("id").first()
    with CaptureQueriesContext(connection) as ctx:
        r = _report_as(client, b.point.x, b.point.y, "测试 事件")
    assert r.status_code == 201, r.content[:300]
    inserts = [
        q["sql"] for q in ctx.captured_queries if 'INSERT INTO "cases_caseevent"' in q["sql"]
    ]
    assert len(inserts) == 1
    events = list(CaseEvent.objects.filter(case_id=r.json()["case"]["id"]).order_by("id"))
    assert [(e.kind, e.from_status, e.to_status) for e in events] == [
        ("report", "", r.json()["case"]["status"]),
        ("route", "reported", r.json()["case"]["status"]),
    ]
    assert events[0].actor.username == "grid1" and events[1].actor is None
    assert events[0].note == "测试 事件" and events[0].location is not None


def test_duplicates_are_the_ten_nearest_then_those_the_reporter_may_see(demo):
    """The ten most recent nearby come first, then those outside the reporter's view are
    left out (a neighbour grid's case is never named, and does not let an eleventh in).
    Folding the visibility into the duplicates' statement was tried and dropped: PostgreSQL
    then walked every case the reporter may see (a seq scan of cases_case)."""
    from gridsvc.cases.models import Case

    client, _ = _login("grid1")
    post = Position.objects.held_at().filter(member__username="grid1", grid__isnull=False).first()
    b = Building.objects.filter(grid_id=post.grid_id).exclude(point=None).order_by("id").first()
    made = [
        _report_as(client, b.point.x, b.point.y, f"测试 重复 {i}").json()["case"]["id"]
        for i in range(12)
    ]
    # the most recent one moves out of grid1's view (another grid, another handler/reporter)
    other = Position.objects.held_at().filter(member__username="grid2", grid__isnull=False).first()
    grid2 = Member.objects.get(username="grid2")
    Case.objects.filter(pk=made[-1]).update(
        grid_id=other.grid_id,
        compound=None,
        building=None,
        unit=None,
        household=None,
        handler=grid2,
        reported_by=grid2,
    )
    r = _report_as(client, b.point.x, b.point.y, "测试 重复 last")
    assert r.status_code == 201
    dups = [d["id"] for d in r.json()["duplicates"]]
    assert made[-1] not in dups
    # the ten most recent are made[2:12]; made[11] is out of view
    assert dups == list(reversed(made[2:11]))
