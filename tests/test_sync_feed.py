"""The phone's change feed (issue 16 items 1, 2, 14): a first sync brings everything however
the rows entered the database, paged with a resumable cursor; territory changes (hand-over,
leaving a post, a new position, a boundary re-import) purge the old holder's phone and reach
the new holder's next incremental sync; cases carry handler and due; inbox read state syncs
between a member's devices; the hand-over API."""

from __future__ import annotations

import pytest
from django.db.models import Q
from django.utils import timezone

from gridsvc.accounts.models import Member
from gridsvc.cases.models import Case
from gridsvc.chain import visibility as V
from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.scope import scope_for
from gridsvc.territory.models import Building, Household, Resident
from gridsvc.visits.models import ChangeLog, VisitTask

pytestmark = pytest.mark.django_db
STREAMS = ("tasks", "households", "residents", "cases", "inbox")


def _drain(client, cursor=None, limit: int | None = None, rounds: int = 200) -> dict:
    """Follow the feed until has_more is false: every row and purge id, and the cursor."""
    got: dict = {k: {} for k in STREAMS}
    purge: dict = {k: set() for k in ("households", "residents", "tasks", "cases")}
    pages = 0
    for _ in range(rounds):
        q = [f"since={cursor}"] if cursor else []
        if limit:
            q.append(f"limit={limit}")
        r = client.get("/api/v1/sync/changes/" + ("?" + "&".join(q) if q else ""))
        assert r.status_code == 200, r.content
        body = r.json()
        pages += 1
        for k in STREAMS:
            for row in body[k]:
                got[k][row["id"]] = row
        for k, ids in body["purge"].items():
            purge[k] |= set(ids)
        cursor = body["cursor"]
        if not body["has_more"]:
            return {"cursor": cursor, "purge": purge, "pages": pages, **got}
    raise AssertionError("feed did not end")


def _member(username: str) -> Member:
    return Member.objects.get(username=username)


def _visible_cases(member: Member, open_only: bool = True) -> set[int]:
    scope = scope_for(member)
    in_scope = scope.filter(Case.objects.all()).values("pk")
    qs = Case.objects.filter(Q(pk__in=in_scope) | Q(handler=member) | Q(reported_by=member))
    if open_only:
        qs = qs.exclude(status__in=["closed", "rejected", "void", "resolved", "verified"])
    return set(qs.values_list("pk", flat=True))


def _open_tasks(member: Member) -> set[int]:
    from gridsvc.visits.services import visible_tasks

    return set(
        visible_tasks(scope_for(member), member)
        .filter(status__in=["open", "overdue"])
        .values_list("id", flat=True)
    )


# ---------------------------------------------------------------- 1. first sync
def test_a_first_sync_brings_everything_even_without_change_log_rows(demo, member_client):
    """Rows loaded by COPY / the demo loader / imports have no change-log entry and an old
    updated_at: the first sync reads the tables themselves."""
    ChangeLog.objects.all().delete()
    VisitTask.objects.update(updated_at=timezone.now() - timezone.timedelta(days=400))
    grid1 = _member("grid1")
    me = member_client("grid1").get("/api/v1/me/").json()
    feed = _drain(member_client("grid1"), limit=50)
    assert len(feed["households"]) == me["territory"]["households"] > 100
    want_hh = set(scope_for(grid1).filter(Household.objects.all()).values_list("id", flat=True))
    assert set(feed["households"]) == want_hh
    assert set(feed["residents"]) == set(
        Resident.objects.filter(household__in=want_hh).values_list("id", flat=True)
    )
    hh = next(iter(feed["households"].values()))
    assert set(hh["residents"]) == set(
        Resident.objects.filter(household_id=hh["id"]).values_list("id", flat=True)
    )
    assert _open_tasks(grid1) <= set(feed["tasks"])
    assert {t["status"] for t in feed["tasks"].values()} >= {"open", "done"}
    old_done = VisitTask.objects.filter(
        id__in=feed["tasks"].keys(),
        status="done",
        period_end__lt=timezone.localdate() - timezone.timedelta(days=31),
    )
    assert not old_done.exists(), "only a bounded window of done tasks"
    assert _visible_cases(grid1) <= set(feed["cases"]) and feed["cases"]
    assert feed["pages"] > 4, "paged by limit"


def test_first_sync_residents_follow_the_visibility_matrix(demo, member_client):
    feed = _drain(member_client("grid1"))
    res = Resident.objects.filter(id__in=list(feed["residents"])).exclude(id_number="").first()
    row = feed["residents"][res.id]
    assert row["id_number"] != res.id_number and "*" in row["id_number"]
    assert "birth_date" not in row and row["birth_year"] == res.birth_date.year
    assert all(t not in V.SENSITIVE_TAGS for r in feed["residents"].values() for t in r["tags"])
    # a building head (neighbour) learns no ethnicity, and no tenure of the household
    head = _drain(member_client("bh-001"))
    assert head["residents"] and head["households"]
    assert all("ethnicity" not in r for r in head["residents"].values())
    assert all("tenure" not in h for h in head["households"].values())
    assert not set(head["residents"]) - set(
        scope_for(_member("bh-001")).filter(Resident.objects.all()).values_list("id", flat=True)
    )


def test_a_lost_page_is_fetched_again_with_the_same_cursor(demo, member_client):
    client = member_client("grid1")
    first = client.get("/api/v1/sync/changes/?limit=20").json()
    assert first["has_more"]
    a = client.get(f"/api/v1/sync/changes/?since={first['cursor']}&limit=20").json()
    b = client.get(f"/api/v1/sync/changes/?since={first['cursor']}&limit=20").json()
    assert [h["id"] for h in a["households"]] == [h["id"] for h in b["households"]]
    assert a["households"] and a["cursor"] == b["cursor"]


def test_a_cursor_is_the_members_own(demo, member_client):
    cursor = _drain(member_client("grid1"))["cursor"]
    r = member_client("grid2").get(f"/api/v1/sync/changes/?since={cursor}")
    assert r.status_code == 400 and "since" in r.json()


def test_cases_in_the_feed_carry_handler_and_due(demo, member_client):
    case = Case.objects.filter(handler__isnull=False, due_at__isnull=False).first()
    handler = case.handler
    feed = _drain(member_client(handler.username))
    row = feed["cases"][case.id]
    assert row["handler"] == handler.pk and row["handler_name"] == str(handler)
    assert row["due_at"] == case.due_at.isoformat() and "overdue" in row
    assert row["mine"] is True


# ---------------------------------------------------------------- 2. territory changes
def test_a_hand_over_purges_the_old_phone_and_fills_the_new(
    demo, member_client, django_capture_on_commit_callbacks
):
    old, new = member_client("grid1"), member_client("grid2")
    # a case of the grid that grid1 neither reported nor handles: theirs only by territory
    theirs = Case.objects.filter(grid=demo.grids[0]).exclude(handler__username="grid1").first()
    Case.objects.filter(pk=theirs.pk).update(reported_by=_member("street"))
    before_old = _drain(old)
    before_new = _drain(new)
    grid1_hh = set(before_old["households"])
    grid1_cases = {
        c
        for c in before_old["cases"]
        if c in set(Case.objects.filter(grid=demo.grids[0]).values_list("id", flat=True))
    }
    assert grid1_cases, "the demo has cases in grid 1"
    pos = Position.objects.held_at().get(member__username="grid1", position_type="grid_member")
    with django_capture_on_commit_callbacks(execute=True):
        r = member_client("street").post(
            f"/api/v1/positions/{pos.id}/hand-over/",
            {"member": _member("grid2").pk, "note": "调岗"},
            format="json",
        )
    assert r.status_code == 201, r.content

    gone = _drain(old, before_old["cursor"])
    still = set(
        scope_for(_member("grid1")).filter(Household.objects.all()).values_list("id", flat=True)
    )
    assert gone["purge"]["households"] == grid1_hh - still
    assert gone["purge"]["residents"] >= set(
        Resident.objects.filter(household__in=grid1_hh - still).values_list("id", flat=True)
    )
    from gridsvc.visits.services import visible_tasks

    grid1 = _member("grid1")
    kept_tasks = set(visible_tasks(scope_for(grid1), grid1).values_list("id", flat=True))
    assert set(before_old["tasks"]) - kept_tasks, "the grid's tasks left the old phone"
    assert set(before_old["tasks"]) - kept_tasks <= gone["purge"]["tasks"]
    assert not gone["purge"]["tasks"] & kept_tasks
    visible_now = _visible_cases(_member("grid1"), open_only=False)
    assert theirs.pk in grid1_cases and theirs.pk not in visible_now
    assert grid1_cases - visible_now <= gone["purge"]["cases"]

    came = _drain(new, before_new["cursor"])
    assert grid1_hh <= set(came["households"]), "0 households before the fix"
    assert grid1_cases <= set(came["cases"]), "0 of the grid's cases before the fix"
    assert _open_tasks(_member("grid2")) - set(before_new["tasks"]) <= set(came["tasks"])
    assert not came["purge"]["households"]
    # and the next sync is quiet again
    again = _drain(new, came["cursor"])
    assert not again["households"] and not again["purge"]["households"]


def test_leaving_a_post_purges_and_a_new_post_brings(demo, member_client):
    client = member_client("grid3")
    start = _drain(client)
    assert start["households"]
    building = Building.objects.filter(grid=demo.grids[0]).first()
    Position.objects.create(
        position_type=PositionType.BUILDING_HEAD, member=_member("grid3"), building=building
    )
    got = _drain(client, start["cursor"])
    want = set(Household.objects.filter(unit__building=building).values_list("id", flat=True))
    assert set(got["households"]) == want, "the new post's households, nothing else"
    assert not got["purge"]["households"]

    pos = Position.objects.held_at().get(member__username="grid3", position_type="grid_member")
    pos.valid_to = timezone.now()
    pos.save()
    left = _drain(client, got["cursor"])
    assert left["purge"]["households"] == set(start["households"]) - want
    assert not set(left["households"]) - want


def test_a_building_moved_to_another_grid_moves_between_phones(demo, member_client):
    g1, g2 = member_client("grid1"), member_client("grid2")
    c1, c2 = _drain(g1)["cursor"], _drain(g2)["cursor"]
    building = Building.objects.filter(grid=demo.grids[0]).order_by("id").last()
    moved = set(Household.objects.filter(unit__building=building).values_list("id", flat=True))
    assert moved
    Building.objects.filter(pk=building.pk).update(grid=demo.grids[1])  # a boundary re-import

    out = _drain(g1, c1)
    assert out["purge"]["households"] == moved
    inn = _drain(g2, c2)
    assert set(inn["households"]) == moved
    assert {h["grid"] for h in inn["households"].values()} == {demo.grids[1].pk}
    assert set(inn["residents"]) == set(
        Resident.objects.filter(household__in=moved).values_list("id", flat=True)
    )


# ---------------------------------------------------------------- 3. inbox across devices
def test_inbox_read_state_syncs_between_a_members_devices(demo, member_client):
    from gridsvc.supervision.models import InboxMessage

    member = _member("grid1")
    msg = InboxMessage.objects.create(member=member, kind="other", title="通知")
    phone, tablet = member_client("grid1"), member_client("grid1")
    c_phone, c_tablet = _drain(phone)["cursor"], _drain(tablet)["cursor"]
    assert phone.post(f"/api/v1/inbox/{msg.id}/read/").status_code == 200
    seen = _drain(tablet, c_tablet)
    assert seen["inbox"][msg.id]["read"] is True and seen["inbox"][msg.id]["read_at"]
    assert msg.id in _drain(phone, c_phone)["inbox"]
    assert not _drain(tablet, seen["cursor"])["inbox"], "once"


# ---------------------------------------------------------------- the hand-over API
def _post_hand_over(client, pos: Position, member: Member, **extra):
    return client.post(
        f"/api/v1/positions/{pos.id}/hand-over/", {"member": member.pk, **extra}, format="json"
    )


def test_hand_over_api_is_scoped_and_idempotent(demo, member_client):
    pos = Position.objects.held_at().get(member__username="grid1", position_type="grid_member")
    newcomer = Member.objects.create_user("grid1-next", password="x-long-password-1")
    # a grid member, a building head, the cadre of another grid: not theirs to hand over
    for who in ("grid2", "bh-001", "cadre6"):
        r = _post_hand_over(member_client(who), pos, newcomer)
        assert r.status_code in (403, 404), (who, r.status_code)
    # the cadre of grid 1 cannot hand it to a member holding posts only elsewhere (grid 5's
    # member is "not found", like a nonexistent one), nor to its holder
    for other in ("grid5", "grid1"):
        r = _post_hand_over(member_client("cadre1"), pos, _member(other))
        assert r.status_code == 400 and r.json()["member"] == ["not found"], other
    r = member_client("street").post(
        f"/api/v1/positions/{pos.id}/hand-over/", {"member": 10**9}, format="json"
    )
    assert r.status_code == 400 and r.json()["member"] == ["not found"]

    # the grid's cadre hands the grid member's post over
    r = _post_hand_over(member_client("cadre1"), pos, newcomer, note="调岗")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["closed"]["id"] == pos.id and body["closed"]["valid_to"]
    assert body["opened"]["member"] == newcomer.pk and body["opened"]["valid_to"] is None
    assert body["opened"]["position_type"] == "grid_member"
    # the same again (a retry): the same successor, nothing new
    again = _post_hand_over(member_client("cadre1"), pos, newcomer, note="调岗")
    assert again.status_code == 200 and again.json()["opened"]["id"] == body["opened"]["id"]
    assert Position.objects.filter(member=newcomer).count() == 1
    # to someone else now: a conflict
    r = _post_hand_over(member_client("street"), pos, _member("grid2"))
    assert r.status_code == 409 and "position" in r.json()


def test_hand_over_refuses_a_time_ahead(demo, member_client):
    pos = Position.objects.held_at().get(member__username="grid1", position_type="grid_member")
    newcomer = Member.objects.create_user("grid1-later", password="x-long-password-1")
    ahead = (timezone.now() + timezone.timedelta(days=2)).isoformat()
    r = _post_hand_over(member_client("street"), pos, newcomer, when=ahead)
    assert r.status_code == 400 and "when" in r.json()
    pos.refresh_from_db()
    assert pos.valid_to is None


# ---------------------------------------------------------------- the schema is the contract
def _schema_validator():
    import jsonschema
    from drf_spectacular.generators import SchemaGenerator

    components = SchemaGenerator().get_schema(request=None, public=True)["components"]

    def oas30_to_jsonschema(node):  # nullable: true → a type that allows null
        if isinstance(node, dict):
            node = {k: oas30_to_jsonschema(v) for k, v in node.items()}
            if node.pop("nullable", False):
                node = {"anyOf": [node, {"type": "null"}]}
            return node
        if isinstance(node, list):
            return [oas30_to_jsonschema(v) for v in node]
        return node

    doc = {"$ref": "#/components/schemas/Feed", "components": oas30_to_jsonschema(components)}
    return jsonschema.Draft202012Validator(doc)


def test_feed_pages_match_the_openapi_schema(
    demo, member_client, django_capture_on_commit_callbacks
):
    validator = _schema_validator()
    pages = []
    for who in ("grid1", "bh-001"):
        r = member_client(who).get("/api/v1/sync/changes/?limit=100")
        pages.append(r.json())
    cursor = _drain(member_client("grid2"))["cursor"]
    pos = Position.objects.held_at().get(member__username="grid1", position_type="grid_member")
    with django_capture_on_commit_callbacks(execute=True):
        assert _post_hand_over(member_client("street"), pos, _member("grid2")).status_code == 201
    pages.append(member_client("grid2").get(f"/api/v1/sync/changes/?since={cursor}").json())
    assert pages[-1]["territory_changed"] and pages[-1]["households"]
    for body in pages:
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_a_territory_change_during_a_first_sync_still_brings_everything(demo, member_client):
    client = member_client("grid3")
    page = client.get("/api/v1/sync/changes/?limit=20").json()
    assert page["has_more"]
    building = Building.objects.filter(grid=demo.grids[0]).first()
    Position.objects.create(
        position_type=PositionType.BUILDING_HEAD, member=_member("grid3"), building=building
    )
    rest = _drain(client, page["cursor"], limit=20)
    got = {h["id"] for h in page["households"]} | set(rest["households"])
    want = set(
        scope_for(_member("grid3")).filter(Household.objects.all()).values_list("id", flat=True)
    )
    assert got == want
    assert not rest["purge"]["households"] & want


def test_a_task_or_case_handed_away_from_outside_the_territory_is_purged(demo, member_client):
    """Open tasks assigned to the member and cases they handle outside their territory are on
    their phone only because they are theirs: handed to someone else, they are purged."""
    grid1, grid5 = _member("grid1"), _member("grid5")
    task = VisitTask.objects.filter(
        household__unit__building__grid=demo.grids[4], status="open"
    ).first()
    case = (
        Case.objects.filter(grid=demo.grids[4], status__in=["assigned", "in_progress"])
        .exclude(reported_by=grid1)
        .first()
    )
    now = timezone.now()
    VisitTask.objects.filter(pk=task.pk).update(assigned_member=grid1, updated_at=now)
    Case.objects.filter(pk=case.pk).update(handler=grid1, updated_at=now)
    client = member_client("grid1")
    had = _drain(client)
    assert task.pk in had["tasks"] and case.pk in had["cases"]

    VisitTask.objects.filter(pk=task.pk).update(assigned_member=grid5, updated_at=timezone.now())
    Case.objects.filter(pk=case.pk).update(handler=grid5, updated_at=timezone.now())
    after = _drain(client, had["cursor"])
    assert task.pk in after["purge"]["tasks"] and case.pk in after["purge"]["cases"]
    assert task.pk not in after["tasks"] and case.pk not in after["cases"]
    assert not after["purge"]["households"], "nothing else"


def test_the_feed_says_when_the_offline_package_is_stale(demo, member_client):
    from gridsvc.layers.models import GridChange, OfflinePackage

    grid = demo.grids[0]
    GridChange.objects.filter(grid_id=grid.pk).delete()
    OfflinePackage.objects.filter(grid=grid).delete()
    OfflinePackage.objects.create(
        grid=grid, crs="wgs84", status="ready", etag='"offline-x"', size=10, built_at=timezone.now()
    )
    client = member_client("grid1")
    body = client.get("/api/v1/sync/changes/").json()
    rows = [p for p in body["offline_packages"] if p["grid"] == grid.pk]
    assert rows and rows[0]["etag"] == '"offline-x"' and rows[0]["stale"] is False
    GridChange.objects.create(grid_id=grid.pk, changed_at=timezone.now())
    again = client.get(f"/api/v1/sync/changes/?since={body['cursor']}").json()
    assert [p["stale"] for p in again["offline_packages"] if p["grid"] == grid.pk] == [True]
    assert not [
        p
        for p in member_client("grid2").get("/api/v1/sync/changes/").json()["offline_packages"]
        if p["grid"] == grid.pk
    ], "only the packages of the member's grids"
