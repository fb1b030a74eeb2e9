"""A revalidated tile (If-None-Match) is answered 304 from the cache row's ETag without its
bytes being read (issue 19: a 304 cost as much as a 200), and an ETag the client does not
hold still gets the whole tile."""

from __future__ import annotations

import gzip

import pytest

from gridsvc.accounts.models import Member
from gridsvc.chain.scope import scope_for
from gridsvc.layers import services as S
from gridsvc.layers.services import LayerQuery

from .test_layers_tiles import fetch, tile_of

pytestmark = pytest.mark.django_db


def test_a_known_etag_is_304_without_the_tile_bytes(demo, member_client) -> None:
    client = member_client("grid1")
    z, x, y = tile_of(demo.grids[0], 16)
    r1, d1 = fetch(client, "buildings", z, x, y)
    assert d1, "the grid's buildings are in the tile"
    etag = r1["ETag"]
    # among others, weak or not: 304, nothing sent
    for header in (etag, f'"nope", W/{etag}', f'W/"x", {etag} , "y"'):
        r = client.get(f"/tiles/buildings/{z}/{x}/{y}.mvt", HTTP_IF_NONE_MATCH=header)
        assert r.status_code == 304 and r.content == b"", header
        assert r["ETag"] == etag and r["X-Tile-Cache"] == "hit"
    # an ETag the client does not hold: the whole tile
    r2, d2 = fetch(client, "buildings", z, x, y, HTTP_IF_NONE_MATCH='"stale"')
    assert r2["ETag"] == etag and d2 == d1

    # the cache lookup reads the bytes only for a client that lacks them
    scope = scope_for(Member.objects.get(username="grid1"))
    held = S.get_tile("buildings", z, x, y, scope, LayerQuery(), known=[etag.strip('"')])
    assert held.cached and held.etag == etag.strip('"') and held.gz == b""
    full = S.get_tile("buildings", z, x, y, scope, LayerQuery(), known=["stale"])
    assert full.cached and full.gz and gzip.decompress(full.gz)
