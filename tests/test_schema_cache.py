"""The OpenAPI schema is built once per process and language (api.schema.CachedSchemaView):
safe only because it is the same for every caller — checked here — and revalidated by ETag."""

from __future__ import annotations

from rest_framework.test import APIClient

JSON = "application/vnd.oai.openapi+json"


def test_the_schema_is_the_same_for_every_caller_and_a_second_ask_is_a_304(db, member_client):
    anonymous = APIClient().get("/api/schema/", HTTP_ACCEPT=JSON)
    assert anonymous.status_code == 200
    assert "/api/v1/cases/" in anonymous.json()["paths"]
    for who in ("grid1", "street", "cadre1", "bh-001"):
        r = member_client(who).get("/api/schema/", HTTP_ACCEPT=JSON)
        assert r.status_code == 200
        assert r.content == anonymous.content, who
        assert r["ETag"] == anonymous["ETag"]
    again = member_client("grid1").get(
        "/api/schema/", HTTP_ACCEPT=JSON, HTTP_IF_NONE_MATCH=anonymous["ETag"]
    )
    assert again.status_code == 304 and again.content == b""
    # as a browser sends back the ETag the gzip middleware weakened (W/"…")
    weak = APIClient().get(
        "/api/schema/", HTTP_ACCEPT=JSON, HTTP_IF_NONE_MATCH=f"W/{anonymous['ETag']}"
    )
    assert weak.status_code == 304 and weak.content == b""
    # another format or language is another answer, with its own ETag
    yaml = APIClient().get("/api/schema/")
    assert yaml.status_code == 200 and yaml.content.startswith(b"openapi:")
    english = APIClient().get("/api/schema/?lang=en", HTTP_ACCEPT=JSON)
    assert english.status_code == 200 and english["ETag"] != anonymous["ETag"]
    stale = APIClient().get("/api/schema/", HTTP_ACCEPT=JSON, HTTP_IF_NONE_MATCH='"old"')
    assert stale.status_code == 200 and stale.content == anonymous.content
