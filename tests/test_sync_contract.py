"""The phone's contract (issue 16 items 6 and 10): a lost refresh response does not lock a
member out, a re-used refresh token after the grace window revokes the device, token answers
say how long they live, and the OpenAPI schema describes what the phone endpoints accept and
return."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from gridsvc.accounts.models import Device, SpentRefreshToken

pytestmark = pytest.mark.django_db

PASSWORD = "gridsvc-demo"


def login(username: str = "grid2", device: str = "phone-A") -> dict:
    r = APIClient().post(
        "/api/v1/auth/token/",
        {"username": username, "password": PASSWORD, "device": device},
        format="json",
    )
    assert r.status_code == 200, r.content
    return r.json()


def refresh(token: str):  # type: ignore[no-untyped-def]
    return APIClient().post("/api/v1/auth/token/refresh/", {"refresh": token}, format="json")


def me(access: str) -> int:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return c.get("/api/v1/me/").status_code


# ------------------------------------------------------------------ 6. tokens
def test_token_answers_say_how_long_the_tokens_live(demo):
    pair = login()
    assert pair["expires_in"] == 30 * 60
    assert 14 * 86400 - 60 <= pair["refresh_expires_in"] <= 14 * 86400
    assert pair["token_type"] == "Bearer"
    r = refresh(pair["refresh"])
    assert r.status_code == 200
    body = r.json()
    assert body["expires_in"] == 30 * 60 and body["refresh_expires_in"] > 13 * 86400
    assert body["device"] == pair["device"]
    assert {"access", "refresh"} <= body.keys()


def test_a_lost_refresh_answer_does_not_lock_the_member_out(demo):
    pair = login()
    first = refresh(pair["refresh"])  # the answer is lost on the way to the phone
    assert first.status_code == 200
    retry = refresh(pair["refresh"])  # the phone sends the same (spent) token again
    assert retry.status_code == 200, retry.content
    again = retry.json()
    assert me(again["access"]) == 200
    assert again["device"] == pair["device"]
    # the pair from the retry keeps working: it refreshes like any other
    nxt = refresh(again["refresh"])
    assert nxt.status_code == 200 and me(nxt.json()["access"]) == 200
    # and so does the pair whose answer was lost (if it did arrive after all)
    assert me(first.json()["access"]) == 200
    assert Device.objects.get(pk=pair["device"]).revoked_at is None


def test_a_refresh_token_reused_after_the_grace_window_revokes_the_device(demo):
    pair = login()
    rotated = refresh(pair["refresh"]).json()
    other_device = login(device="tablet-B")
    # the rotation happened two minutes ago (the window is 60 s)
    SpentRefreshToken.objects.update(spent_at=timezone.now() - timedelta(minutes=2))
    stolen = refresh(pair["refresh"])
    assert stolen.status_code == 401
    assert stolen.json()["code"] == "refresh_reused"
    assert Device.objects.get(pk=pair["device"]).revoked_at is not None
    # every token of that device is dead: access and the rotated refresh token
    assert me(rotated["access"]) == 401
    r = refresh(rotated["refresh"])
    assert r.status_code == 401 and r.json()["code"] == "device_revoked"
    # the member's other device is untouched, and logging in again works
    assert me(other_device["access"]) == 200
    assert me(login()["access"]) == 200


def test_a_logged_out_refresh_token_gets_no_pair(demo):
    pair = login()
    c = APIClient()
    assert (
        c.post("/api/v1/auth/logout/", {"refresh": pair["refresh"]}, format="json").status_code
        == 205
    )
    r = refresh(pair["refresh"])
    assert r.status_code == 401
    assert Device.objects.get(pk=pair["device"]).revoked_at is None


def test_a_forged_refresh_token_is_refused(demo):
    pair = login()
    head, payload, sig = pair["refresh"].split(".")
    forged = f"{head}.{payload}.{sig[:-4]}AAAA"
    assert refresh(forged).status_code == 401
    assert refresh(pair["refresh"]).status_code == 200


# ------------------------------------------------------------------ 10. the schema
@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def _ref(obj: dict) -> str:
    if "allOf" in obj and len(obj["allOf"]) == 1:  # a read-only or nullable reference
        obj = obj["allOf"][0]
    return obj.get("$ref", "").rsplit("/", 1)[-1]


def _response(schema: dict, path: str, method: str, code: str) -> dict:
    return schema["paths"][path][method]["responses"][code]["content"]["application/json"]["schema"]


def _component(schema: dict, name: str) -> dict:
    return schema["components"]["schemas"][name]


def test_the_schema_says_what_a_visit_upload_is(schema):
    body = schema["paths"]["/api/v1/visits/"]["post"]["requestBody"]["content"]
    upload = _component(schema, _ref(body["application/json"]["schema"]))
    props = upload["properties"]
    assert "member" not in props and "input_crs" not in props
    assert {"lon", "lat", "accuracy_m", "crs", "photos", "client_uuid", "findings"} <= props.keys()
    assert set(upload["required"]) == {"client_uuid", "household", "client_time"}
    assert "multipart/form-data" in body
    batch = schema["paths"]["/api/v1/visits/batch/"]["post"]
    req = _component(schema, _ref(batch["requestBody"]["content"]["application/json"]["schema"]))
    assert _ref(req["properties"]["visits"]["items"]) == _ref(body["application/json"]["schema"])


def test_the_schema_types_batch_results_with_machine_readable_codes(schema):
    result = _component(schema, _ref(_response(schema, "/api/v1/visits/batch/", "post", "200")))
    item = _component(schema, _ref(result["properties"]["results"]["items"]))
    code = _component(schema, _ref(item["properties"]["code"]))
    assert set(code["enum"]) >= {"invalid", "not_in_territory", "unknown_task", "conflict"}
    status = _component(schema, _ref(item["properties"]["status"]))
    assert set(status["enum"]) == {"accepted", "duplicate", "conflict", "rejected"}
    assert "task_link" in item["properties"] and "time_flag" in item["properties"]
    single = schema["paths"]["/api/v1/visits/"]["post"]["responses"]
    assert {"200", "201", "400", "409"} <= single.keys()
    created = _component(schema, _ref(single["201"]["content"]["application/json"]["schema"]))
    assert _ref(created["properties"]["result"]) == _ref(result["properties"]["results"]["items"])


def test_the_schema_types_tokens_feed_me_and_packages(schema):
    for path in ("/api/v1/auth/token/", "/api/v1/auth/token/refresh/"):
        pair = _component(schema, _ref(_response(schema, path, "post", "200")))
        assert {"access", "refresh", "expires_in", "refresh_expires_in"} <= set(pair["required"])
    for path, method in [
        ("/api/v1/me/", "get"),
        ("/api/v1/sync/changes/", "get"),
        ("/api/v1/offline/grids/{grid_id}/", "get"),
        ("/api/v1/cases/", "post"),
        ("/api/v1/daily-reports/", "post"),
        ("/api/v1/inbox/", "get"),
    ]:
        code = "201" if method == "post" and path == "/api/v1/cases/" else "200"
        ref = _ref(_response(schema, path, method, code))
        assert ref and _component(schema, ref).get("properties"), (path, ref)
    case_action = schema["paths"]["/api/v1/cases/{id}/actions/{name}/"]["post"]["responses"]
    assert {"409", "412"} <= case_action.keys()


def test_every_phone_operation_documents_protocol_headers_and_error_codes(schema):
    op = schema["paths"]["/api/v1/cases/"]["post"]
    headers = {p["name"] for p in op["parameters"] if p["in"] == "header"}
    assert {"Idempotency-Key", "X-Device-Time", "X-App-Version"} <= headers
    assert {"400", "401", "409", "422", "426", "503"} <= op["responses"].keys()
    error = _component(schema, "Error")
    assert {"detail", "code"} <= error["properties"].keys()
    feed = schema["paths"]["/api/v1/sync/changes/"]["get"]
    assert "Idempotency-Key" not in {p["name"] for p in feed["parameters"]}
    assert "X-Server-Time" in feed["responses"]["200"]["headers"]
    assert "Idempotent-Replayed" in op["responses"]["201"]["headers"]


def test_answers_carry_the_documented_server_time(demo):
    r = APIClient().post(
        "/api/v1/auth/token/",
        {"username": "grid2", "password": PASSWORD, "device": "phone-A"},
        format="json",
        HTTP_X_DEVICE_TIME=(timezone.now() + timedelta(hours=2)).isoformat(),
    )
    assert r.status_code == 200 and r["X-Server-Time"].endswith("Z")
    assert 7_100_000 < int(r["X-Clock-Offset-Ms"]) < 7_300_000


def test_the_schema_validates_without_warnings():
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_a_single_visit_conflict_answers_the_documented_shape(demo, member_client, schema):
    from gridsvc.territory.models import Household

    household = Household.objects.filter(unit__building__grid=demo.grids[0]).first()
    client = member_client("grid1")
    visit = {
        "client_uuid": str(uuid.uuid4()),
        "household": household.id,
        "client_time": (timezone.now() - timedelta(hours=1)).isoformat(),
        "notes": "第一次",
    }
    assert client.post("/api/v1/visits/", visit, format="json").status_code == 201
    r = client.post("/api/v1/visits/", {**visit, "notes": "另一次"}, format="json")
    assert r.status_code == 409
    body = r.json()
    conflict = _component(schema, _ref(_response(schema, "/api/v1/visits/", "post", "409")))
    assert set(conflict.get("required", [])) <= body.keys()
    kinds = {"string": str, "array": list, "integer": int, "object": dict}
    for name, prop in conflict["properties"].items():
        if name in body and body[name] is not None and prop.get("type") in kinds:
            assert isinstance(body[name], kinds[prop["type"]]), (name, body[name])
    assert body["code"] == "conflict" and body["id"]
