"""The scoping matrix: every role against objects outside its territory on every endpoint.

For each viewset registered on the /api/v1/ router whose model has a territory rule, and for
each field role, the list must contain only objects of the role's territory, and detail,
update and delete of an object outside it must be 404/403 — never data.
"""

from __future__ import annotations

import pytest

from api.urls import router
from gridsvc.accounts.models import Member
from gridsvc.chain.scope import scope_for

pytestmark = pytest.mark.django_db

ROLES = ["grid1", "cadre2", "pm-C01", "oc-C03", "bh-001", "uh-001-1", "mediator"]
# Endpoints that are about the caller, not about territory.
SELF_ENDPOINTS = {"auth/devices", "privacy/grants", "audit"}


def _model_of(viewset):
    for attr in ("base_queryset", "queryset"):
        qs = getattr(viewset, attr, None)
        if qs is not None and qs.model is not None:
            return qs.model
    serializer = getattr(viewset, "serializer_class", None)
    return getattr(getattr(serializer, "Meta", None), "model", None)


def _scoped_endpoints():
    out = []
    for prefix, viewset, _basename in router.registry:
        if prefix in SELF_ENDPOINTS:
            continue
        model = _model_of(viewset)
        if model is None:
            continue
        try:
            scope_for(None).filter(model.objects.none())
        except TypeError:
            continue  # no territory rule for this model: covered by its own tests
        out.append((prefix, model))
    return out


ENDPOINTS = _scoped_endpoints()


def _ids(body) -> set[int]:
    rows = body.get("results", body.get("features", [])) if isinstance(body, dict) else body
    return {r["id"] for r in rows}


def test_matrix_covers_the_territory_endpoints():
    prefixes = {p for p, _ in ENDPOINTS}
    assert {"grids", "buildings", "households", "residents", "positions"} <= prefixes


@pytest.mark.parametrize("role", ROLES)
def test_role_sees_only_its_territory_on_every_endpoint(demo, member_client, role):
    member = Member.objects.get(username=role)
    scope = scope_for(member)
    client = member_client(role)
    checked = 0
    for prefix, model in ENDPOINTS:
        mine = set(scope.filter(model.objects.all()).values_list("id", flat=True))
        foreign = list(model.objects.exclude(id__in=mine).values_list("id", flat=True)[:3])
        r = client.get(f"/api/v1/{prefix}/?page_size=500")
        assert r.status_code == 200, (prefix, r.status_code)
        listed = _ids(r.json())
        assert listed <= mine, f"{role} sees foreign {prefix}: {sorted(listed - mine)[:5]}"
        for pk in foreign:
            for method in ("get", "patch", "delete"):
                resp = getattr(client, method)(f"/api/v1/{prefix}/{pk}/", {}, format="json")
                assert resp.status_code in (403, 404, 405), (role, prefix, method, pk)
                assert resp.status_code != 200
            checked += 1
    assert checked > 0
