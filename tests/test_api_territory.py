"""Territory and chain API: authentication, scoping, masking, errors, schema."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from gridsvc.territory.models import Building, Household, Resident

pytestmark = pytest.mark.django_db


def test_anonymous_gets_401():
    assert APIClient().get("/api/v1/grids/").status_code == 401


def test_jwt_login_and_me(demo):
    client = APIClient()
    r = client.post(
        "/api/v1/auth/token/", {"username": "grid1", "password": "gridsvc-demo"}, format="json"
    )
    assert r.status_code == 200, r.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {r.json()['access']}")
    me = client.get("/api/v1/me/").json()
    assert me["username"] == "grid1"
    assert [p["position_type"] for p in me["positions"]] == ["grid_member"]
    grid1_households = Household.objects.filter(unit__building__grid=demo.grids[0]).count()
    assert me["territory"]["households"] == grid1_households > 0


def test_grid_member_sees_only_their_grid(demo, member_client):
    client = member_client("grid1")
    grids = client.get("/api/v1/grids/").json()
    assert [f["properties"]["code"] for f in grids["features"]] == [demo.grids[0].code]
    buildings = client.get("/api/v1/buildings/?page_size=500").json()["features"]
    assert buildings and all(f["properties"]["grid"] == demo.grids[0].pk for f in buildings)
    other = Building.objects.filter(grid=demo.grids[1]).first()
    assert client.get(f"/api/v1/buildings/{other.pk}/").status_code == 404
    other_hh = Household.objects.filter(unit__building=other).first()
    assert client.get(f"/api/v1/households/{other_hh.pk}/").status_code == 404
    assert client.get(f"/api/v1/chain/?household={other_hh.pk}").status_code == 404


def test_unit_head_sees_only_their_unit(demo, member_client):
    client = member_client("uh-001-1")
    hh = client.get("/api/v1/households/?page_size=500").json()["results"]
    units = {h["unit"] for h in hh}
    assert len(units) == 1
    b1 = Building.objects.get(code__endswith="B001")
    assert units == {b1.units.get(number="1").pk}


def test_street_sees_the_whole_street(demo, member_client):
    r = member_client("street").get("/api/v1/households/?page_size=1").json()
    assert r["count"] == 1517


def test_member_without_positions_sees_nothing(db):
    from gridsvc.accounts.models import Member

    client = APIClient()
    client.force_authenticate(Member.objects.create(username="nobody"))
    assert client.get("/api/v1/households/").json()["count"] == 0
    assert client.get("/api/v1/grids/").json()["features"] == []


def test_residents_are_masked_by_default(demo, member_client):
    r = member_client("street").get("/api/v1/residents/?tag=community_correction").json()
    assert r["count"] == 6
    row = r["results"][0]
    stored = Resident.objects.get(pk=row["id"])
    assert row["id_number"] == stored.id_number[:6] + "********" + stored.id_number[-4:]
    assert row["ethnicity"] == "**" and row["ethnicity_name"] is None
    assert "community_correction" not in row["tags"]
    assert set(row["masked"]) >= {"id_number", "phone", "ethnicity"}
    assert stored.phone not in str(row)
    assert row["phone"] == "*" * (len(stored.phone) - 4) + stored.phone[-4:]
    assert "birth_date" not in row and row["birth_year"] == stored.birth_date.year


@pytest.mark.parametrize("username", ["bh-001", "uh-001-1", "pm-C01", "oc-C03"])
def test_neighbours_cannot_filter_by_a_sensitive_tag(demo, member_client, username):
    client = member_client(username)
    for tag in ("community_correction", "help_education", "disabled", "low_income"):
        r = client.get(f"/api/v1/residents/?tag={tag}")
        assert r.status_code == 400 and "tag" in r.json(), (tag, r.content)
    assert client.get("/api/v1/residents/?tag=volunteer").status_code == 200
    row = client.get("/api/v1/residents/?page_size=1").json()["results"][0]
    assert "ethnicity" not in row and "ethnicity_name" not in row


def test_sensitive_fields_are_encrypted_at_rest(demo):
    from django.db import connection

    r = Resident.objects.first()
    with connection.cursor() as cur:
        cur.execute("SELECT id_number, phone FROM territory_resident WHERE id = %s", [r.pk])
        raw_id, raw_phone = cur.fetchone()
    assert r.id_number not in raw_id and r.phone not in raw_phone
    assert raw_id.startswith("gAAAA")  # Fernet token


def test_create_resident_with_bad_id_checksum_is_400_naming_the_field(demo, member_client):
    hh = Household.objects.filter(unit__building__grid=demo.grids[0]).first()
    before = Resident.objects.count()
    r = member_client("grid1").post(
        "/api/v1/residents/",
        {"household": hh.pk, "name": "测试", "id_number": "110105194912310021"},
        format="json",
    )
    assert r.status_code == 400
    assert "id_number" in r.json() and "checksum" in r.json()["id_number"][0]
    assert Resident.objects.count() == before


def test_create_resident_ok_and_searchable_by_id_hash(demo, member_client):
    from gridsvc.crypto import keyed_hash

    hh = Household.objects.filter(unit__building__grid=demo.grids[0]).first()
    r = member_client("grid1").post(
        "/api/v1/residents/",
        {
            "household": hh.pk,
            "name": "马明",
            "id_number": "11010519491231002x",
            "ethnicity": "回族",
            "residency": "floating",
            "origin_place": "甘肃省临夏州",
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    assert r.json()["id_number"] == "110105********002X"
    stored = Resident.objects.get(id_number_hash=keyed_hash("11010519491231002X"))
    assert stored.ethnicity == "03"


def test_create_resident_in_someone_elses_grid_is_refused(demo, member_client):
    hh = Household.objects.filter(unit__building__grid=demo.grids[1]).first()
    r = member_client("grid1").post(
        "/api/v1/residents/", {"household": hh.pk, "name": "x"}, format="json"
    )
    assert r.status_code == 400 and "household" in r.json()


@pytest.mark.parametrize(
    "query,field",
    [
        ("lon=abc&lat=36", "lon"),
        ("lon=103.77&lat=95", "lat"),
        ("household=xyz", "household"),
        ("", "detail"),
        ("at=yesterday&household=1", "at"),
    ],
)
def test_chain_bad_input_is_400_naming_the_field(demo, member_client, query, field):
    r = member_client("street").get(f"/api/v1/chain/?{query}")
    assert r.status_code == 400 and field in r.json()


def test_chain_by_point(demo, member_client):
    b = Building.objects.filter(grid=demo.grids[2]).first()
    r = member_client("street").get(f"/api/v1/chain/?lon={b.point.x}&lat={b.point.y}")
    assert r.status_code == 200
    body = r.json()
    assert body["location"]["building"]["id"] == b.pk
    assert body["location"]["method"] == "covering_building"
    assert body["steps"][5]["object_id"] == demo.grids[2].pk


def test_huge_page_is_400(demo, member_client):
    r = member_client("street").get("/api/v1/households/?page_size=100000")
    assert r.status_code == 400 and "page_size" in r.json()


def test_bbox_filter_on_buildings(demo, member_client):
    g = demo.grids[0].boundary.extent
    r = member_client("street").get(f"/api/v1/buildings/?bbox={g[0]},{g[1]},{g[2]},{g[3]}")
    ids = {f["id"] for f in r.json()["features"]}
    assert ids and ids <= set(
        Building.objects.filter(grid__isnull=False).values_list("id", flat=True)
    )


def test_openapi_schema_and_docs(demo, member_client):
    client = member_client("street")
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/chain/" in schema.json()["paths"]
    assert client.get("/api/docs/").status_code == 200


def test_positions_at_a_time(demo, member_client):
    b = Building.objects.get(code__endswith="B003")
    client = member_client("street")
    r = client.get(f"/api/v1/positions/?building={b.pk}&at=2026-03-01T00:00:00Z").json()
    assert [p["member_name"] for p in r["results"]] != []
    r2 = client.get(f"/api/v1/positions/?building={b.pk}&at=2026-08-01T00:00:00Z").json()
    assert r["results"][0]["member"] != r2["results"][0]["member"]


def test_malformed_json_is_400_and_writes_nothing(demo, member_client):
    before = Resident.objects.count()
    r = member_client("grid1").post(
        "/api/v1/residents/", data='{"name": "x", "household": ', content_type="application/json"
    )
    assert r.status_code == 400 and "detail" in r.json()
    assert Resident.objects.count() == before


def test_wrong_types_are_400_naming_the_field(demo, member_client):
    r = member_client("street").post(
        "/api/v1/residents/",
        {"household": "abc", "name": ["not", "a", "string"], "tags": ["no_such_tag"]},
        format="json",
    )
    assert r.status_code == 400
    assert {"household", "name", "tags"} <= set(r.json())
