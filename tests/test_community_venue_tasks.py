"""Issue 20 item 6: the religious venues' joint monthly visits (VenueTask) on the household
tasks' clock (overdue 逾期, missed 漏访), re-picked with the positions, in the phone's feed; the
feed's group-ledger and language streams read as the REST lists read them; the demo's venue
rule and its year of tasks."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core.management import call_command

from gridsvc.accounts.models import Member
from gridsvc.chain.models import Position
from gridsvc.community.models import GroupMember, ResidentLanguage, VenueTask
from gridsvc.community.venues import update_venue_statuses
from gridsvc.territory.models import Place
from gridsvc.visits.models import RELIGIOUS_VENUES, VisitRule
from gridsvc.visits.services import generate_tasks
from gridsvc.visits.tasks import run_daily

pytestmark = pytest.mark.django_db
BASE = "/api/v1/community"
# 楼长, 单元长, 物业, 业委会; 户长 is a chain level without a login (a resident), and cadre4
# holds no post at all
NEIGHBOURS = ("bh-001", "uh-001-1", "pm-C01", "oc-C03", "cadre4")


def _rule(code: str = "venues-test", window: int = 10, grace: int = 3) -> VisitRule:
    rule = VisitRule(
        code=code,
        name="每个月和清真寺共同走访(测试)",
        target_group=RELIGIOUS_VENUES,
        frequency="monthly",
        window_days=window,
        grace_days=grace,
        visitor_level="grid_member",
        joint_visit=True,
    )
    rule.full_clean()
    rule.save()
    return rule


def _mosques(demo) -> list[Place]:  # type: ignore[no-untyped-def]
    return list(
        Place.objects.filter(
            community=demo.community, kind__in=["mosque", "religious_venue"], grid__isnull=False
        ).order_by("pk")
    )


def _status(rule: VisitRule, place: Place, period: str) -> str:
    return VenueTask.objects.get(rule=rule, place=place, period=period).status


def _rows(r):  # type: ignore[no-untyped-def]
    assert r.status_code == 200, r.content[:300]
    body = r.json()
    return body["results"] if isinstance(body, dict) else body


def _all_rows(client, url: str) -> list[dict]:  # type: ignore[no-untyped-def]
    out, page = [], 1
    while True:
        r = client.get(f"{url}{'&' if '?' in url else '?'}page={page}&page_size=500")
        assert r.status_code == 200, r.content[:300]
        body = r.json()
        if isinstance(body, list):
            return body
        out += body["results"]
        if not body.get("next"):
            return out
        page += 1


def _feed(client, limit: int = 500, since: str | None = None) -> dict[str, list[dict]]:  # type: ignore[no-untyped-def]
    """Every row of the community feed from ``since``, page by page (has_more); the last
    cursor under ``"cursor"``."""
    rows: dict[str, list[dict]] = {}
    cursor = since
    while True:
        url = f"{BASE}/changes/?limit={limit}" + (f"&since={cursor}" if cursor else "")
        r = client.get(url)
        assert r.status_code == 200, r.content[:300]
        body = r.json()
        for key, value in body.items():
            if isinstance(value, list):
                rows.setdefault(key, []).extend(value)
        cursor = body["cursor"]
        if not body["has_more"]:
            rows["cursor"] = cursor  # type: ignore[assignment]
            return rows


# ---------------------------------------------------------------- the clock
def test_the_daily_run_moves_venue_tasks_overdue_then_missed_and_a_late_visit_completes(
    demo, member_client
):
    a, b = _mosques(demo)[:2]
    rule = _rule()
    generate_tasks(date(2027, 1, 1), date(2027, 1, 31), rules=[rule])
    assert _status(rule, a, "2027-01") == _status(rule, b, "2027-01") == "open"
    jan_a = VenueTask.objects.get(rule=rule, place=a, period="2027-01")
    assert jan_a.due_on == date(2027, 1, 10)

    # on the due day still open; the day after, the daily run makes it overdue (逾期)
    run_daily(date(2027, 1, 10))
    assert _status(rule, a, "2027-01") == "open"
    before = jan_a.updated_at
    moved = run_daily(date(2027, 1, 11))
    assert moved["venue_overdue"] >= 2 and moved["venue_missed"] == 0
    jan_a.refresh_from_db()
    assert jan_a.status == "overdue" and jan_a.updated_at > before
    assert _status(rule, b, "2027-01") == "overdue"

    # a late visit inside the period still completes the overdue task
    cadre = member_client("cadre1")
    r = cadre.post(
        f"{BASE}/venue-visits/", {"place": a.pk, "date": "2027-01-20", "joint": True}, format="json"
    )
    assert r.status_code == 201, r.content
    jan_a.refresh_from_db()
    assert (jan_a.status, jan_a.done_by_id) == ("done", r.json()["id"])
    row = cadre.get(f"{BASE}/venue-tasks/{jan_a.pk}/").json()
    assert row["status"] == "done" and row["done_by"] == r.json()["id"]

    # inside the grace days (period end + 3) not yet missed; after them 漏访
    assert update_venue_statuses(date(2027, 2, 3))["venue_missed"] == 0
    assert _status(rule, b, "2027-01") == "overdue"
    update_venue_statuses(date(2027, 2, 4))
    assert _status(rule, b, "2027-01") == "missed"
    # a done task never moves
    assert _status(rule, a, "2027-01") == "done"
    assert cadre.get(f"{BASE}/venue-tasks/?status=missed&period=2027-01").json()


def test_after_a_gap_the_clock_catches_up_and_a_visit_of_the_period_closes_a_missed_task(
    demo, member_client
):
    a, b = _mosques(demo)[:2]
    rule = _rule(window=10, grace=3)
    generate_tasks(date(2027, 3, 1), date(2027, 4, 30), rules=[rule])
    # the worker was down from 1 March to 20 April: one run catches up
    moved = update_venue_statuses(date(2027, 4, 20))
    # March: straight from open to missed (never seen overdue); April: overdue
    assert {_status(rule, p, "2027-03") for p in (a, b)} == {"missed"}
    assert {_status(rule, p, "2027-04") for p in (a, b)} == {"overdue"}
    assert moved["venue_missed"] >= 2 and moved["venue_overdue"] >= 2
    # running again changes nothing
    assert update_venue_statuses(date(2027, 4, 20)) == {"venue_overdue": 0, "venue_missed": 0}
    # a visit made in March and recorded late (the phone was offline) closes March's task
    r = member_client("cadre1").post(
        f"{BASE}/venue-visits/", {"place": a.pk, "date": "2027-03-15"}, format="json"
    )
    assert r.status_code == 201, r.content
    assert _status(rule, a, "2027-03") == "done"
    assert _status(rule, b, "2027-03") == "missed"
    # a visit outside the period closes nothing of it
    assert _status(rule, a, "2027-04") == "overdue"


def test_status_written_in_bulk_moves_updated_at(demo):
    a = _mosques(demo)[0]
    rule = _rule()
    generate_tasks(date(2027, 5, 1), rules=[rule])
    task = VenueTask.objects.get(rule=rule, place=a, period="2027-05")
    before = task.updated_at
    VenueTask.objects.filter(pk=task.pk).update(status=VenueTask.Status.OVERDUE)
    task.refresh_from_db()
    assert task.updated_at > before


# ---------------------------------------------------------------- the visitor follows the post
def test_a_grid_members_leave_and_hand_over_move_open_venue_tasks_not_done_ones(demo):
    from gridsvc.accounts.models import Member
    from gridsvc.chain.services import hand_over

    a = _mosques(demo)[0]
    rule = _rule()
    generate_tasks(date(2027, 6, 1), date(2027, 7, 31), rules=[rule])
    june = VenueTask.objects.get(rule=rule, place=a, period="2027-06")
    july = VenueTask.objects.get(rule=rule, place=a, period="2027-07")
    post = Position.objects.get(pk=june.assigned_position_id)
    assert post.position_type == "grid_member" and post.grid_id == a.grid_id
    VenueTask.objects.filter(pk=june.pk).update(status=VenueTask.Status.DONE)
    update_venue_statuses(date(2027, 7, 15))  # July overdue: still re-picked
    july.refresh_from_db()
    assert july.status == "overdue"
    stamp = july.updated_at

    post.on_leave = True  # 请假: the level above takes the venue's visit
    post.save()
    july.refresh_from_db()
    june.refresh_from_db()
    assert july.assigned_member_id != post.member_id and july.assigned_level != "grid_member"
    assert july.updated_at > stamp
    assert june.assigned_member_id == post.member_id  # done: stays with who had it

    post.on_leave = False
    post.save()
    july.refresh_from_db()
    assert july.assigned_member_id == post.member_id
    # 交接: the new holder gets it straight away
    new = Member.objects.create(username="gm-venue-new", display_name="新网格员")
    hand_over(post, new)
    july.refresh_from_db()
    assert (july.assigned_member_id, july.assigned_level) == (new.pk, "grid_member")


# ---------------------------------------------------------------- the phone's feed
def test_the_feed_brings_own_venue_tasks_and_again_after_a_status_change(demo, member_client):
    a = _mosques(demo)[0]
    rule = _rule()
    generate_tasks(date(2027, 8, 1), rules=[rule])
    task = VenueTask.objects.get(rule=rule, place=a, period="2027-08")
    holder = task.assigned_member
    phone = member_client(holder.username)
    first = _feed(phone, limit=7)
    ids = [t["id"] for t in first["venue_tasks"]]
    assert task.pk in ids and len(ids) == len(set(ids)) > 7  # paged by (updated_at, id)
    # a grid member's phone: their own tasks (the REST list also has the grid's others')
    own = set(VenueTask.objects.filter(assigned_member=holder).values_list("pk", flat=True))
    assert set(ids) == own
    rest = {t["id"] for t in _all_rows(phone, f"{BASE}/venue-tasks/")}
    assert own <= rest
    sept = VenueTask.objects.create(
        **{
            f: getattr(task, f)
            for f in ("place", "street", "community", "grid", "recorded_by", "due_on")
        },
        rule=task.rule,
        period="2027-09",
        period_start=date(2027, 9, 1),
        period_end=date(2027, 9, 30),
        assigned_member=Member.objects.get(username="cadre1"),
    )
    assert sept.pk in {t["id"] for t in _all_rows(phone, f"{BASE}/venue-tasks/")}
    assert sept.pk not in {t["id"] for t in _feed(phone)["venue_tasks"]}
    row = next(t for t in first["venue_tasks"] if t["id"] == task.pk)
    assert row["status"] == "open" and row["place_name"] == a.name
    cursor = first["cursor"]
    assert _feed(phone, since=cursor)["venue_tasks"] == []

    update_venue_statuses(date(2027, 8, 11))  # the daily run: overdue
    again = _feed(phone, since=cursor)
    assert [(t["id"], t["status"]) for t in again["venue_tasks"] if t["id"] == task.pk] == [
        (task.pk, "overdue")
    ]
    # the community's cadre (above the grid) reads every venue task of the community
    cadre_ids = {t["id"] for t in _feed(member_client("cadre1"))["venue_tasks"]}
    in_community = set(
        VenueTask.objects.filter(community=demo.community).values_list("pk", flat=True)
    )
    assert task.pk in in_community and in_community <= cadre_ids
    assert {t["id"] for t in _feed(member_client("street"))["venue_tasks"]} >= in_community
    # a grid member of a grid without a venue gets none of them
    venue_grids = {p.grid_id for p in _mosques(demo)}
    other = next(
        p
        for p in Position.objects.filter(position_type="grid_member", valid_to__isnull=True)
        .exclude(grid__in=venue_grids)
        .select_related("member")
        .order_by("grid__code")
        if p.grid.community_id == demo.community.pk
    )
    theirs = _feed(member_client(other.member.username))["venue_tasks"]
    assert {t["id"] for t in theirs} == set(
        VenueTask.objects.filter(assigned_member=other.member).values_list("pk", flat=True)
    )
    assert task.pk not in {t["id"] for t in theirs}


@pytest.mark.parametrize("who", ["grid1", "cadre1", "cadre6", "street"])
def test_group_members_and_languages_streams_are_the_rest_lists(demo, member_client, who):
    client = member_client(who)
    feed = _feed(client, limit=50)
    for key, url in (
        ("group_members", f"{BASE}/group-members/"),
        ("resident_languages", f"{BASE}/languages/"),
    ):
        rest = {row["id"]: row for row in _all_rows(client, url)}
        got = {row["id"]: row for row in feed[key]}
        assert got == rest, (who, key)  # same rows, shown (masked) alike
    if who == "street":
        assert feed["group_members"] and feed["resident_languages"]


def test_neighbours_get_no_venue_tasks_group_members_or_languages(demo, member_client):
    assert GroupMember.objects.exists() and ResidentLanguage.objects.exists()
    assert VenueTask.objects.exists()
    for who in NEIGHBOURS:
        client = member_client(who)
        assert client.get(f"{BASE}/changes/").status_code == 403, who
        for url in ("venue-tasks/", "group-members/", "languages/"):
            assert _rows(client.get(f"{BASE}/{url}")) == [], (who, url)


# ---------------------------------------------------------------- the demo
def test_the_demo_year_has_monthly_venue_tasks_made_by_the_services(demo):
    rule = VisitRule.objects.get(name="每月与清真寺共同走访")
    assert rule.target_group == RELIGIOUS_VENUES and rule.active
    tasks = VenueTask.objects.filter(rule=rule, community=demo.community)
    venues = _mosques(demo)
    assert len(venues) == 2
    months = [f"{y}-{m:02d}" for y, m in [(2025, 12)] + [(2026, m) for m in range(1, 12)]]
    for place in venues:
        assert sorted(tasks.filter(place=place).values_list("period", flat=True)) == months
    by = {s: tasks.filter(status=s).count() for s in ("done", "open", "overdue", "missed")}
    assert by["done"] >= 20 and by["overdue"] >= 1 and by["missed"] >= 1
    # done by the demo's venue visits, each in its task's period
    for t in tasks.filter(status="done").select_related("done_by"):
        assert t.done_by is not None and t.period_start <= t.done_by.date <= t.period_end
    # the undone ones are what the clock says on the reference day (2026-11-24)
    for t in tasks.exclude(status="done").select_related("rule"):
        if t.period_end + timedelta(days=t.rule.grace_days) < date(2026, 11, 24):
            assert t.status == "missed"
        else:
            assert t.status == "overdue" and t.due_on < date(2026, 11, 24)
    # loading again changes nothing
    before = list(VenueTask.objects.order_by("pk").values_list("pk", "status", "done_by"))
    call_command("load_demo", verbosity=0)
    generate_tasks(date(2025, 12, 1), date(2026, 11, 24), rules=[rule])
    after = list(VenueTask.objects.order_by("pk").values_list("pk", "status", "done_by"))
    assert after == before
