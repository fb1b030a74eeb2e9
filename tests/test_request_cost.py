"""The fixed cost of an API request (issue 19): what every request pays is one query for the
caller (user, device revoked?, held positions → territory scope), and the chain for a point
or a household is one more statement — and the answers stay the ones the domain rules give
(:func:`gridsvc.territory.services.locate` + :func:`gridsvc.chain.services.walk`, which case
routing still uses)."""

from __future__ import annotations

import pytest
from django.contrib.gis.geos import Point
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from gridsvc.accounts.models import Member
from gridsvc.chain.scope import scope_for
from gridsvc.chain.services import walk
from gridsvc.territory.models import Building, Household
from gridsvc.territory.services import locate

PASSWORD = "gridsvc-demo"


def jwt_client(username: str) -> APIClient:
    r = APIClient().post(
        "/api/v1/auth/token/",
        {"username": username, "password": PASSWORD, "device": "phone-1"},
        format="json",
    )
    assert r.status_code == 200, r.content[:300]
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {r.json()['access']}")
    return c


def _queries(client: APIClient, path: str) -> tuple[int, list[str], dict]:
    client.get(path)  # per-process caches are not the request's cost
    with CaptureQueriesContext(connection) as ctx:
        r = client.get(path)
    assert r.status_code == 200, r.content[:300]
    return len(ctx.captured_queries), [q["sql"] for q in ctx.captured_queries], r.json()


def test_the_chain_for_a_point_is_two_queries_the_caller_and_the_chain(demo):
    """Was 8+: user, scope, building with four boundary geometries, holders, …; now the
    chain statement rides in the caller's query (tests/test_request_cost_fixed.py)"""
    client = jwt_client("grid1")
    grid1 = Member.objects.get(username="grid1")
    b = scope_for(grid1).filter(Building.objects.all()).order_by("code").first()
    n, sqls, body = _queries(client, f"/api/v1/chain/?lon={b.point.x}&lat={b.point.y}")
    assert n == 1, sqls
    assert body["location"]["building"] == {"id": b.pk, "name": b.name}
    # no geometry column comes back to Python
    assert not any('boundary"' in s.split(" FROM ")[0] for s in sqls), sqls


def test_the_chain_for_a_household_is_two_queries(demo):
    client = jwt_client("grid1")
    hh = scope_for(Member.objects.get(username="grid1")).filter(Household.objects.all()).first()
    n, sqls, body = _queries(client, f"/api/v1/chain/?household={hh.pk}")
    assert n == 1, sqls
    assert body["location"]["household"]["id"] == hh.pk
    assert body["steps"][0]["level_name"] == "household_head"


def test_a_jwt_request_reads_the_caller_and_their_scope_in_one_query(demo):
    """``/me/`` counts the caller's households: the caller (with their scope) is one query,
    the count another; nothing else (no separate scope or device query)."""
    client = jwt_client("grid1")
    n, sqls, body = _queries(client, "/api/v1/me/")
    # caller + scope, positions listed, own team memberships listed, households counted
    assert n <= 4, sqls
    assert body["territory"]["households"] > 0


@pytest.mark.parametrize("username", ["street", "cadre1", "grid1", "bh-001", "uh-001-1", "pm-C01"])
def test_the_scope_read_with_the_caller_is_the_scope_of_their_positions(demo, username):
    from gridsvc.accounts.authentication import load_user_with_scope

    member = Member.objects.get(username=username)
    loaded, revoked = load_user_with_scope(Member, member.pk, None)
    assert not revoked and loaded.pk == member.pk and loaded.username == username
    assert scope_for(loaded) == scope_for(member)  # the second one reads Position rows


def test_a_revoked_device_is_refused_by_the_one_query(demo):
    r = APIClient().post(
        "/api/v1/auth/token/",
        {"username": "grid1", "password": PASSWORD, "device": "lost-phone"},
        format="json",
    )
    token, device = r.json()["access"], r.json()["device"]
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert c.get("/api/v1/me/").status_code == 200
    from gridsvc.accounts.models import Device

    Device.objects.filter(pk=device).update(revoked_at=timezone.now())
    refused = c.get("/api/v1/me/")
    assert refused.status_code == 401 and refused.json()["code"] == "device_revoked"


def _walked(**ref) -> dict:
    when = timezone.now()
    d = walk(locate(**ref), when).as_dict()
    d.pop("when")
    return d


def test_the_chain_answers_are_the_domain_rules_answers(demo):
    """Every household, unit and building of the street, and points on, beside and far
    from buildings: the API's one-statement answer equals locate() + walk()."""
    client = jwt_client("street")
    checked = 0
    for hh in Household.objects.select_related("unit__building").order_by("id")[:60]:
        for name, obj in (("household", hh), ("unit", hh.unit), ("building", hh.unit.building)):
            body = client.get(f"/api/v1/chain/?{name}={obj.pk}").json()
            body.pop("when")
            assert body == _walked(**{name: obj}), (name, obj.pk)
            checked += 1
    for b in Building.objects.order_by("code")[:40]:
        for dx, dy in ((0, 0), (0.00015, 0.00003), (0.002, 0.002)):
            x, y = b.point.x + dx, b.point.y + dy
            body = client.get(f"/api/v1/chain/?lon={x}&lat={y}").json()
            if "steps" not in body:  # outside the street's grids: not found for its staff
                continue
            body.pop("when")
            assert body == _walked(point=Point(x, y, srid=4326)), (x, y)
            checked += 1
    assert checked > 150


def test_a_point_outside_every_grid_names_the_nearest_for_a_superuser(demo):
    admin = Member.objects.filter(is_superuser=True).first()
    c = APIClient()
    c.force_authenticate(admin)
    body = c.get("/api/v1/chain/?lon=100.0&lat=30.0").json()
    assert body["location"]["method"] == "outside" and body["location"]["nearest_grid"]
    body.pop("when")
    assert body == _walked(point=Point(100.0, 30.0, srid=4326))
