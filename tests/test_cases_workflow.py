"""The case workflow through the API: transitions, 409s, the 412 race, exception paths."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from gridsvc.cases import services
from gridsvc.cases.models import Case, CaseEvent, Department, FollowUp, Status
from gridsvc.territory.models import Household

from .cases_helpers import member, report


def _department(code: str) -> int:
    """A seeded department's id, by its code (ids differ once the demo has been reloaded)."""
    return Department.objects.get(code=code).pk


pytestmark = pytest.mark.django_db


def _client(member_client, case: Case):  # type: ignore[no-untyped-def]
    return member_client(case.handler.username)


def _post(client, case: Case, action: str, etag: str | None = None, **body):  # type: ignore[no-untyped-def]
    headers = {"HTTP_IF_MATCH": etag} if etag else {}
    return client.post(f"/api/v1/cases/{case.pk}/actions/{action}/", body, format="json", **headers)


def test_the_whole_happy_path_leaves_an_event_per_step(demo, member_client):
    case = report("neighbour.noise").case
    handler = _client(member_client, case)
    street = member_client("street")
    assert _post(handler, case, "start").status_code == 200
    r = _post(handler, case, "resolve", outcome="双方协商,晚十点后不再装修")
    assert r.status_code == 200 and r.data["status"] == "resolved"
    fu = FollowUp.objects.get(case=case)
    assert fu.done_at is None and fu.assigned_to is not None
    assert _post(street, case, "verify", satisfied=True).status_code == 200
    r = _post(street, case, "close")
    assert r.data["status"] == "closed" and r.data["resolved_level"] == case.level
    kinds = list(case.events.values_list("kind", flat=True))
    assert kinds == ["report", "route", "start", "resolve", "verify", "close"]
    timeline = street.get(f"/api/v1/cases/{case.pk}/events/").data
    assert [e["kind"] for e in timeline["events"]] == kinds and timeline["chain"]


def test_resolving_needs_an_outcome(demo, member_client):
    case = report().case
    r = _post(_client(member_client, case), case, "resolve", outcome="  ")
    assert r.status_code == 400 and "outcome" in r.data
    case.refresh_from_db()
    assert case.status == Status.ASSIGNED


ALL_STATUSES = [s for s in Status.values]


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_every_illegal_transition_is_refused_with_the_allowed_ones(demo, status):
    case = report().case
    Case.objects.filter(pk=case.pk).update(status=status)
    case.refresh_from_db()
    allowed = set(services.allowed_actions(case))
    for action in services.ACTIONS:
        if action in allowed:
            continue
        with pytest.raises(services.IllegalTransition) as err:
            services.act(case.pk, action, None)
        assert err.value.status_code == 409 and set(err.value.allowed) == allowed
    case.refresh_from_db()
    assert case.status == status and case.events.count() == 2, "nothing changed"


def test_illegal_transition_over_http_is_409_listing_allowed(demo, member_client):
    case = report().case
    r = _post(_client(member_client, case), case, "close")
    assert r.status_code == 409
    assert "resolve" in r.data["allowed"] and "close" not in r.data["allowed"]


def test_two_dispatchers_racing_the_second_gets_412(demo, member_client):
    case = report().case
    street = member_client("street")
    etag = street.get(f"/api/v1/cases/{case.pk}/")["ETag"]
    one = _post(
        street, case, "set_deadline", etag, due_at=(timezone.now() + timedelta(days=2)).isoformat()
    )
    assert one.status_code == 200
    two = _post(street, case, "transfer", etag, department=_department("police"))
    assert two.status_code == 412 and two.data["current_version"] == case.version + 1
    case.refresh_from_db()
    assert case.status == Status.ASSIGNED and case.department_id is None
    fresh = _post(street, case, "supervise", two["ETag"])
    assert fresh.status_code == 200


def test_unsatisfied_follow_up_reopens_the_case_to_the_same_handler(demo, member_client):
    case = report().case
    handler = _client(member_client, case)
    _post(handler, case, "resolve", outcome="已处理")
    r = _post(member_client("street"), case, "verify", satisfied=False, note="仍然很吵")
    assert r.status_code == 200 and r.data["status"] == "reopened"
    assert r.data["reworked_count"] == 1 and r.data["handler"] == case.handler_id
    assert r.data["due_at"] is not None
    assert _post(handler, case, "resolve", outcome="第二次处理").data["status"] == "resolved"


def test_reject_needs_a_reason_and_reopen_brings_it_back(demo, member_client):
    case = report().case
    street = member_client("street")
    assert _post(street, case, "reject").status_code == 400
    assert _post(street, case, "reject", reason="不属于受理范围").data["status"] == "rejected"
    r = _post(street, case, "reopen", reason="当事人补充材料")
    assert r.data["status"] == "reopened" and r.data["reopened_count"] == 1


def test_send_back_returns_the_case_to_the_dispatch_queue(demo, member_client):
    case = report().case
    handler = _client(member_client, case)
    r = _post(handler, case, "send_back", reason="不是本单元的住户")
    assert r.status_code == 200 and r.data["status"] == "reported" and r.data["handler"] is None
    assert r.data["sent_back_count"] == 1
    queue = member_client("street").get("/api/v1/dispatch/queue/?kind=unrouted").data["results"]
    assert case.pk in [c["id"] for c in queue]
    grid_member = member("grid1")
    r = _post(member_client("street"), case, "assign", member=grid_member.pk)
    assert r.status_code == 200 and r.data["handler"] == grid_member.pk


def test_transfer_to_an_outside_department_and_its_answer(demo, member_client):
    case = report("wages").case
    street = member_client("street")
    assert _post(street, case, "transfer").status_code == 400
    r = _post(street, case, "transfer", department=_department("labour"))
    assert r.data["status"] == "transferred" and r.data["department_name"]
    r = _post(street, case, "resolve", outcome="劳动监察大队责令支付")
    assert r.data["resolved_level"] == "department"


@pytest.mark.parametrize("approve", [True, False])
def test_extension_is_approved_or_refused_by_the_level_above(demo, member_client, approve):
    case = report().case
    before = case.due_at
    handler = _client(member_client, case)
    r = handler.post(
        f"/api/v1/cases/{case.pk}/requests/",
        {"kind": "extension", "reason": "等待物业维修配件", "amount": 2, "unit": "working_days"},
        format="json",
    )
    assert r.status_code == 201
    req_id = r.data["id"]
    own = handler.post(f"/api/v1/case-requests/{req_id}/decide/", {"approve": True}, format="json")
    assert own.status_code == 403, "nobody approves their own request"
    d = member_client("street").post(
        f"/api/v1/case-requests/{req_id}/decide/", {"approve": approve, "note": "ok"}, format="json"
    )
    assert d.status_code == 200 and d.data["state"] == ("approved" if approve else "refused")
    case.refresh_from_db()
    assert (case.due_at > before) is approve
    assert case.extended_count == int(approve)
    assert case.events.filter(kind=f"extension_{'approved' if approve else 'refused'}").exists()


@pytest.mark.parametrize("approve", [True, False])
def test_hold_and_void_need_approval(demo, member_client, approve):
    case = report().case
    handler = _client(member_client, case)
    r = handler.post(
        f"/api/v1/cases/{case.pk}/requests/", {"kind": "hold", "reason": "历史遗留"}, format="json"
    )
    assert r.status_code == 400 and "review_date" in r.data
    day = (timezone.localdate() + timedelta(days=30)).isoformat()
    r = handler.post(
        f"/api/v1/cases/{case.pk}/requests/",
        {"kind": "hold", "reason": "历史遗留问题,待旧改", "review_date": day},
        format="json",
    )
    member_client("street").post(
        f"/api/v1/case-requests/{r.data['id']}/decide/", {"approve": approve}, format="json"
    )
    case.refresh_from_db()
    assert case.status == (Status.ON_HOLD if approve else Status.ASSIGNED)
    if approve:
        assert case.due_at is None and str(case.hold_until) == day
        assert services.act(case.pk, "resume", member("street")).status == Status.IN_PROGRESS
    other = report("neighbour.leak").case
    r = _client(member_client, other).post(
        f"/api/v1/cases/{other.pk}/requests/", {"kind": "void", "reason": "虚假上报"}, format="json"
    )
    member_client("street").post(
        f"/api/v1/case-requests/{r.data['id']}/decide/", {"approve": approve}, format="json"
    )
    other.refresh_from_db()
    assert (other.status == Status.VOID) is approve


def test_on_the_spot_needs_photos_before_and_after(demo, member_client):
    client = member_client("grid1")
    hh = Household.objects.filter(unit__building__grid=demo.grids[0]).first()
    body = {
        "category": "hazard.fire",
        "title": "楼道堆物",
        "household": hh.pk,
        "on_the_spot": True,
        "outcome": "已当场清理",
    }
    assert client.post("/api/v1/cases/", body, format="json").status_code == 400
    photo = b"\xff\xd8\xff\xe0" + b"0" * 100
    r = client.post(
        "/api/v1/cases/",
        {
            **body,
            "photos_before": SimpleUploadedFile("b.jpg", photo, "image/jpeg"),
            "photos_after": SimpleUploadedFile("a.jpg", photo, "image/jpeg"),
        },
        format="multipart",
    )
    assert r.status_code == 201, r.data
    case = Case.objects.get(pk=r.data["case"]["id"])
    assert case.on_the_spot and case.status == Status.RESOLVED and case.handler.username == "grid1"
    assert sorted(case.attachments.values_list("role", flat=True)) == ["after", "before"]


def test_mediation_record_requires_the_law_s_contents_and_tracks_honouring(demo, member_client):
    case = report("neighbour.leak").case
    client = _client(member_client, case)
    url = f"/api/v1/cases/{case.pk}/mediation/"
    r = client.put(url, {"parties": [{"name": "张三"}], "facts": "漏水"}, format="json")
    assert r.status_code == 400
    for field in (
        "parties",
        "issues",
        "terms",
        "performance_method",
        "performance_deadline",
        "signed_on",
    ):
        assert field in r.data
    signed = timezone.localdate()
    r = client.put(
        url,
        {
            "parties": [{"name": "张三", "role": "申请人"}, {"name": "李四", "role": "被申请人"}],
            "facts": "601室卫生间漏水至501室",
            "issues": "维修费用承担",
            "terms": "李四承担维修费800元并于一周内修复防水",
            "performance_method": "现金支付并由物业见证维修",
            "performance_deadline": (signed + timedelta(days=7)).isoformat(),
            "signed_on": signed.isoformat(),
        },
        format="json",
    )
    assert r.status_code == 201, r.data
    assert r.data["court_confirmation_deadline"] == (signed + timedelta(days=30)).isoformat()
    r = client.patch(url, {"honoured": True, "honoured_note": "已履行"}, format="json")
    assert r.status_code == 200 and r.data["honoured"] is True and r.data["honoured_checked_on"]
    assert case.events.filter(kind="mediation_follow_up").exists()


def test_members_of_another_grid_do_not_see_the_case(demo, member_client):
    hh = Household.objects.filter(unit__building__grid=demo.grids[0]).first()
    case = report(household=hh).case
    assert member_client("grid1").get(f"/api/v1/cases/{case.pk}/").status_code == 200
    assert member_client("grid2").get(f"/api/v1/cases/{case.pk}/").status_code == 404
    ids = [
        c["id"] for c in member_client("grid2").get("/api/v1/cases/?page_size=500").data["results"]
    ]
    assert case.pk not in ids
    r = member_client("grid2").post(f"/api/v1/cases/{case.pk}/actions/escalate/", {}, format="json")
    assert r.status_code == 404


def test_parties_are_masked_for_the_territory_but_clear_for_the_handler(demo, member_client):
    case = report(parties=[{"name": "张三丰", "phone": "13800000000"}]).case
    mine = _client(member_client, case).get(f"/api/v1/cases/{case.pk}/").data
    assert mine["parties"][0]["name"] == "张三丰"
    theirs = member_client("street").get(f"/api/v1/cases/{case.pk}/").data
    assert theirs["parties"][0]["name"] == "张**" and "phone" not in theirs["parties"][0]


def test_report_over_http_answers_duplicates_and_names_bad_fields(demo, member_client):
    client = member_client("grid1")
    hh = Household.objects.filter(unit__building__grid=demo.grids[0]).first()
    n = Case.objects.count()
    first = client.post(
        "/api/v1/cases/",
        {"category": "neighbour.leak", "title": "漏水", "household": hh.pk},
        format="json",
    )
    assert first.status_code == 201
    again = client.post(
        "/api/v1/cases/",
        {"category": "neighbour.leak", "title": "漏水2", "household": hh.pk},
        format="json",
    )
    assert first.data["case"]["id"] in [d["id"] for d in again.data["duplicates"]]
    bad = client.post(
        "/api/v1/cases/",
        {"category": "nope", "title": "x", "lon": 103.8, "lat": 36.0},
        format="json",
    )
    assert bad.status_code == 400 and "category" in bad.data
    bad = client.post(
        "/api/v1/cases/",
        {"category": "neighbour", "title": "x", "lon": 500, "lat": 36},
        format="json",
    )
    assert bad.status_code == 400 and "lon" in bad.data
    other = Household.objects.filter(unit__building__grid=demo.grids[1]).first()
    bad = client.post(
        "/api/v1/cases/",
        {"category": "neighbour", "title": "x", "household": other.pk},
        format="json",
    )
    assert bad.status_code == 400 and "household" in bad.data
    assert Case.objects.count() == n + 2, "refused reports store nothing"


def test_bulk_dispatch_and_my_cases(demo, member_client):
    a, b = report().case, report("neighbour.leak").case
    street = member_client("street")
    grid1 = member("grid1")
    r = street.post(
        "/api/v1/dispatch/assign/", {"ids": [a.pk, b.pk, 999999], "member": grid1.pk}, format="json"
    )
    assert r.status_code == 200
    assert [x["ok"] for x in r.data["results"]] == [True, True, False]
    mine = member_client("grid1").get("/api/v1/cases/?mine=true").data["results"]
    assert {a.pk, b.pk} <= {c["id"] for c in mine}
    assert CaseEvent.objects.filter(case=a, kind="assign").exists()
    assert CaseEvent.objects.filter(case=b, kind="assign").count() == 1


def test_bulk_dispatch_with_versions_leaves_a_changed_case_alone(demo, member_client):
    a, b = report().case, report("neighbour.leak").case
    seen = {str(a.pk): a.version, str(b.pk): b.version}
    services.act(b.pk, "comment", member("street"), note="someone else got there first")
    r = member_client("street").post(
        "/api/v1/dispatch/escalate/",
        {"ids": [a.pk, b.pk], "versions": seen, "note": "两天未受理"},
        format="json",
    )
    assert r.status_code == 200
    by_id = {x["id"]: x for x in r.data["results"]}
    assert by_id[a.pk]["ok"] and not by_id[b.pk]["ok"] and by_id[b.pk]["status"] == 412
    assert not CaseEvent.objects.filter(case=b, kind="escalate").exists()
    bad = member_client("street").post(
        "/api/v1/dispatch/escalate/", {"ids": [a.pk], "versions": [1]}, format="json"
    )
    assert bad.status_code == 400 and "versions" in bad.data


def test_case_list_as_geojson_for_map_clients(demo, member_client):
    case = report("neighbour.noise").case
    r = member_client("grid1").get("/api/v1/cases/?format=geojson&crs=gcj02")
    assert r.status_code == 200 and r["Content-Type"].startswith("application/geo+json")
    body = r.json()
    assert body["type"] == "FeatureCollection"
    feature = next(f for f in body["features"] if f["id"] == case.pk)
    lon, lat = feature["geometry"]["coordinates"]
    # GCJ-02 is shifted a few hundred metres from the stored WGS84 point
    assert 0.0005 < abs(lon - case.location.x) + abs(lat - case.location.y) < 0.02
    street = member_client("street").get("/api/v1/cases/?format=geojson", HTTP_ACCEPT="*/*")
    assert street.status_code == 200


# ------------------------------------------------------------------ ids in request bodies
def _case_in(grid, reporter: str, code: str = "neighbour.noise") -> Case:  # type: ignore[no-untyped-def]
    hh = Household.objects.filter(unit__building__grid=grid).order_by("id").first()
    return report(code, reporter=reporter, household=hh).case


def test_merge_into_a_case_of_another_grid_is_not_found_and_touches_nothing(demo, member_client):
    """Issue 15 item 7: grid2 merged its case into a closed case of grid 5 and wrote an event
    there. A foreign id reads exactly like a nonexistent one."""
    mine = _case_in(demo.grids[1], "grid2")
    foreign = _case_in(demo.grids[4], "grid5")
    events = CaseEvent.objects.filter(case=foreign).count()
    grid2 = member_client("grid2")
    r = _post(grid2, mine, "merge", into=foreign.pk)
    assert r.status_code == 400, r.content
    gone = _post(grid2, mine, "merge", into=99_999_999)
    assert r.json() == gone.json() and r.json()["into"] == ["not found"]
    mine.refresh_from_db()
    assert mine.status != Status.MERGED and mine.merged_into_id is None
    assert CaseEvent.objects.filter(case=foreign).count() == events
    # a case of its own grid is fine
    other = _case_in(demo.grids[1], "grid2", "neighbour.leak")
    assert _post(grid2, mine, "merge", into=other.pk).status_code == 200


def test_an_assignee_outside_the_case_s_territory_is_not_found_and_not_named(demo, member_client):
    case = _case_in(demo.grids[1], "grid2")
    outsider = member("grid5")
    street = member_client("street")
    r = _post(street, case, "assign", member=outsider.pk)
    assert r.status_code == 400 and r.json()["member"] == ["not found"], r.content
    assert outsider.display_name not in r.content.decode()
    assert r.json() == _post(street, case, "assign", member=99_999_999).json()
    case.refresh_from_db()
    assert case.handler_id != outsider.pk
    assert _post(street, case, "assign", member=member("grid2").pk).status_code == 200


def test_a_transfer_target_of_another_street_is_not_found(demo, member_client):
    from gridsvc.cases.models import Department
    from gridsvc.territory.models import Street

    elsewhere = Street.objects.create(code="620103099", name="别的街道")
    foreign = Department.objects.create(code="other-police", name="别处派出所", street=elsewhere)
    case = report("wages").case
    r = _post(member_client("street"), case, "transfer", department=foreign.pk)
    assert r.status_code == 400 and r.json()["department"] == ["not found"]
    case.refresh_from_db()
    assert case.status != Status.TRANSFERRED


def test_bulk_dispatch_refuses_foreign_case_ids_and_foreign_assignees(demo, member_client):
    mine = _case_in(demo.grids[5], "grid6")
    foreign = _case_in(demo.grids[4], "grid5")
    cadre6 = member_client("cadre6")  # a grid cadre only
    r = cadre6.post(
        "/api/v1/dispatch/assign/",
        {"ids": [mine.pk, foreign.pk], "member": member("grid6").pk},
        format="json",
    )
    by_id = {x["id"]: x for x in r.json()["results"]}
    assert by_id[foreign.pk] == {
        "id": foreign.pk,
        "ok": False,
        "status": 404,
        "detail": "not found",
    }
    assert not CaseEvent.objects.filter(case=foreign, kind="assign").exists()
    r = member_client("street").post(
        "/api/v1/dispatch/assign/", {"ids": [mine.pk], "member": member("grid5").pk}, format="json"
    )
    (only,) = r.json()["results"]
    assert only["ok"] is False and only["member"] == ["not found"]
    assert not CaseEvent.objects.filter(case=mine, kind="assign", actor__username="street").exists()


def test_duplicates_in_a_report_answer_only_name_visible_cases(demo, member_client):
    from .cases_helpers import point_on_shared_edge

    edge = point_on_shared_edge(demo.grids[0], demo.grids[1])
    foreign = report("neighbour.leak", reporter="grid2", location=edge).case
    Case.objects.filter(pk=foreign.pk).update(
        grid=demo.grids[1],
        compound=None,
        building=None,
        unit=None,
        household=None,
        handler=member("grid2"),
    )
    r = member_client("grid1").post(
        "/api/v1/cases/",
        {"category": "neighbour.leak", "title": "漏水", "lon": edge.x, "lat": edge.y},
        format="json",
    )
    assert r.status_code == 201, r.content
    mine = Case.objects.get(pk=r.json()["case"]["id"])
    found = services.find_duplicates(
        mine.category, mine.location, mine.reported_at, exclude_id=mine.pk
    )
    assert found.filter(pk=foreign.pk).exists(), "the neighbour grid's case is a duplicate"
    assert foreign.pk not in {d["id"] for d in r.json()["duplicates"]}
    assert foreign.title not in r.content.decode() or foreign.title == "漏水"


def test_a_case_outside_every_grid_is_placed_and_assigned_to_that_grid_s_member(
    demo, member_client
):
    """The assignee is checked against the grid the case is being placed in."""
    from django.contrib.gis.geos import Point

    east = max(g.boundary.extent[2] for g in demo.grids)
    p = Point(east + 0.01, demo.grids[0].boundary.centroid.y, srid=4326)
    case = report("neighbour.noise", location=p).case
    assert case.grid_id is None
    street = member_client("street")
    r = _post(street, case, "assign", member=member("grid5").pk, grid=demo.grids[1].pk)
    assert r.status_code == 400 and r.json()["member"] == ["not found"]
    r = _post(street, case, "assign", member=member("grid2").pk, grid=demo.grids[1].pk)
    assert r.status_code == 200, r.content
    assert r.data["grid"] == demo.grids[1].pk and r.data["handler"] == member("grid2").pk
