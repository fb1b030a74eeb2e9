"""The quiet paths' shortcuts (issue 19) answer what the long way answers: a quiet poll gives
back its own cursor only when that is the cursor the encoder writes (another spelling of the
same signed bytes gets the encoder's), and a tile served raw — its bytes kept by ETag — is
the gzip answer unzipped, and the new bytes once the data under it changed."""

from __future__ import annotations

import gzip

import mapbox_vector_tile
import pytest

from geo.hexbin import lonlat_to_tile
from gridsvc.territory.models import Building

pytestmark = pytest.mark.django_db


def _quiet_cursor(client) -> str:  # type: ignore[no-untyped-def]
    body = client.get("/api/v1/sync/changes/").json()
    while body["has_more"]:
        body = client.get("/api/v1/sync/changes/", {"since": body["cursor"]}).json()
    return body["cursor"]


def test_a_quiet_poll_gives_back_the_encoders_cursor(demo, member_client):
    client = member_client("grid1")
    cursor = _quiet_cursor(client)
    r = client.get("/api/v1/sync/changes/", {"since": cursor})
    assert r.status_code == 200 and r["Content-Type"] == "application/json"
    body = r.json()
    assert body["cursor"] == cursor and not body["has_more"] and body["tasks"] == []
    # the same signed bytes spelt otherwise in base64 (characters base64 skips): accepted,
    # and answered with the encoder's spelling, not echoed
    head, _, sig = cursor.partition(".")
    respelt = f"{head[:5]}!!!!{head[5:]}.{sig}"
    r = client.get("/api/v1/sync/changes/", {"since": respelt})
    assert r.status_code == 200 and r.json()["cursor"] == cursor
    # an indent asked for: DRF's renderer, the same content
    r = client.get(
        "/api/v1/sync/changes/", {"since": cursor}, HTTP_ACCEPT="application/json; indent=2"
    )
    assert r.content.startswith(b"{\n") and r.json() == body


def test_a_tile_served_raw_is_the_gzip_answer_unzipped_and_follows_changes(demo, member_client):
    client = member_client("grid1")
    b = Building.objects.filter(grid=demo.grids[0]).order_by("code").first()
    path = "/tiles/buildings/{}/{}/{}.mvt".format(17, *lonlat_to_tile(b.point.x, b.point.y, 17))
    zipped = client.get(path, HTTP_ACCEPT_ENCODING="gzip")
    assert zipped["Content-Encoding"] == "gzip"
    for _ in range(2):  # the second from the kept bytes
        raw = client.get(path)
        assert raw.status_code == 200 and raw.get("Content-Encoding") is None
        assert raw.content == gzip.decompress(zipped.content)
        assert raw["ETag"] == zipped["ETag"]
        assert raw["Vary"] == zipped["Vary"]
        assert raw["Vary"].startswith("Accept-Encoding, Authorization, Cookie")
    Building.objects.filter(pk=b.pk).update(floors=b.floors + 3)
    client.get(path)  # built again
    again = client.get(path)
    assert again["X-Tile-Cache"] == "hit" and again["ETag"] != zipped["ETag"]
    floors = {
        f["id"]: f["properties"]["floors"]
        for f in mapbox_vector_tile.decode(again.content)["buildings"]["features"]
    }
    assert floors[b.pk] == b.floors + 3
