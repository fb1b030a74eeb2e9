"""``/api/schema/paths/`` (api.schema.SchemaPathsView): which endpoints exist, without the
4–5 MB OpenAPI schema. The street office page asks only this at every load; it lists exactly
the keys of the full schema's ``paths`` (one build, one source), is public and the same for
every caller, and is revalidated by ETag."""

from __future__ import annotations

import json

from django.test import Client
from rest_framework.test import APIClient

from api.schema import _forget_schema

JSON = "application/vnd.oai.openapi+json"
PATHS = "/api/schema/paths/"


def test_the_paths_are_exactly_the_schemas_whichever_is_built_first(db):
    _forget_schema()  # a fresh process: the paths are asked before the schema was ever built
    first = APIClient().get(PATHS)
    assert first.status_code == 200
    assert first["Content-Type"] == "application/json"
    listed = first.json()["paths"]
    full = APIClient().get("/api/schema/", HTTP_ACCEPT=JSON)
    assert full.status_code == 200
    keys = list(json.loads(full.content)["paths"])
    assert listed == sorted(keys) and len(listed) == len(set(listed))
    for path in ("/api/v1/cases/", "/api/v1/cases/{id}/events/", "/api/v1/dispatch/queue/", PATHS):
        assert path in listed
    assert "/api/schema/" not in listed  # the schema itself is not in the schema
    # small: what the page downloads instead of the whole schema
    assert len(first.content) < 100_000 < len(full.content)
    assert len(first.content) * 50 < len(full.content)
    # built the other way round (the schema first, as Swagger UI does), the same answer
    _forget_schema()
    assert APIClient().get("/api/schema/?format=json").status_code == 200
    again = APIClient().get(PATHS)
    assert again.content == first.content and again["ETag"] == first["ETag"]


def test_the_same_for_every_caller_with_an_etag_and_a_304(db, member_client):
    anonymous = APIClient().get(PATHS)
    assert anonymous.status_code == 200
    etag = anonymous["ETag"]
    assert etag.startswith('"') and anonymous["Cache-Control"] == "private, no-cache"
    for who in ("grid1", "street", "cadre1", "bh-001"):
        r = member_client(who).get(PATHS)
        assert r.status_code == 200, who
        assert r.content == anonymous.content, who
        assert r["ETag"] == etag, who
    # the street office page: a signed-in session, the browser's Accept
    page = Client()
    assert (
        page.post("/login/", {"username": "street", "password": "gridsvc-demo"}).status_code == 302
    )
    r = page.get(PATHS, HTTP_ACCEPT="application/json")
    assert r.status_code == 200 and r.content == anonymous.content
    # any Accept gets the JSON (never a 406 that would leave the page blank)
    assert APIClient().get(PATHS, HTTP_ACCEPT="text/html").content == anonymous.content

    # revalidation: the ETag held → 304 without a body; also as the gzip middleware hands it
    # out (W/"…"), which is how a browser sends it back
    for held in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = page.get(PATHS, HTTP_IF_NONE_MATCH=held)
        assert again.status_code == 304 and again.content == b"", held
        assert again["ETag"] == etag
    stale = member_client("grid1").get(PATHS, HTTP_IF_NONE_MATCH='"old"')
    assert stale.status_code == 200 and stale.content == anonymous.content


def test_the_paths_answer_is_described_in_the_schema(db):
    schema = json.loads(APIClient().get("/api/schema/", HTTP_ACCEPT=JSON).content)
    op = schema["paths"][PATHS]["get"]
    assert set(op["responses"]) == {"200", "304"}
    body = op["responses"]["200"]["content"]["application/json"]["schema"]
    name = body["$ref"].rsplit("/", 1)[-1]
    assert schema["components"]["schemas"][name]["properties"]["paths"]["type"] == "array"
    assert {} in op["security"]  # public, like the schema
