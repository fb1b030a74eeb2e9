"""Issue 20 item 9: the district's 创建 office (区创建办) holds chain posts.

A district officer is a ``chain.Position`` of type ``district_officer`` over a
``territory.District`` — with valid_from/valid_to, hand-over, leave and vacancy like every other
post — and every question "is this member a district officer, over which streets" reads the
post held now, not on leave. What the post opens stays what it was: the district's and its
streets' outlines, their 创建 figures and reports side by side, the acknowledgement of those
reports — and no record about a person.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.utils import timezone
from rest_framework.test import APIClient

from gridsvc.accounts.models import Member
from gridsvc.chain.models import Position, PositionType
from gridsvc.territory.models import District

pytestmark = pytest.mark.django_db
CODE = "620103"
OVERVIEW = f"/api/v1/community/district/?code={CODE}&year=2026&month=10"


def _client(username: str) -> APIClient:
    """A fresh client (nothing cached on the member object from an earlier request)."""
    client = APIClient()
    client.force_authenticate(Member.objects.get(username=username))
    return client


def _post() -> Position:
    return Position.objects.held_at().get(
        member__username="district", position_type=PositionType.DISTRICT_OFFICER
    )


def _october():  # type: ignore[no-untyped-def]
    from gridsvc.community.models import UnityReport

    return UnityReport.objects.get(year=2026, kind="monthly", month=10)


def _reads_the_district(client: APIClient) -> bool:
    """Whether ``client`` reads the district as its 创建 office (all four doors agree)."""
    overview = client.get(OVERVIEW).status_code
    listed = client.get("/api/v1/districts/").json()
    features = client.get("/api/v1/districts/map/").json()["features"]
    officers = client.get("/api/v1/community/district-officers/").json()
    reports = client.get("/api/v1/community/reports/").json()
    full = [
        overview == 200,
        any("code" in d for d in listed),
        any(f["properties"]["layer"] == "street" for f in features),
        bool(officers),
        bool(reports),
    ]
    assert all(full) or not any(full), full
    return all(full)


def test_the_demo_district_officer_holds_a_chain_post_over_the_district(demo, member_client):
    post = _post()
    district = District.objects.get(code=CODE)
    assert post.target_field == "district" and post.target == district
    assert post.valid_to is None and not post.on_leave
    assert post.get_position_type_display() == "区创建办"
    # one definition: the old community.DistrictOfficer model is gone
    with pytest.raises(LookupError):
        apps.get_model("community", "DistrictOfficer")
    # listed with the other posts, with its history (a superuser sees every post)
    rows = member_client("admin").get(f"/api/v1/positions/?position_type={post.position_type}")
    assert rows.status_code == 200, rows.content[:300]
    body = rows.json()
    body = body.get("results", body)
    assert [(r["id"], r["target_type"], r["target_id"]) for r in body] == [
        (post.pk, "district", district.pk)
    ]
    # the office's list keeps its shape: the post, its member, the district's code and name
    officers = member_client("district").get("/api/v1/community/district-officers/").json()
    assert officers == [
        {
            "id": post.pk,
            "member": post.member_id,
            "name": "七里河区创建办",
            "district_code": CODE,
            "district_name": "七里河区",
            "on_leave": False,
        }
    ]


def test_a_district_post_is_held_over_a_district_only(demo):
    from gridsvc.chain.services import appoint

    someone = Member.objects.get(username="grid1")
    with pytest.raises(ValidationError):
        appoint(someone, PositionType.DISTRICT_OFFICER, demo.street)
    with pytest.raises(ValidationError):
        appoint(someone, PositionType.GRID_MEMBER, District.objects.get(code=CODE))


def test_handing_the_post_over_moves_the_district_at_once(demo, member_client):
    assert _reads_the_district(_client("district"))
    successor = Member.objects.create(username="district-new", display_name="新任创建办")
    assert not _reads_the_district(_client("district-new"))
    post = _post()
    # the street's dispatcher has no authority over a post above the street: not found
    refused = member_client("street").post(
        f"/api/v1/positions/{post.pk}/hand-over/", {"member": successor.pk}, format="json"
    )
    assert refused.status_code == 404, refused.content
    r = member_client("admin").post(
        f"/api/v1/positions/{post.pk}/hand-over/", {"member": successor.pk}, format="json"
    )
    assert r.status_code == 201, r.content
    assert r.json()["opened"]["target_type"] == "district"
    # the former officer: nothing any more, at once; the report is not even found
    old = _client("district")
    assert not _reads_the_district(old)
    report = _october()
    ack = f"/api/v1/community/reports/{report.pk}/acknowledge/"
    assert old.post(ack, {}, format="json").status_code == 404
    # the successor reads the district and acknowledges the report
    new = _client("district-new")
    assert _reads_the_district(new)
    r = new.post(ack, {"note": "已阅"}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["acknowledged_by"] == successor.pk
    # history: the closed post still names who held it then
    closed = Position.objects.get(pk=post.pk)
    assert closed.valid_to is not None and closed.member.username == "district"


def test_ending_the_post_or_leave_ends_the_access(demo):
    post = _post()
    report = _october()
    ack = f"/api/v1/community/reports/{report.pk}/acknowledge/"
    # on leave: the post is held (listed to nobody who reads the district) but opens nothing
    post.on_leave = True
    post.save(update_fields=["on_leave"])
    client = _client("district")
    assert not _reads_the_district(client)
    assert client.post(ack, {}, format="json").status_code == 404
    post.on_leave = False
    post.save(update_fields=["on_leave"])
    assert _reads_the_district(_client("district"))
    # ended (vacancy): nothing from that moment
    post.valid_to = timezone.now()
    post.save(update_fields=["valid_to"])
    client = _client("district")
    assert not _reads_the_district(client)
    assert client.post(ack, {}, format="json").status_code == 404
    report.refresh_from_db()
    assert report.acknowledged_at is None


def test_the_district_post_reaches_no_record_about_a_person(demo):
    from gridsvc.chain.scope import scope_for
    from gridsvc.chain.visibility import Tier, tier_for
    from gridsvc.visits.services import Assigner

    officer = Member.objects.get(username="district")
    assert scope_for(officer).empty
    assert tier_for(officer) == Tier.NONE  # not STAFF: no masked facts, no work contacts
    client = _client("district")
    for url in (
        "/api/v1/households/",
        "/api/v1/residents/",
        "/api/v1/cases/",
        "/api/v1/visit-tasks/",
        "/api/v1/community/activities/",
        "/api/v1/community/petitions/",
    ):
        r = client.get(url)
        assert r.status_code in (200, 403), (url, r.status_code)
        if r.status_code == 200:
            body = r.json()
            assert (body["count"] if isinstance(body, dict) else len(body)) == 0, url
    assert client.get("/api/v1/community/figures/").status_code == 403
    staff = client.get("/api/v1/staff/")
    assert staff.status_code == 403 or not staff.json().get("results", staff.json()), staff
    # the chain and the visit assignment are the street's posts: the district post is no
    # visiting post and breaks nothing there
    assigner = Assigner.load(timezone.now())
    assert not any(t == PositionType.DISTRICT_OFFICER for t, _ in assigner.holders)


def test_the_migration_turns_district_officer_rows_into_posts(demo):
    """The community migration's data step on rows as they were: a row of a known district
    becomes a held post (once: a post already held is not doubled); a row naming no District
    creates nothing."""
    import importlib

    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    module = importlib.import_module(
        "gridsvc.community.migrations.0009_district_officers_become_positions"
    )
    before = MigrationLoader(connection).project_state(module.Migration.dependencies).apps
    Row = before.get_model("community", "DistrictOfficer")
    with connection.schema_editor() as editor:  # the old table, inside the test's transaction
        editor.create_model(Row)
    cadre = Member.objects.get(username="cadre1")
    officer = Member.objects.get(username="district")
    Row.objects.create(member_id=officer.pk, district_code=CODE, district_name="七里河区")
    Row.objects.create(member_id=cadre.pk, district_code=CODE, district_name="七里河区")
    Row.objects.create(member_id=cadre.pk, district_code="620199", district_name="无此区")
    districts_before = District.objects.count()
    module.to_positions(before, None)
    posts = Position.objects.held_at().filter(position_type=PositionType.DISTRICT_OFFICER)
    assert sorted(posts.values_list("member__username", "district__code")) == [
        ("cadre1", CODE),
        ("district", CODE),
    ]
    assert District.objects.count() == districts_before
    assert _reads_the_district(_client("cadre1"))


def test_the_office_reads_and_acknowledges_its_districts_streets_only(demo):
    """The district's own doors (left out of the scoping matrix's district run): the reports of
    its district's streets, not of a street elsewhere — not listed, not acknowledged, not in
    the overview — and another district's overview is refused."""
    from gridsvc.community.models import UnityReport
    from gridsvc.territory.models import Street

    elsewhere = District.objects.create(code="620104", name="西固区")
    street = Street.objects.create(code="620104001", name="别处街道", district=elsewhere)
    foreign = UnityReport.objects.create(
        street=street,
        year=2026,
        kind="monthly",
        month=10,
        submitted_by=Member.objects.get(username="street"),
    )
    client = _client("district")
    listed = {r["id"] for r in client.get("/api/v1/community/reports/").json()}
    mine = set(UnityReport.objects.filter(street__district__code=CODE).values_list("pk", flat=True))
    assert listed == mine and foreign.pk not in listed
    r = client.post(f"/api/v1/community/reports/{foreign.pk}/acknowledge/", {}, format="json")
    assert r.status_code == 404
    overview = client.get("/api/v1/community/district/?code=620104&year=2026&month=10")
    assert overview.status_code == 403
    codes = [s["code"] for s in client.get(OVERVIEW).json()["streets"]]
    assert codes == [demo.street.code]


def test_me_names_the_district_post_and_no_territory(demo):
    """/me/ (what the web page reads to land the district's office on its 区 tab): the district
    post, held over the district, and no household in the territory."""
    me = _client("district").get("/api/v1/me/").json()
    assert [(p["position_type"], p["target_type"]) for p in me["positions"]] == [
        ("district_officer", "district")
    ]
    assert me["territory"] == {"everything": False, "households": 0}
