"""Reporting a case as the phone does (issue 19, report + route): what the client gets and what
is stored stay the same while the request does less work — the created case's answer is the
case as GET reads it, a retry with the same Idempotency-Key answers the first answer, the
point's place and chain (read in one statement) are those of ``locate`` + ``walk``, the
category is found by id or code with its parent, and the duplicates the reporter may not see
stay unnamed."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.contrib.gis.geos import Point
from django.utils import timezone
from rest_framework.test import APIClient

from api.cases.inputs import category_from
from gridsvc.cases.models import Case, Category
from gridsvc.cases.services.routing import route
from gridsvc.chain.models import Position
from gridsvc.chain.services import walk
from gridsvc.supervision.models import InboxMessage
from gridsvc.sync.models import IdempotencyRecord
from gridsvc.territory.models import Building
from gridsvc.territory.services import locate

pytestmark = pytest.mark.django_db

PASSWORD = "gridsvc-demo"


def _client(username: str) -> APIClient:
    r = APIClient().post(
        "/api/v1/auth/token/",
        {"username": username, "password": PASSWORD, "device": f"phone-{username}"},
        format="json",
    )
    assert r.status_code == 200, r.content[:300]
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {r.json()['access']}")
    return c


def _grid_building(username: str) -> Building:
    post = Position.objects.held_at().filter(member__username=username, grid__isnull=False).first()
    return Building.objects.filter(grid_id=post.grid_id).exclude(point=None).order_by("id").first()


def _post(client: APIClient, body: dict, key: str | None = None):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/cases/",
        json.dumps(body),
        content_type="application/json",
        headers={"Idempotency-Key": key or str(uuid.uuid4())},
    )


def test_the_created_case_answers_as_get_reads_it(demo):
    client = _client("grid1")
    b = _grid_building("grid1")
    r = _post(
        client,
        {
            "category": "neighbour.noise",
            "title": "楼上夜间噪音",
            "lon": b.point.x,
            "lat": b.point.y,
        },
    )
    assert r.status_code == 201, r.content[:300]
    created = r.json()["case"]
    got = client.get(f"/api/v1/cases/{created['id']}/")
    assert got.status_code == 200
    assert created == got.json()
    assert r.headers["ETag"] == got.headers["ETag"]
    assert created["handler"] is not None and created["handler_name"]
    assert created["status"] == "assigned" and created["due_at"] is not None
    # what is stored with it: the number, its two events in order, the handler's message
    case = Case.objects.get(pk=created["id"])
    assert re.fullmatch(rf"AJ{timezone.localtime(case.reported_at):%Y}\d{{7}}", case.number)
    events = list(case.events.order_by("id"))
    assert [(e.kind, e.from_status, e.to_status) for e in events] == [
        ("report", "", "assigned"),
        ("route", "reported", "assigned"),
    ]
    assert events[0].actor.username == "grid1" and events[0].location is not None
    assert events[1].data["handler"] == case.handler_id and events[1].note == case.route_reason
    message = InboxMessage.objects.get(object_type="case", object_id=str(case.pk))
    assert message.member_id == case.handler_id
    assert message.title == f"新案件 {case.number}: 楼上夜间噪音"


def test_a_retry_answers_the_first_answer_and_stores_one_case(demo):
    client = _client("grid1")
    b = _grid_building("grid1")
    key = str(uuid.uuid4())
    body = {
        "category": "neighbour.noise",
        "title": "重试 同一案件",
        "lon": b.point.x,
        "lat": b.point.y,
    }
    first = _post(client, body, key)
    assert first.status_code == 201, first.content[:300]
    again = _post(client, body, key)
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    assert again.headers["ETag"] == first.headers["ETag"]
    assert Case.objects.filter(title="重试 同一案件").count() == 1
    record = IdempotencyRecord.objects.get(key=key)
    assert record.status == 201 and record.completed_at is not None
    assert json.loads(bytes(record.response_body)) == first.json()
    assert record.response_headers.get("ETag") == first.headers["ETag"]


def test_a_point_routes_by_the_chain_of_locate_and_walk(demo):
    """Covering building, nearest building within the tolerance, a bare point in a grid, and
    a place outside every grid: the stored chain, the place and the route are those of
    ``walk(locate(point))``."""
    noise = Category.objects.get(code="neighbour.noise")
    when = timezone.now()
    b = _grid_building("grid1")
    points = [
        Point(b.point.x, b.point.y, srid=4326),  # in the building
        Point(b.point.x + 0.00012, b.point.y, srid=4326),  # beside it
        Point(b.point.x + 0.003, b.point.y + 0.002, srid=4326),  # further away
        Point(b.point.x + 1.0, b.point.y + 1.0, srid=4326),  # outside every grid
    ]
    for p in points:
        r = route(noise, p, when=when)
        loc = locate(p)
        assert r.location.method == loc.method
        for attr in ("building", "compound", "grid", "community"):
            assert getattr(getattr(r.location, attr), "pk", None) == getattr(
                getattr(loc, attr), "pk", None
            ), attr
        if loc.grid is None:  # the street dispatch queue of the nearest grid's street
            assert r.queued and r.chain == []
            assert r.location.street.pk == loc.nearest_grid.community.street_id
            continue
        assert r.chain == [s.as_dict() for s in walk(loc, when).steps]
        assert r.location.grid.community.street.pk == loc.street.pk


def test_a_category_is_found_by_id_or_code_with_its_parent(demo):
    noise = Category.objects.select_related("parent").get(code="neighbour.noise")
    for value in (noise.code, str(noise.pk), noise.pk):
        found = category_from(value)
        assert found.pk == noise.pk and found.code == noise.code
        assert found.notify == noise.notify and found.duplicate_days == noise.duplicate_days
        assert found.effective_start_level == noise.effective_start_level
        assert getattr(found.parent, "pk", None) == noise.parent_id
    Category.objects.filter(pk=noise.pk).update(active=False)
    with pytest.raises(Exception, match="unknown category"):
        category_from(noise.code)
    client = _client("grid1")
    b = _grid_building("grid1")
    r = _post(client, {"category": "no.such", "title": "x", "lon": b.point.x, "lat": b.point.y})
    assert r.status_code == 400 and "category" in r.json()


def test_duplicates_name_only_cases_the_reporter_may_see(demo):
    client = _client("grid1")
    b = _grid_building("grid1")
    body = {"category": "neighbour.noise", "title": "重复 一", "lon": b.point.x, "lat": b.point.y}
    seen = _post(client, body).json()["case"]["id"]
    hidden = _post(client, {**body, "title": "重复 二"}).json()["case"]["id"]
    other = Position.objects.held_at().filter(member__username="grid2", grid__isnull=False).first()
    grid2 = Position.objects.filter(member__username="grid2").first().member
    Case.objects.filter(pk=hidden).update(
        grid_id=other.grid_id,
        compound=None,
        building=None,
        unit=None,
        household=None,
        handler=grid2,
        reported_by=grid2,
    )
    r = _post(client, {**body, "title": "重复 三"})
    ids = [d["id"] for d in r.json()["duplicates"]]
    assert seen in ids and hidden not in ids
    assert set(r.json()["duplicates"][0]) == {"id", "number", "title", "status"}


def test_a_report_handed_to_its_handler_is_a_handful_of_statements(demo):
    """The caller, the Idempotency-Key claimed, ONE read of the category, the place and its
    chain, the rules, the clock and the number and ids, then ONE statement storing the case,
    its events, the handler's message, its jobs and reading the duplicates, the key's answer
    (was 7, 15, 38 before issue 19's work)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = _client("grid1")
    b = _grid_building("grid1")
    body = {"category": "neighbour.noise", "title": "噪音 热身", "lon": b.point.x, "lat": b.point.y}
    assert _post(client, body).status_code == 201  # the first request of the connection
    with CaptureQueriesContext(connection) as q:
        r = _post(client, {**body, "title": "噪音 计数"})
    assert r.status_code == 201, r.content[:300]
    sqls = [x["sql"] for x in q.captured_queries]
    listing = "\n".join(s[:160] for s in sqls)
    stored = [
        s for s in sqls if s.removeprefix("/* prepared */ ").startswith("WITH c AS (INSERT INTO")
    ]
    assert len(stored) == 1, listing
    for part in ('"cases_caseevent"', '"supervision_inboxmessage"', "procrastinate_defer_jobs"):
        assert part in stored[0], listing
    work = [s for s in sqls if not s.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
    read = [s for s in sqls if '"cases_category"' in s]
    assert len(read) == 1, listing
    for part in ("territory_building", '"cases_timelimit"', "supervision_calendarday", "nextval"):
        assert part in read[0], listing
    assert len(work) <= 5, f"{len(work)} statements:\n{listing}"


def test_a_bad_report_is_refused_naming_the_field_as_before(demo):
    """The report's serializer validates with fields bound once per thread: a bad category,
    a missing title, a longitude out of range, a bad party or flag each answer the 400 they
    always did (same body, same field, in the caller's language), one after another on the
    same fields, and a good report right after still goes through."""
    client = _client("grid1")
    b = _grid_building("grid1")
    good = {"category": "neighbour.noise", "title": "噪音 校验", "lon": b.point.x, "lat": b.point.y}
    bodies = [
        {**good, "category": "no.such"},
        {k: v for k, v in good.items() if k != "title"},
        {**good, "lon": 181},
        {**good, "lat": -91, "title": ""},
        {**good, "parties": [{"name": "甲"}, {"role": "乙"}]},
        {**good, "flags": ["nope"]},
    ]
    answers = []
    for language in ("zh-hans", "en", "zh-hans"):  # the second round on the same fields
        client.credentials(HTTP_AUTHORIZATION=client._credentials["HTTP_AUTHORIZATION"],
                           HTTP_ACCEPT_LANGUAGE=language)  # fmt: skip
        for body in bodies:
            r = _post(client, body)
            assert r.status_code == 400, r.content[:300]
            answers.append(r.json())
    zh = [
        {"category": "unknown category (give its id or code)"},
        {"title": ["该字段是必填项。"]},
        {"lon": ["请确保该值小于或者等于 180。"]},
        {"title": ["该字段不能为空。"], "lat": ["请确保该值大于或者等于 -90。"]},
        {"parties": {"1": {"name": ["该字段是必填项。"]}}},
        {"flags": {"0": ["“nope” 不是合法选项。"]}},
    ]
    en = [
        {"category": "unknown category (give its id or code)"},
        {"title": ["This field is required."]},
        {"lon": ["Ensure this value is less than or equal to 180."]},
        {
            "title": ["This field may not be blank."],
            "lat": ["Ensure this value is greater than or equal to -90."],
        },
        {"parties": {"1": {"name": ["This field is required."]}}},
        {"flags": {"0": ['"nope" is not a valid choice.']}},
    ]
    assert answers == zh + en + zh
    r = _post(client, {**good, "parties": [{"name": "甲"}], "priority": 2})
    assert r.status_code == 201, r.content[:300]
    assert r.json()["case"]["priority"] == 2 and r.json()["case"]["title"] == "噪音 校验"


def _numbers() -> tuple[int, int, int]:
    """The last case number's sequence value, case id and inbox message id stored."""
    case = Case.objects.order_by("-id").first()
    message = InboxMessage.objects.order_by("-id").first()
    return int(case.number[-7:]), case.pk, message.pk if message else 0


def test_a_refused_report_stores_nothing_and_draws_no_number(demo):
    """The category and the place are read with the number and ids drawn ahead: a report
    refused there (no such category, a place given badly) stores no row and leaves no gap
    in the case numbers 案件编号 or ids; the next report takes the next number."""
    client = _client("grid1")
    b = _grid_building("grid1")
    good = {"category": "neighbour.noise", "title": "编号 一", "lon": b.point.x, "lat": b.point.y}
    assert _post(client, good).status_code == 201
    number, case_id, message_id = _numbers()
    cases, messages = Case.objects.count(), InboxMessage.objects.count()
    refused = [
        {**good, "category": "no.such"},
        {**good, "lon": "x"},
        {"category": "no.such", "title": "坏地点", "location": {"type": "Line"}},
        {"category": "neighbour.noise", "title": "坏地点", "location": {"type": "Line"}},
        {"category": "neighbour.noise", "title": "无地点"},
        {**good, "on_the_spot": True, "outcome": "已处理"},  # no photos
        {**good, "on_the_spot": True},
    ]
    for body in refused:
        r = _post(client, body)
        assert r.status_code == 400, (body, r.content[:300])
    bad_place = {"category": "no.such", "title": "坏地点", "location": {"type": "Line"}}
    assert _post(client, bad_place).json() == {
        "category": "unknown category (give its id or code)"
    }  # the category's refusal first, as before
    assert "location" in _post(client, {**bad_place, "category": "neighbour.noise"}).json()
    assert (Case.objects.count(), InboxMessage.objects.count()) == (cases, messages)
    r = _post(client, {**good, "title": "编号 二"})
    assert r.status_code == 201, r.content[:300]
    assert _numbers() == (number + 1, case_id + 1, message_id + 1)


def test_a_report_notifying_by_its_category_keeps_its_rules_and_messages(demo):
    """A category whose rules notify more people (燃气隐患: the community cadre) is not stored
    in one statement: it is still routed by the place read with its category, keeps the
    deadlines of its rules on its street's clock, tells the notified and draws its number
    without a gap."""
    from gridsvc.cases.services.deadlines import time_limit
    from gridsvc.supervision.clock import WorkClock

    client = _client("grid1")
    b = _grid_building("grid1")
    first = {"category": "neighbour.noise", "title": "燃气 前", "lon": b.point.x, "lat": b.point.y}
    assert _post(client, first).status_code == 201
    number, case_id, _ = _numbers()
    r = _post(client, {**first, "category": "hazard.gas", "title": "燃气 泄漏"})
    assert r.status_code == 201, r.content[:300]
    case = Case.objects.select_related("category").get(pk=r.json()["case"]["id"])
    assert (int(case.number[-7:]), case.pk) == (number + 1, case_id + 1)
    loc = locate(Point(b.point.x, b.point.y, srid=4326))
    assert case.grid_id == loc.grid.pk and case.street_id == loc.street.pk
    assert case.chain == [s.as_dict() for s in walk(loc, case.reported_at).steps]
    clock = WorkClock(case.street_id)
    stage = {"assigned": "accept", "reported": "dispatch"}[case.status]
    limit = time_limit(case.category, stage, case.level if stage == "accept" else "")
    if limit is not None:
        assert case.due_at == clock.add(case.stage_started_at, limit.amount, limit.unit)
    titles = set(
        InboxMessage.objects.filter(object_type="case", object_id=str(case.pk)).values_list(
            "title", flat=True
        )
    )
    assert f"关注 {case.number}: 燃气 泄漏" in titles


def test_a_report_nobody_can_take_waits_in_the_queue_with_its_drawn_id(demo):
    """Everyone on the point's chain on leave (a hazard: no 调处员 to hand it to): the report waits in the street dispatch queue
    (not stored in one statement), stored under the id and number drawn with its category
    read — no gap — with its deadline to dispatch."""
    client = _client("grid1")
    b = _grid_building("grid1")
    body = {"category": "hazard.fire", "title": "排队 前", "lon": b.point.x, "lat": b.point.y}
    assert _post(client, body).status_code == 201
    number, case_id, _ = _numbers()
    Position.objects.held_at().update(on_leave=True)
    r = _post(client, {**body, "title": "排队 后"})
    assert r.status_code == 201, r.content[:300]
    created = r.json()["case"]
    assert created["status"] == "reported" and created["handler"] is None
    case = Case.objects.get(pk=created["id"])
    assert (int(case.number[-7:]), case.pk) == (number + 1, case_id + 1)
    assert case.due_stage == "dispatch" or case.due_at is None
    assert [e.kind for e in case.events.order_by("id")] == ["report", "route"]
    assert client.get(f"/api/v1/cases/{case.pk}/").json() == created


def test_a_reports_insert_parameters_are_the_orms(demo):
    """The report's one statement binds each column's value as the ORM's own INSERT would
    (the compiler's ``prepare_value``, of the same type: psycopg's integer widths, text,
    datetimes, JSON, the geometry), its text compiled once per shape."""
    from django.db.models.sql import InsertQuery

    from gridsvc.cases.models import CaseEvent
    from gridsvc.cases.services.reporting import _insert_sql

    client = _client("grid1")
    b = _grid_building("grid1")
    body = {"category": "neighbour.noise", "title": "参数 一", "lon": b.point.x, "lat": b.point.y}
    r = _post(client, {**body, "parties": [{"name": "甲"}], "priority": 2})
    assert r.status_code == 201, r.content[:300]
    case = Case.objects.get(pk=r.json()["case"]["id"])
    groups = [
        [case],
        list(CaseEvent.objects.filter(case=case).order_by("id")),
        list(InboxMessage.objects.filter(object_type="case", object_id=str(case.pk))),
    ]
    for objs in groups:
        model = type(objs[0])
        fields = [f for f in model._meta.local_concrete_fields if not f.generated]
        _, params = _insert_sql(objs)
        query = InsertQuery(model)
        query.insert_values(fields, objs, raw=False)
        compiler = query.get_compiler("default")
        expected = [compiler.prepare_value(f, getattr(o, f.attname)) for o in objs for f in fields]
        assert len(params) == len(expected), model
        for f, got, want in zip(fields * len(objs), params, expected, strict=True):
            assert type(got) is type(want), (model, f.name, got, want)
            assert str(got) == str(want), (model, f.name, got, want)
