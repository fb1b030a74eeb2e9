"""One input layer for the cases API (issue 17 item 3, cases part): every query parameter and
body of the case-request, follow-up, inbox, dispatch and assessment endpoints is a FilterSet
or a serializer, so a bad value is 400 naming the parameter (never silently ignored) and the
OpenAPI schema states the same choices and limits the views check."""

from __future__ import annotations

import pytest

from .cases_helpers import member, report

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url,field",
    [
        ("/api/v1/cases/?open=yes", "open"),
        ("/api/v1/cases/?overdue=perhaps", "overdue"),
        ("/api/v1/case-requests/?state=bogus", "state"),
        ("/api/v1/follow-ups/?all=everyone", "all"),
        ("/api/v1/follow-ups/?done=maybe", "done"),
        ("/api/v1/inbox/?unread=yes", "unread"),
        ("/api/v1/dispatch/queue/?kind=urgent", "kind"),
        ("/api/v1/assessment/?by=planet", "by"),
        ("/api/v1/assessment/?since=2026-13-01", "since"),
        ("/api/v1/assessment/?since=2026-05-01&until=2026-04-01", "until"),
        ("/api/v1/assessment/cases/?figure=handled", "key"),
        ("/api/v1/assessment/cases/?key=1&figure=happiness", "figure"),
    ],
)
def test_a_bad_query_value_is_400_naming_the_parameter(demo, member_client, url, field):
    r = member_client("street").get(url)
    assert r.status_code == 400, (url, r.content)
    assert field in r.json(), r.content


def test_an_instant_with_an_offset_postgresql_refuses_is_still_answered(demo, member_client):
    # schemathesis found a 500: Python takes a -23:54 offset, PostgreSQL refuses past ±15:59
    client = member_client("street")
    r = client.get("/api/v1/cases/", {"since": "2088-05-10T21:03:39-23:54"})
    assert r.status_code == 200, r.content
    assert r.json()["count"] == 0
    # past 2099 is out of a client's range (api.fields): 400 naming it
    r = client.get("/api/v1/cases/", {"since": "2788-05-10T21:03:39-23:54"})
    assert r.status_code == 400 and "since" in r.json(), r.content
    r = client.get("/api/v1/cases/", {"since": "2026-01-01T08:00:00+08:00"})
    assert r.status_code == 200 and r.json()["count"] > 0
    r = client.get("/api/v1/cases/", {"until": "0001-01-01T00:00:00+10:00"})
    assert r.status_code == 400 and "until" in r.json(), r.content


def test_follow_ups_done_and_all(demo, member_client):
    from gridsvc.cases.models import FollowUp

    street = member_client("street")
    everyone = street.get("/api/v1/follow-ups/?all=true&page_size=500").json()["results"]
    done = street.get("/api/v1/follow-ups/?all=true&done=true&page_size=500").json()["results"]
    open_ = street.get("/api/v1/follow-ups/?all=1&done=0&page_size=500").json()["results"]
    assert done and open_
    assert all(f["done_at"] for f in done) and not any(f["done_at"] for f in open_)
    assert {f["id"] for f in done} | {f["id"] for f in open_} == {f["id"] for f in everyone}
    # without all: only the caller's own
    grid1 = member("grid1")
    mine = member_client("grid1").get("/api/v1/follow-ups/?page_size=500").json()["results"]
    assert all(f["assigned_to"] == grid1.pk for f in mine)
    assert len(mine) == FollowUp.objects.filter(assigned_to=grid1).count() < len(everyone)


def test_inbox_unread_filter(demo, member_client):
    from django.utils import timezone

    from gridsvc.cases import services
    from gridsvc.supervision.models import InboxMessage

    case = report().case
    who = member("grid1")
    services.inbox([who.pk], InboxMessage.Kind.OTHER, case, "一")
    services.inbox([who.pk], InboxMessage.Kind.OTHER, case, "二")
    msgs = list(InboxMessage.objects.filter(member=who).order_by("-pk")[:2])
    InboxMessage.objects.filter(pk=msgs[0].pk).update(read_at=timezone.now())
    InboxMessage.objects.filter(pk=msgs[1].pk).update(read_at=None)
    client = member_client("grid1")
    unread = {
        m["id"] for m in client.get("/api/v1/inbox/?unread=true&page_size=500").json()["results"]
    }
    read = {
        m["id"] for m in client.get("/api/v1/inbox/?unread=false&page_size=500").json()["results"]
    }
    assert msgs[1].pk in unread and msgs[1].pk not in read
    assert msgs[0].pk in read and msgs[0].pk not in unread


def test_bulk_dispatch_body_is_checked_as_declared(demo, member_client):
    street = member_client("street")
    url = "/api/v1/dispatch/supervise/"
    assert street.post(url, {"ids": []}, format="json").status_code == 400
    too_many = street.post(url, {"ids": list(range(1, 202))}, format="json")
    assert too_many.status_code == 400 and "ids" in too_many.json()
    bad_key = street.post(url, {"ids": [1], "versions": {"x": 1}}, format="json")
    assert bad_key.status_code == 400 and "versions" in bad_key.json()
    assert street.post("/api/v1/dispatch/explode/", {"ids": [1]}, format="json").status_code == 400


def test_decide_needs_approve(demo, member_client):
    from gridsvc.cases import services

    case = report().case
    req = services.request_exception(
        case.pk, "extension", case.handler, reason="需要时间", amount=1, unit="working_days"
    )
    r = member_client("street").post(
        f"/api/v1/case-requests/{req.pk}/decide/", {"note": "?"}, format="json"
    )
    assert r.status_code == 400 and "approve" in r.json()


def _op(schema: dict, path: str, method: str = "get") -> dict:
    return schema["paths"][path][method]


def _params(schema: dict, path: str) -> dict[str, dict]:
    return {p["name"]: p for p in _op(schema, path).get("parameters", [])}


def _component(schema: dict, ref: str) -> dict:
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def test_the_schema_declares_what_the_views_check(member_client):
    schema = member_client("street").get("/api/schema/?format=json").json()
    state = _params(schema, "/api/v1/case-requests/")["state"]["schema"]
    assert set(state["enum"]) == {"pending", "approved", "refused"}
    follow = _params(schema, "/api/v1/follow-ups/")
    assert follow["all"]["schema"]["type"] == "boolean"
    assert follow["done"]["schema"]["type"] == "boolean"
    assert _params(schema, "/api/v1/inbox/")["unread"]["schema"]["type"] == "boolean"
    kind = _params(schema, "/api/v1/dispatch/queue/")["kind"]["schema"]
    assert set(kind["enum"]) == {"all", "unrouted", "overdue", "flagged"}
    period = _params(schema, "/api/v1/assessment/")
    assert set(period["by"]["schema"]["enum"]) == {"member", "grid", "community", "department"}
    assert period["since"]["schema"]["format"] == "date"
    drill = _params(schema, "/api/v1/assessment/cases/")
    assert drill["key"]["required"] and drill["key"]["schema"]["type"] == "integer"
    assert {"handled", "on_the_spot", "overdue_unhandled"} <= set(drill["figure"]["schema"]["enum"])
    body = _op(schema, "/api/v1/dispatch/{name}/", "post")["requestBody"]["content"]
    bulk = _component(schema, body["application/json"]["schema"]["$ref"])
    assert bulk["properties"]["ids"]["minItems"] == 1
    assert bulk["properties"]["ids"]["maxItems"] == 200
    assert "ids" in bulk["required"]
    decide = _op(schema, "/api/v1/case-requests/{id}/decide/", "post")["requestBody"]["content"]
    decide_schema = _component(schema, decide["application/json"]["schema"]["$ref"])
    assert decide_schema["required"] == ["approve"]
