"""Open311 GeoReport v2: an existing Open311 client reports into gridsvc and reads back only
what lies in its member's territory; errors come in the spec's format naming the field."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from gridsvc.cases.models import Case
from gridsvc.territory.models import Building

pytestmark = pytest.mark.django_db
BASE = "/open311/v2"


def building_in(grid) -> Building:  # type: ignore[no-untyped-def]
    return Building.objects.filter(grid=grid).order_by("code").first()


def test_discovery_and_the_service_catalogue_are_public(demo):
    anon = APIClient()
    discovery = anon.get(f"{BASE}/discovery.json")
    assert discovery.status_code == 200
    assert any(e["specification"].endswith("GeoReport_v2") for e in discovery.json()["endpoints"])
    services = anon.get(f"{BASE}/services.json").json()
    codes = {s["service_code"] for s in services}
    assert {"neighbour.noise", "neighbour.leak", "hazard.fire", "hazard.gas"} <= codes
    noise = next(s for s in services if s["service_code"] == "neighbour.noise")
    assert noise["metadata"] is True and noise["type"] in ("realtime", "batch", "blackbox")
    definition = anon.get(f"{BASE}/services/neighbour.noise.json").json()
    assert definition["service_code"] == "neighbour.noise"
    attribute_codes = {a["code"] for a in definition["attributes"]}
    assert {"priority", "ethnic_religious", "group_incident", "petition_risk"} <= attribute_codes
    missing = anon.get(f"{BASE}/services/no.such.json")
    assert missing.status_code == 404
    assert missing.json()[0]["code"] == 404 and "service_code" in missing.json()[0]["description"]


def test_a_form_encoded_report_is_routed_and_read_back_without_personal_data(demo, member_client):
    grid1 = member_client("grid1")
    b = building_in(demo.grids[0])
    r = grid1.post(
        f"{BASE}/requests.json",
        {
            "service_code": "neighbour.noise",
            "lat": str(b.point.y),
            "long": str(b.point.x),
            "description": "楼上深夜装修噪音",
            "first_name": "张",
            "last_name": "三",
            "phone": "13800001111",
            "email": "zhangsan@example.com",
        },
        format="multipart",
    )
    assert r.status_code == 201, r.content
    number = r.json()[0]["service_request_id"]
    case = Case.objects.get(number=number)
    assert case.source == "open311" and case.building_id == b.pk
    assert case.handler_id is not None, "routed along the chain like any report"
    assert any("13800001111" in str(p) for p in case.parties)

    one = grid1.get(f"{BASE}/requests/{number}.json")
    assert one.status_code == 200
    body = one.json()[0]
    assert body["service_code"] == "neighbour.noise" and body["status"] == "open"
    assert body["address_id"] == b.code
    assert "13800001111" not in one.content.decode() and "zhangsan" not in one.content.decode()

    listed = grid1.get(f"{BASE}/requests.json?status=open&service_code=neighbour.noise").json()
    assert number in {x["service_request_id"] for x in listed}


def test_requests_are_limited_to_the_callers_territory(demo, member_client):
    b2 = building_in(demo.grids[1])
    r = member_client("grid2").post(
        f"{BASE}/requests.json",
        {"service_code": "hazard.fire", "address_id": b2.code, "description": "消防通道堵塞"},
        format="json",
    )
    assert r.status_code == 201, r.content
    number = r.json()[0]["service_request_id"]
    grid1 = member_client("grid1")
    assert grid1.get(f"{BASE}/requests/{number}.json").status_code == 404
    assert number not in {
        x["service_request_id"] for x in grid1.get(f"{BASE}/requests.json").json()
    }
    assert number in {
        x["service_request_id"] for x in member_client("street").get(f"{BASE}/requests.json").json()
    }
    # grid1 cannot report against a building code of grid 2
    other = grid1.post(
        f"{BASE}/requests.json",
        {"service_code": "hazard.fire", "address_id": b2.code},
        format="json",
    )
    assert other.status_code == 400 and other.json()[0]["description"].startswith("address_id")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"service_code": "neighbour.noise", "lat": "91", "long": "103.8"}, "lat"),
        ({"service_code": "neighbour.noise", "lat": "36.06", "long": "abc"}, "long"),
        ({"service_code": "neighbour.noise", "lat": "36.06"}, "long"),
        ({"lat": "36.06", "long": "103.78"}, "service_code"),
        (
            {
                "service_code": "neighbour.noise",
                "lat": "36.06",
                "long": "103.78",
                "media_url": "ftp://x",
            },
            "media_url",
        ),
    ],
)
def test_bad_reports_are_refused_in_the_specs_format_and_store_nothing(
    demo, member_client, body, field
):
    before = Case.objects.count()
    r = member_client("grid1").post(f"{BASE}/requests.json", body, format="json")
    assert r.status_code == 400, r.content
    error = r.json()[0]
    assert error["code"] == 400 and error["description"].startswith(field)
    assert Case.objects.count() == before


def test_reporting_needs_a_member(demo):
    r = APIClient().post(
        f"{BASE}/requests.json",
        {"service_code": "neighbour.noise", "lat": "36.06", "long": "103.78"},
        format="json",
    )
    assert r.status_code in (401, 403)
    assert r.json()[0]["code"] == r.status_code


def test_the_schema_is_derived_from_the_serializers_and_errors_are_lists(demo):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    post = schema["paths"]["/open311/v2/requests.json"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    fields = schema["components"]["schemas"][body]
    assert fields["properties"]["lat"]["maximum"] == 90
    assert fields["properties"]["long"]["minimum"] == -180
    assert fields["properties"]["description"]["maxLength"] == 4000
    assert {"attribute[priority]", "attribute[ethnic_religious]"} <= set(fields["properties"])
    assert {"required": ["lat", "long"]} in fields["anyOf"]
    errors = post["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    assert schema["components"]["schemas"][errors.split("/")[-1]]["type"] == "array"
    listed = schema["paths"]["/open311/v2/requests.json"]["get"]
    names = {p["name"] for p in listed["parameters"]}
    assert {"service_request_id", "service_code", "start_date", "end_date", "status"} <= names


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("start_date=2026-13-01", "start_date"),
        ("status=pending", "status"),
        ("start_date=2026-03-01&end_date=2026-02-01", "end_date"),
        ("service_code=a%00b", "service_code"),
    ],
)
def test_bad_list_queries_are_refused_in_the_specs_format(demo, member_client, query, field):
    r = member_client("grid1").get(f"{BASE}/requests.json?{query}")
    assert r.status_code == 400, r.content
    error = r.json()[0]
    assert error["code"] == 400 and error["description"].startswith(field)


def test_json_attributes_and_unknown_attributes(demo, member_client):
    grid1 = member_client("grid1")
    b = building_in(demo.grids[0])
    r = grid1.post(
        f"{BASE}/requests.json",
        {
            "service_code": "neighbour.noise",
            "address_id": b.code,
            "attribute": {"group_incident": "是", "priority": 2, "parties": "李四\n王五"},
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    case = Case.objects.get(number=r.json()[0]["service_request_id"])
    assert case.group_incident and case.priority == 2
    assert {"李四", "王五"} <= {p.get("name") for p in case.parties}
    unknown = grid1.post(
        f"{BASE}/requests.json",
        {"service_code": "neighbour.noise", "address_id": b.code, "attribute[colour]": "red"},
        format="multipart",
    )
    assert unknown.status_code == 400
    assert unknown.json()[0]["description"].startswith("attribute[colour]")
