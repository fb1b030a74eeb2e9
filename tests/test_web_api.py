"""The server side of the street office page (issue 22): 催报 of missing daily reports with
grid, role and contact on the list; dispatch candidates of a case; the staff directory."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from gridsvc.accounts.models import Member
from gridsvc.supervision.models import InboxMessage

pytestmark = pytest.mark.django_db
REF = "2026-11-24"  # grid3 and grid5 sent no 一日一报 that day in the demo
CHASE = "/api/v1/daily-reports/chase/"
MISSING = "/api/v1/daily-reports/missing/"


def _member(username: str) -> Member:
    return Member.objects.get(username=username)


def _reminders(member: Member, day: str = REF) -> int:
    return InboxMessage.objects.filter(
        member=member, object_type="daily_report", object_id=day
    ).count()


# ---------------------------------------------------------------- 催报
def test_chase_sends_one_reminder_per_member_and_day(demo, member_client):
    grid3 = _member("grid3")
    street = member_client("street")
    first = street.post(CHASE, {"member": grid3.pk, "date": REF}, format="json")
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["member"] == grid3.pk and body["date"] == REF and body["chased_at"]
    msg = InboxMessage.objects.get(pk=body["message"])
    assert msg.member == grid3 and "一日一报" in msg.title and REF in msg.title
    # the member finds it in their inbox
    inbox = member_client("grid3").get("/api/v1/inbox/").json()["results"]
    assert body["message"] in {m["id"] for m in inbox}

    # a second chase that day (another dispatcher, a double click): the first, nothing sent
    again = member_client("street2").post(CHASE, {"member": grid3.pk, "date": REF}, format="json")
    assert again.status_code == 200, again.content
    assert again.json()["message"] == body["message"]
    assert again.json()["chased_at"] == body["chased_at"]
    assert _reminders(grid3) == 1


def test_missing_rows_carry_grid_role_contact_and_chase(demo, member_client):
    grid3 = _member("grid3")
    grid3.phone = "13900001234"
    grid3.save(update_fields=["phone"])
    grid5 = _member("grid5")
    grid5.phone = ""  # the demo gives staff a work phone: this one has none recorded
    grid5.save(update_fields=["phone"])
    street = member_client("street")
    rows = {r["username"]: r for r in street.get(f"{MISSING}?date={REF}").json()["results"]}
    row = rows["grid3"]
    assert (
        row["grid_name"] and row["grid"] == grid3.positions.get(position_type="grid_member").grid_id
    )
    assert row["role"] == "grid_member" and row["role_label"] == "网格员"
    assert row["contact"] == "13900001234", "a staff post's work phone, in full, for the desk"
    assert row["chased"] is False and row["chased_at"] is None
    assert rows["grid5"]["contact"] is None, "no phone recorded"

    street.post(CHASE, {"member": grid3.pk, "date": REF}, format="json")
    rows = {r["username"]: r for r in street.get(f"{MISSING}?date={REF}").json()["results"]}
    assert rows["grid3"]["chased"] is True and rows["grid3"]["chased_at"]
    assert rows["grid5"]["chased"] is False


def test_missing_contacts_not_shown_to_neighbours(demo, member_client):
    """A unit head reads only their own row: no contact for the neighbour tier."""
    uh = Member.objects.filter(username__startswith="uh-").order_by("username").first()
    uh.phone = "13700009999"
    uh.save(update_fields=["phone"])
    rows = member_client(uh.username).get(f"{MISSING}?date={REF}").json()["results"]
    assert all(r["contact"] is None for r in rows)


def test_chase_refused_to_grid_members_and_neighbours(demo, member_client):
    grid3 = _member("grid3")
    for who in ("grid1", "bh-001", "pm-C01"):
        r = member_client(who).post(CHASE, {"member": grid3.pk, "date": REF}, format="json")
        assert r.status_code == 403, (who, r.content)
    assert _reminders(grid3) == 0


def test_chase_outside_territory_or_not_missing_is_404(demo, member_client):
    grid3, grid1 = _member("grid3"), _member("grid1")
    # cadre6's territory is grid 6: grid3 is not there
    r = member_client("cadre6").post(CHASE, {"member": grid3.pk, "date": REF}, format="json")
    assert r.status_code == 404, r.content
    # grid1 sent their report that day
    r = member_client("street").post(CHASE, {"member": grid1.pk, "date": REF}, format="json")
    assert r.status_code == 404, r.content
    # nobody
    r = member_client("street").post(CHASE, {"member": 10**9, "date": REF}, format="json")
    assert r.status_code == 404, r.content
    assert _reminders(grid3) == 0 and _reminders(grid1) == 0
    # cadre1 (a 五员 post over the community) reads grid3's reports and may chase
    r = member_client("cadre1").post(CHASE, {"member": grid3.pk, "date": REF}, format="json")
    assert r.status_code == 201, r.content


def test_chase_bad_input_is_400_naming_the_field(demo, member_client):
    street = member_client("street")
    grid3 = _member("grid3")
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    for body, field in (
        ({"member": grid3.pk, "date": tomorrow}, "date"),
        ({"member": grid3.pk, "date": "2026-13-01"}, "date"),
        ({"member": grid3.pk}, "date"),
        ({"member": "x", "date": REF}, "member"),
        ({"date": REF}, "member"),
    ):
        r = street.post(CHASE, body, format="json")
        assert r.status_code == 400 and field in r.json(), (body, r.content)
    assert _reminders(grid3) == 0


# ---------------------------------------------------------------- the scoping matrix
# (tests/test_scoping_matrix.py reads these: every endpoint is probed for the field roles
# grid1, bh-001, uh-001-1, pm-C01; every id in a body has a foreign-id probe)
def probe_chase(ctx) -> None:  # type: ignore[no-untyped-def]
    """None of the matrix's field roles chases: 403, and nobody gets a reminder."""
    others = sorted(Member.objects.exclude(pk=ctx.member.pk).values_list("pk", flat=True)[:3])
    before = InboxMessage.objects.filter(object_type="daily_report").count()
    for pk in others:
        r = ctx.client.post(CHASE, {"member": pk, "date": REF}, format="json")
        assert r.status_code == 403, (ctx.role, r.status_code, r.content[:200])
    assert InboxMessage.objects.filter(object_type="daily_report").count() == before


def probe_staff(ctx) -> None:  # type: ignore[no-untyped-def]
    """The directory lists only members holding posts in the role's territory; a foreign
    grid or community lists nothing."""
    from gridsvc.territory.models import Community, Grid

    r = ctx.client.get("/api/v1/staff/")
    assert r.status_code == 200, (ctx.role, r.content[:200])
    listed = {row["member"] for row in r.json()["results"]}
    assert listed <= ctx.members, (ctx.role, sorted(listed - ctx.members)[:5])
    assert all(row["contact"] is None for row in r.json()["results"]) or ctx.role == "grid1"
    for gid in ctx.foreign(Grid):
        assert ctx.client.get(f"/api/v1/staff/?grid={gid}").json()["results"] == []
    for cid in ctx.foreign(Community):
        assert ctx.client.get(f"/api/v1/staff/?community={cid}").json()["results"] == []


def body_chase_member(demo, member_client) -> None:  # type: ignore[no-untyped-def]
    """cadre6 (grid 6) chasing grid3 (grid 3) is answered as for nobody at all."""
    client = member_client("cadre6")
    foreign = client.post(CHASE, {"member": _member("grid3").pk, "date": REF}, format="json")
    nobody = client.post(CHASE, {"member": 10**9, "date": REF}, format="json")
    assert foreign.status_code == nobody.status_code == 404, foreign.content
    assert foreign.json() == nobody.json()
    assert _reminders(_member("grid3")) == 0


def probe_candidates(ctx) -> None:  # type: ignore[no-untyped-def]
    """A case the role cannot see has no candidates for it: 404."""
    from gridsvc.cases.models import Case

    for pk in ctx.foreign(Case):
        r = ctx.client.get(f"/api/v1/cases/{pk}/candidates/")
        assert r.status_code == 404, (ctx.role, pk, r.status_code)
    mine = sorted(ctx.cases)[:1]
    for pk in mine:
        assert ctx.client.get(f"/api/v1/cases/{pk}/candidates/").status_code == 200


WEB_API_EXPLICIT = {
    "GET /api/v1/cases/<pk>/candidates/": probe_candidates,
    "POST /api/v1/daily-reports/chase/": probe_chase,
    "GET /api/v1/staff/": probe_staff,
}
WEB_API_BODY_ID_PROBES = {
    ("POST", CHASE, "member"): body_chase_member,
}


# ---------------------------------------------------------------- dispatch candidates
def _household_with_full_chain():  # type: ignore[no-untyped-def]
    """A household whose unit, building and compound all have holders (unit head, building
    head, owners' committee, property manager) at work."""
    from gridsvc.chain.models import Position
    from gridsvc.territory.models import Household

    held = Position.objects.active_at()
    return (
        Household.objects.filter(
            unit__in=held.filter(position_type="unit_head").values("unit_id"),
            unit__building__in=held.filter(position_type="building_head").values("building_id"),
            unit__building__compound__in=held.filter(position_type="property_manager").values(
                "compound_id"
            ),
        )
        .filter(
            unit__building__compound__in=held.filter(position_type="owners_committee").values(
                "compound_id"
            ),
            unit__building__grid__in=held.filter(position_type="community_cadre").values("grid_id"),
        )
        .order_by("id")
        .first()
    )


def _case_handled_by(code: str, handler: str, household=None):  # type: ignore[no-untyped-def]
    from gridsvc.cases.models import Case

    from .cases_helpers import report

    case = report(code, reporter="grid1", household=household or _household_with_full_chain()).case
    Case.objects.filter(pk=case.pk).update(handler=_member(handler))
    case.refresh_from_db()
    return case


def _candidates(client, case):  # type: ignore[no-untyped-def]
    r = client.get(f"/api/v1/cases/{case.pk}/candidates/")
    assert r.status_code == 200, r.content
    return r.json()


def test_candidates_start_at_the_categorys_level_then_up_then_down(demo, member_client):
    """A gas hazard starts at the property manager (category rule): the 物业经理 first, then
    the levels above (社区干部, 网格员, 调委会, 街道), then those below, nearest first — the
    单元长 last."""
    case = _case_handled_by("hazard.gas", "street")
    rows = _candidates(member_client("street"), case)
    roles = [r["role"] for r in rows]
    assert roles[0] == "property_manager", roles
    assert "起办" in rows[0]["reason"] and rows[0]["level_label"] == "物业经理"
    up = ["community_cadre", "grid_member", "mediation_committee", "street_dispatcher"]
    down = ["owners_committee", "building_head", "unit_head"]
    order = [r for r in roles if r in up + down + ["property_manager"]]
    # each kind in chain order: up the chain first, then down from the start, nearest first
    firsts = list(dict.fromkeys(order))
    assert firsts == ["property_manager", *up, *down], firsts
    assert rows[-1]["role"] == "unit_head" and "下一级" in rows[-1]["reason"]
    # the current handler is not offered; nobody twice
    assert _member("street").pk not in {r["member"] for r in rows}
    assert len({r["member"] for r in rows}) == len(rows)
    grid_row = next(r for r in rows if r["role"] == "grid_member")
    assert grid_row["grid"] == case.grid_id and grid_row["grid_name"]
    assert grid_row["level"] == "community_cadre"


def test_fire_hazard_does_not_put_the_unit_head_first(demo, member_client):
    """消防隐患 starts where its category says (安全隐患: 楼长); the 单元长 comes after the
    whole chain above."""
    case = _case_handled_by("hazard.fire", "street")
    rows = _candidates(member_client("street"), case)
    assert rows[0]["role"] == "building_head", [r["role"] for r in rows]
    assert rows[-1]["role"] == "unit_head"


def test_candidates_workload_contact_and_leave(demo, member_client):
    from gridsvc.cases.models import OPEN_STATUSES, Case
    from gridsvc.chain.models import Position

    case = _case_handled_by("hazard.gas", "street")
    cadre = next(
        r for r in _candidates(member_client("street"), case) if r["role"] == "community_cadre"
    )
    cadre_member = Member.objects.get(pk=cadre["member"])
    cadre_member.phone = "13811112222"
    cadre_member.save(update_fields=["phone"])
    # the cadre goes on leave: last, marked
    Position.objects.held_at().filter(member=cadre_member, position_type="community_cadre").update(
        on_leave=True
    )
    rows = _candidates(member_client("street"), case)
    row = next(r for r in rows if r["member"] == cadre_member.pk)
    assert row["on_leave"] is True and "请假" in row["reason"]
    assert all(r["on_leave"] for r in rows[rows.index(row) :]), "people on leave come last"
    assert not any(r["on_leave"] for r in rows[: rows.index(row)])
    assert row["contact"] == "13811112222"
    for r in rows:
        assert (
            r["open_cases"]
            == Case.objects.filter(handler_id=r["member"], status__in=OPEN_STATUSES).count()
        )
    # a building head sees the case (their building) but not others' phones
    bh = next(r for r in rows if r["role"] == "building_head")
    neighbour = Member.objects.get(pk=bh["member"]).username
    seen = _candidates(member_client(neighbour), case)
    assert seen and all(r["contact"] is None for r in seen)


def test_dispute_candidates_put_the_mediator_before_the_committee(demo, member_client):
    from gridsvc.community.models import FiveRole, Team, TeamMembership

    case = _case_handled_by("neighbour.noise", "street")
    rows = _candidates(member_client("street"), case)
    roles = [r["role"] for r in rows]
    mediators = set(
        TeamMembership.objects.filter(
            team=Team.FIVE_MEMBERS, role=FiveRole.MEDIATOR, community_id=case.community_id
        ).values_list("member_id", flat=True)
    )
    assert mediators, "the demo has 五员 调处员"
    assert "mediator" in roles and "mediation_committee" in roles
    assert roles.index("mediator") < roles.index("mediation_committee")
    assert {r["member"] for r in rows if r["role"] == "mediator"} <= mediators


def test_candidates_are_scoped_like_the_case(demo, member_client):
    case = _case_handled_by("hazard.gas", "street")
    grid = case.grid.code[-1]
    other = "grid5" if grid != "5" else "grid6"
    assert member_client(other).get(f"/api/v1/cases/{case.pk}/candidates/").status_code == 404
    assert member_client("street").get("/api/v1/cases/999999999/candidates/").status_code == 404
    assert (
        member_client(f"grid{grid}").get(f"/api/v1/cases/{case.pk}/candidates/").status_code == 200
    )


# ---------------------------------------------------------------- staff directory
STAFF = "/api/v1/staff/"


def test_staff_directory_lists_posts_with_role_place_contact_workload(demo, member_client):
    from gridsvc.cases.models import OPEN_STATUSES, Case
    from gridsvc.chain.models import Position

    grid1 = _member("grid1")
    grid1.phone = "13600001111"
    grid1.save(update_fields=["phone"])
    pos = Position.objects.held_at().get(member=grid1, position_type="grid_member")
    Position.objects.filter(pk=pos.pk).update(on_leave=True)
    body = member_client("street").get(STAFF).json()
    assert body["count"] == len(body["results"]) > 50
    row = next(r for r in body["results"] if r["position"] == pos.pk)
    assert row["role_label"] == "网格员" and row["grid"] == pos.grid_id
    assert row["grid_name"] == pos.grid.name and row["community_name"]
    assert row["contact"] == "13600001111" and row["on_leave"] is True
    assert row["open_cases"] == Case.objects.filter(handler=grid1, status__in=OPEN_STATUSES).count()
    roles = [r["role"] for r in body["results"]]
    assert roles.index("grid_member") < roles.index("unit_head") < roles.index("street_dispatcher")
    # a grid: its own posts and the buildings', units' and compounds' posts inside it
    rows = member_client("street").get(f"{STAFF}?grid={pos.grid_id}").json()["results"]
    assert {r["grid"] for r in rows if r["grid"] is not None} == {pos.grid_id}
    assert {"grid_member", "community_cadre", "building_head", "unit_head"} <= {
        r["role"] for r in rows
    }
    rows = member_client("street").get(f"{STAFF}?role=property_manager").json()["results"]
    assert rows and {r["role_label"] for r in rows} == {"物业经理"}


def test_staff_directory_is_scoped(demo, member_client):
    from gridsvc.chain.models import Position

    g1 = Position.objects.held_at().get(member__username="grid1", position_type="grid_member")
    rows = member_client("grid1").get(STAFF).json()["results"]
    assert rows and {r["grid"] for r in rows if r["grid"] is not None} == {g1.grid_id}
    assert "grid5" not in {Member.objects.get(pk=r["member"]).username for r in rows}
    g5 = Position.objects.held_at().get(member__username="grid5", position_type="grid_member")
    assert member_client("grid1").get(f"{STAFF}?grid={g5.grid_id}").json()["results"] == []
    # a unit head: their own post and the staff of their grid (whom they report to, as
    # /positions/ shows them), no other neighbours, no phones at all
    uh = member_client("uh-001-1").get(STAFF).json()["results"]
    me = _member("uh-001-1").pk
    neighbours = {"unit_head", "building_head", "owners_committee", "property_manager"}
    assert {r["member"] for r in uh if r["role"] in neighbours} == {me}
    assert all(r["contact"] is None for r in uh)


def test_staff_directory_bad_filters_are_400(demo, member_client):
    for q, field in (("grid=x", "grid"), ("community=1.5", "community"), ("role=boss", "role")):
        r = member_client("street").get(f"{STAFF}?{q}")
        assert r.status_code == 400 and field in r.json(), (q, r.content)


# ---------------------------------------------------------------- static files
def test_page_js_is_served_hashed_compressed_and_cached_for_a_year(
    demo, settings, tmp_path, monkeypatch
):
    """Production's storage (settings STORAGES outside tests: gridsvc.static_storage) collected
    into a fresh STATIC_ROOT: the page names app.<hash>.js; whitenoise serves it gzip- or
    brotli-compressed, immutable for a year; the unhashed name only for a minute."""
    import re

    import brotli
    from django.core.management import call_command
    from django.test import Client
    from whitenoise.compress import Compressor

    # brotli at its default best quality takes ~30 s over the bundles: a quicker level here
    monkeypatch.setattr(
        Compressor, "compress_brotli", staticmethod(lambda d: brotli.compress(d, quality=4))
    )
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "gridsvc.static_storage.StaticStorage"},
    }
    call_command("collectstatic", interactive=False, verbosity=0)
    assert (tmp_path / "staticfiles.json").exists()

    client = Client()  # a new handler: whitenoise reads the new STATIC_ROOT
    login = client.post("/login/", {"username": "street", "password": "gridsvc-demo"})
    assert login.status_code == 302
    html = client.get("/").content.decode()
    js = re.search(r'src="(/static/web/app\.([0-9a-f]{12})\.js)"', html)
    assert js, re.findall(r'src="([^"]+)"', html)
    css = re.search(r'href="(/static/web/app\.[0-9a-f]{12}\.css)"', html)
    assert css, re.findall(r'href="([^"]+)"', html)

    plain = client.get("/static/web/app.js")
    r = client.get(js.group(1), HTTP_ACCEPT_ENCODING="gzip")
    assert r.status_code == 200
    assert r["Content-Encoding"] == "gzip"
    assert "max-age=315360000" in r["Cache-Control"] and "immutable" in r["Cache-Control"]
    body = b"".join(r.streaming_content)
    import gzip

    assert gzip.decompress(body) == b"".join(plain.streaming_content)
    assert len(body) < len(gzip.decompress(body)) / 2
    # brotli copies too (whitenoise sends the smaller of .br and .gz the client accepts)
    r = client.get(js.group(1), HTTP_ACCEPT_ENCODING="br")
    assert r["Content-Encoding"] == "br" and "immutable" in r["Cache-Control"]
    # the unhashed name changes with every release: revalidated after a minute
    assert "immutable" not in plain["Cache-Control"]
