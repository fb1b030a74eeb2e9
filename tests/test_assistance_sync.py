"""People's services on the phone (issue 21 item 1): the change feed of applications and
migrants in the member's grids (GET /api/v1/assistance/changes/) and the offline batch
(POST /api/v1/assistance/batch/: an application started on a visit, a migrant's arrival and
departure), idempotent by each item's client_uuid and by the Idempotency-Key.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridsvc.accounts.models import Member
from gridsvc.assistance import services
from gridsvc.assistance.models import Application, Migrant, MigrantMove
from gridsvc.audit.models import UnmaskGrant
from gridsvc.supervision.models import InboxMessage
from gridsvc.territory.models import Household, Resident
from gridsvc.visits.models import Visit

pytestmark = pytest.mark.django_db
FEED = "/api/v1/assistance/changes/"
BATCH = "/api/v1/assistance/batch/"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _hh(grid, n: int = 0) -> Household:  # type: ignore[no-untyped-def]
    return (
        Household.objects.filter(unit__building__grid=grid, residents__isnull=False)
        .distinct()
        .order_by("id")[n]
    )


def _all(client, since: str | None = None) -> tuple[dict, str]:  # type: ignore[no-untyped-def]
    """Follow the feed until has_more is false; rows by stream, the last cursor."""
    rows: dict[str, list] = {"applications": [], "migrants": []}
    cursor = since
    while True:
        url = FEED + (f"?since={cursor}" if cursor else "")
        r = client.get(url)
        assert r.status_code == 200, r.content[:300]
        body = r.json()
        for key in rows:
            rows[key] += body[key]
        cursor = body["cursor"]
        if not body["has_more"]:
            return rows, cursor


def test_the_feed_brings_the_grids_applications_and_migrants_masked(demo, member_client):
    grid1 = Member.objects.get(username="grid1")
    mine, foreign = _hh(demo.grids[0], 1), _hh(demo.grids[4], 1)
    app = services.submit(grid1, mine, "temp_relief", reason="医疗支出大").application
    services.check(grid1, app.pk, members_count=2, monthly_income=420, documents=["户口簿"])
    grid5 = Member.objects.get(username="grid5")
    theirs = services.submit(grid5, foreign, "temp_relief").application
    client = member_client("grid1")
    rows, cursor = _all(client)
    apps = {a["id"]: a for a in rows["applications"]}
    assert app.pk in apps and theirs.pk not in apps
    assert all(
        Application.objects.get(pk=i).household.unit.building.grid_id == demo.grids[0].pk
        for i in apps
    )
    row = apps[app.pk]
    assert row["monthly_income"] == "**" and "monthly_income" in row["masked"]
    assert [e["action"] for e in row["events"]] == ["submit", "check"]
    # nothing new: an empty page; a step on the application brings it again
    again, cursor = _all(client, cursor)
    assert again == {"applications": [], "migrants": []}
    services.review(Member.objects.get(username="cadre1"), app.pk, recommended=True, opinion="同意")
    after, cursor = _all(client, cursor)
    assert [a["id"] for a in after["applications"]] == [app.pk]
    assert after["applications"][0]["status"] == "reviewed"
    # a migrant arriving in grid 1 reaches grid 1's phone, not grid 5's
    resident = Resident.objects.filter(household=mine).first()
    r = client.post(
        "/api/v1/migrants/",
        {"resident": resident.pk, "arrived_on": "2026-11-20", "home_contact_phone": "13912345678"},
        format="json",
    )
    assert r.status_code == 201, r.content
    after, cursor = _all(client, cursor)
    assert [m["id"] for m in after["migrants"]] == [r.json()["id"]]
    assert after["migrants"][0]["home_contact_phone"] != "13912345678"
    theirs_rows, _ = _all(member_client("grid5"))
    assert r.json()["id"] not in {m["id"] for m in theirs_rows["migrants"]}
    assert app.pk not in {a["id"] for a in theirs_rows["applications"]}


def test_the_feed_stays_masked_under_a_grant_and_refuses_neighbours(demo, member_client):
    street = Member.objects.get(username="street")
    app = services.submit(street, _hh(demo.grids[0], 2), "dibao").application
    services.check(street, app.pk, members_count=3, monthly_income=510, documents=["户口簿"])
    UnmaskGrant.objects.create(
        member=street, reason="核对", expires_at=datetime.now(SHANGHAI) + timedelta(hours=1)
    )
    client = member_client("street")
    # the web API unmasks under the grant; the phone's feed never does
    detail = client.get(f"/api/v1/assistance/{app.pk}/?unmask=1").json()
    assert detail["monthly_income"] == "510.00"
    rows, _ = _all(client)
    row = next(a for a in rows["applications"] if a["id"] == app.pk)
    assert row["monthly_income"] == "**"
    # neighbours' roles (楼长, 单元长, 物业) get no feed
    for name in ("bh-001", "uh-001-1", "pm-C01"):
        assert member_client(name).get(FEED).status_code == 403, name
        assert member_client(name).post(BATCH, {"items": []}, format="json").status_code == 403


def test_a_cursor_of_another_feed_or_member_is_refused(member_client):
    community = member_client("grid1").get("/api/v1/community/changes/")
    assert community.status_code == 200
    r = member_client("grid1").get(FEED + "?since=" + community.json()["cursor"])
    assert r.status_code == 400 and "since" in r.json()
    mine = member_client("grid1").get(FEED).json()["cursor"]
    r = member_client("grid5").get(FEED + "?since=" + mine)
    assert r.status_code == 400 and "since" in r.json()
    assert member_client("grid1").get(FEED + "?limit=0").status_code == 400


def _batch_items(household: Household, resident: Resident, visit: Visit | None) -> list[dict]:
    application = {"household": household.pk, "kind": "temp_relief", "reason": "走访发现: 失业"}
    if visit is not None:
        application["visit_uuid"] = str(visit.client_uuid)
    return [
        {"kind": "application", "client_uuid": str(uuid.uuid4()), "data": application},
        {
            "kind": "arrival",
            "client_uuid": str(uuid.uuid4()),
            "data": {
                "resident": resident.pk,
                "arrived_on": "2026-11-02",
                "work": "self_employed",
                "business_licence": "91620100MA00000001",
                "children_needs": "孩子入托",
            },
        },
        {
            "kind": "departure",
            "client_uuid": str(uuid.uuid4()),
            "data": {"resident": resident.pk, "departed_on": "2026-11-25", "departed_to": "兰州"},
        },
    ]


def test_an_offline_batch_is_stored_once_however_often_it_is_sent(demo, member_client):
    household = _hh(demo.grids[0], 3)
    Application.objects.filter(household=household, kind="temp_relief").delete()
    resident = Resident.objects.filter(household=household).order_by("id").first()
    Migrant.objects.filter(resident=resident).delete()
    visit = Visit.objects.filter(household=household).first()
    items = _batch_items(household, resident, visit)
    client = member_client("grid1")
    r = client.post(BATCH, {"items": items}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["summary"] == {"accepted": 3, "duplicate": 0, "rejected": 0}, body
    app = Application.objects.get(pk=body["results"][0]["id"])
    assert app.client_uuid == uuid.UUID(items[0]["client_uuid"]) and app.status == "submitted"
    assert app.created_by.username == "grid1" and app.due_at is not None
    if visit is not None:
        assert app.visit_id == visit.pk  # started from the visit the phone knew by its uuid
    migrant = Migrant.objects.get(resident=resident)
    assert migrant.departed_on.isoformat() == "2026-11-25" and migrant.business_licence
    assert list(migrant.moves.values_list("move", flat=True)) == ["arrival", "departure"]
    told = InboxMessage.objects.filter(object_type="migrant", object_id=str(migrant.pk)).count()
    # the phone did not get the answer and sends the batch again: nothing is stored twice,
    # the departed migrant is not reopened, the grid is not told again
    again = client.post(BATCH, {"items": items}, format="json").json()
    assert again["summary"] == {"accepted": 0, "duplicate": 3, "rejected": 0}, again
    assert [x["id"] for x in again["results"]] == [x["id"] for x in body["results"]]
    assert Application.objects.filter(household=household, kind="temp_relief").count() == 1
    migrant.refresh_from_db()
    assert migrant.departed_on is not None
    assert MigrantMove.objects.filter(migrant=migrant).count() == 2
    assert InboxMessage.objects.filter(
        object_type="migrant", object_id=str(migrant.pk)
    ).count() == (told)
    # the whole batch under an Idempotency-Key: the retry is answered as the first time
    fresh = _batch_items(household, resident, None)[1:2]
    fresh[0]["data"]["arrived_on"] = "2026-11-28"
    key = str(uuid.uuid4())
    first = client.post(BATCH, {"items": fresh}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    replay = client.post(BATCH, {"items": fresh}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert first.json()["summary"]["accepted"] == 1
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == first.json()
    assert MigrantMove.objects.filter(migrant=migrant).count() == 3


def test_one_bad_item_never_loses_the_others(demo, member_client):
    mine, foreign = _hh(demo.grids[0], 4), _hh(demo.grids[4], 4)
    Application.objects.filter(household=mine, kind="student_aid").delete()
    items = [
        {
            "kind": "application",
            "client_uuid": str(uuid.uuid4()),
            "data": {"household": foreign.pk, "kind": "student_aid"},
        },
        {
            "kind": "application",
            "client_uuid": str(uuid.uuid4()),
            "data": {"household": mine.pk, "kind": "no_such_kind"},
        },
        {
            "kind": "departure",
            "client_uuid": str(uuid.uuid4()),
            "data": {"departed_on": "2026-11-25"},
        },
        {
            "kind": "application",
            "client_uuid": str(uuid.uuid4()),
            "data": {"household": mine.pk, "kind": "student_aid", "visit": 10**9},
        },
        {
            "kind": "application",
            "client_uuid": str(uuid.uuid4()),
            "data": {"household": mine.pk, "kind": "student_aid", "reason": "孩子上大学"},
        },
    ]
    before = Application.objects.count()
    r = member_client("grid1").post(BATCH, {"items": items}, format="json")
    assert r.status_code == 200, r.content
    res = r.json()["results"]
    assert [x["status"] for x in res] == [
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
    ], res
    assert res[0]["errors"] == {"household": ["not found"]}  # another grid's household
    assert "kind" in res[1]["errors"] and "migrant" in res[2]["errors"]
    assert res[3]["errors"] == {"visit": ["not found"]}
    assert Application.objects.count() == before + 1
    assert not Application.objects.filter(household=foreign, kind="student_aid").exists()
    # an id beyond any row is refused by its field, never a database error
    huge = {"kind": "application", "client_uuid": str(uuid.uuid4())}
    huge["data"] = {"household": 10**20, "kind": "job"}
    r = member_client("grid1").post(BATCH, {"items": [huge]}, format="json")
    assert r.status_code == 200 and "household" in r.json()["results"][0]["errors"]
    r = member_client("grid1").post(
        "/api/v1/assistance/", {"household": 10**20, "kind": "job"}, format="json"
    )
    assert r.status_code == 400 and "household" in r.json()


def test_the_demo_migrants_have_their_comings_and_goings(demo):
    """fixtures/demo_assistance.py records each migrant's arrival (and departure) as a move,
    the history the phone's batch adds to."""
    migrants = Migrant.objects.filter(
        resident__household__unit__building__grid__community__street=demo.street
    )
    assert migrants.exists()
    for m in migrants.prefetch_related("moves"):
        moves = [(x.move, x.on) for x in m.moves.all()]
        expected = [("arrival", m.arrived_on)]
        if m.departed_on:
            expected.append(("departure", m.departed_on))
        assert moves == expected, (m.pk, moves)


def test_a_grid_member_who_heads_a_building_elsewhere_gets_only_their_grid(demo, member_client):
    """A member of two tiers is staff only in the staff part of their territory: the feed,
    the batch and the 应保尽保 layer leave out the building they head in another grid."""
    from gridsvc.assistance.services import gap_households
    from gridsvc.chain.models import Position

    grid5_households = Household.objects.filter(unit__building__grid=demo.grids[4])
    gaps = gap_households(grid5_households)
    foreign = (
        gaps["recheck_overdue"].first()
        or gaps["dibao"].first()
        or gaps["public_housing"].first()
        or _hh(demo.grids[4], 5)
    )
    building = foreign.unit.building
    grid1 = Member.objects.get(username="grid1")
    Position.objects.create(position_type="building_head", member=grid1, building=building)
    theirs = services.submit(Member.objects.get(username="grid5"), foreign, "job").application
    client = member_client("grid1")
    assert client.get(f"/api/v1/households/{foreign.pk}/").status_code == 200  # a neighbour there
    rows, _ = _all(client)
    assert theirs.pk not in {a["id"] for a in rows["applications"]}
    item = {
        "kind": "application",
        "client_uuid": str(uuid.uuid4()),
        "data": {"household": foreign.pk, "kind": "pension"},
    }
    r = client.post(BATCH, {"items": [item]}, format="json")
    assert r.json()["results"][0]["errors"] == {"household": ["not found"]}
    features = client.get("/api/v1/layers/assistance_gaps/?page_size=500").json()["features"]
    assert building.code not in {f["properties"]["building"] for f in features}
    street = member_client("street").get("/api/v1/layers/assistance_gaps/?page_size=500")
    if any(qs.filter(pk=foreign.pk).exists() for qs in gaps.values()):  # the street sees it
        assert building.code in {f["properties"]["building"] for f in street.json()["features"]}


def test_a_first_sync_is_written_from_plain_rows_as_the_serializers_write_them(
    demo, member_client, monkeypatch
):
    """The offline package is map-only (docs/services.md), so a phone fills its assistance
    store from this feed: a first sync is written from plain column values (no model instance
    per application, event, document or migrant), in the same queries whatever the page's
    size, and each row is exactly what the API's serializers write masked for the phone."""
    from django.db import connection
    from django.db.models import Model
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIRequestFactory

    from api.assistance import AssistanceApplicationSerializer, MigrantSerializer
    from gridsvc.assistance.models import ApplicationDocument, ApplicationEvent

    grid1 = Member.objects.get(username="grid1")
    app = services.submit(grid1, _hh(demo.grids[0], 6), "pension", reason="补缴").application
    services.check(grid1, app.pk, members_count=3, monthly_income=880, documents=["户口簿"])
    ApplicationDocument.objects.create(
        application=app,
        name="收入证明",
        file="assistance/2026/11/x.pdf",
        content_type="application/pdf",
        size=1234,
        sha256="0" * 64,
        uploaded_by=grid1,
    )
    client = member_client("street")
    client.get(FEED + "?limit=5")  # the territory's snapshot row, made once and shared
    built: list[type] = []
    original = Model.from_db.__func__  # type: ignore[attr-defined]

    def spy(cls, db, field_names, values):  # type: ignore[no-untyped-def]
        built.append(cls)
        return original(cls, db, field_names, values)

    for model in (Application, ApplicationEvent, ApplicationDocument, Migrant, Member):
        monkeypatch.setattr(model, "from_db", classmethod(spy))
    counts = {}
    for limit in (5, 500):
        with CaptureQueriesContext(connection) as ctx:
            r = client.get(FEED + f"?limit={limit}")
        assert r.status_code == 200
        counts[limit] = len(ctx.captured_queries)
    body = r.json()
    assert len(body["applications"]) == 500 and body["migrants"]
    assert counts[5] == counts[500] <= 12, counts  # not a query per row
    assert not built, {m.__name__ for m in built}  # (the caller's own row aside)
    monkeypatch.undo()

    rows, _ = _all(client)
    request = APIRequestFactory().get(FEED)
    ctx = {"request": request, "force_masked": True}
    apps = {a["id"]: a for a in rows["applications"]}
    want = Application.objects.filter(pk__in=list(apps)).order_by("id")
    written = AssistanceApplicationSerializer(want, many=True, context=ctx).data
    assert [apps[a["id"]] for a in written] == [dict(a) for a in written]
    assert apps[app.pk]["monthly_income"] == "**" and apps[app.pk]["attachments"]
    assert apps[app.pk]["attachments"][0]["url"].startswith("http://testserver/api/v1/")
    people = {m["id"]: m for m in rows["migrants"]}
    written = MigrantSerializer(
        Migrant.objects.filter(pk__in=list(people)).order_by("id"), many=True, context=ctx
    ).data
    assert [people[m["id"]] for m in written] == [dict(m) for m in written]
