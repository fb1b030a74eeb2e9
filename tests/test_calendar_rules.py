"""Issue 18 items 14 and 15: the street office is warned of a provisional year, and the
calendar, time limits and category rules are editable (admin and API) with history; an edit
recomputes open deadlines."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from procrastinate.contrib.django.models import ProcrastinateJob

from gridsvc.accounts.models import Member
from gridsvc.audit.models import AuditEntry
from gridsvc.cases import services
from gridsvc.cases.models import TimeLimit
from gridsvc.supervision.clock import prepare_next_year
from gridsvc.supervision.models import CalendarDay, CalendarYear, InboxMessage

from .cases_helpers import report

pytestmark = pytest.mark.django_db
TZ = ZoneInfo("Asia/Shanghai")


def _run_recompute_jobs() -> None:
    """Do what the worker does with the queued ``cases.recompute`` jobs."""
    jobs = ProcrastinateJob.objects.filter(task_name="cases.recompute", status="todo")
    assert jobs.exists(), "the edit queued the worker's recompute"
    for job in jobs:
        services.recompute_open_deadlines(**job.args)


def test_the_street_office_is_warned_in_december_of_a_provisional_year(demo):
    CalendarYear.objects.filter(year=2027).delete()
    assert prepare_next_year(date(2026, 11, 30)) == 0, "not before December"
    assert not CalendarYear.objects.filter(year=2027).exists()
    n = prepare_next_year(date(2026, 12, 1))
    street = Member.objects.get(username="street")
    msg = InboxMessage.objects.get(member=street, object_type="calendar_year", object_id="2027")
    assert n >= 1 and "暂定" in msg.title and "元旦" in msg.body
    assert CalendarYear.objects.get(street=None, year=2027).provisional, "declared provisional"
    assert prepare_next_year(date(2026, 12, 2)) == 0, "warned once"
    assert not InboxMessage.objects.filter(member__username="grid1", object_type="calendar_year")
    # entered officially: no warning for the next year's streets either
    assert prepare_next_year(date(2025, 12, 1)) == 0, "2026 is in the official package"


def test_admin_pages_for_the_rules(demo):
    from fixtures.demo_street import ADMIN_PASSWORD

    client = Client()
    resp = client.post(
        "/admin/login/?next=/admin/", {"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert resp.status_code == 302, "the superuser signs in to the admin"
    for url in (
        "/admin/supervision/calendarday/",
        "/admin/supervision/calendaryear/",
        "/admin/supervision/workinghours/",
        "/admin/cases/timelimit/",
        "/admin/cases/category/",
        "/admin/cases/flagrule/",
        "/admin/supervision/calendarday/add/",
    ):
        assert client.get(url).status_code == 200, url
    limit = TimeLimit.objects.filter(category__code="neighbour", stage="verify").first()
    resp = client.get(f"/admin/cases/timelimit/{limit.pk}/change/")
    assert resp.status_code == 200
    resp = client.post(
        "/admin/supervision/calendarday/add/",
        {"date": "2027-03-08", "is_workday": "", "note": "admin 测试", "street": ""},
    )
    assert resp.status_code == 302, resp.content[:500]
    entry = AuditEntry.objects.get(object_type="rules.calendarday", detail__change="create")
    assert entry.actor.username == "admin" and entry.detail["after"]["note"] == "admin 测试"


def test_the_street_dispatcher_edits_calendar_days_of_their_street(demo, member_client):
    street = member_client("street")
    resp = street.post(
        "/api/v1/rules/calendar-days/",
        {"street": demo.street.pk, "date": "2027-03-01", "is_workday": False, "note": "停电"},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    day_id = resp.json()["id"]
    resp = street.patch(
        f"/api/v1/rules/calendar-days/{day_id}/", {"note": "停电停工"}, format="json"
    )
    assert resp.status_code == 200 and resp.json()["note"] == "停电停工"
    history = AuditEntry.objects.filter(object_type="rules.calendarday", object_id=str(day_id))
    assert [e.detail["change"] for e in history.order_by("at", "id")] == ["create", "update"]
    update = history.get(detail__change="update")
    assert update.actor.username == "street" and update.fields == ["note"]
    assert (
        update.detail["before"]["note"] == "停电" and update.detail["after"]["note"] == "停电停工"
    )
    # all-street rows are the administrator's
    resp = street.post(
        "/api/v1/rules/calendar-days/",
        {"date": "2027-03-02", "is_workday": False, "note": "x"},
        format="json",
    )
    assert resp.status_code == 403
    # the provisional year and its statutory holidays are visible
    years = street.get("/api/v1/rules/calendar-years/?year=2027").json()
    row = years["results"][0] if isinstance(years, dict) else years[0]
    assert row["provisional"] and row["status"] == "provisional"
    assert {"date": "2027-01-01", "name": "元旦"} in row["statutory_holidays"]


def test_a_grid_member_may_not_edit_the_rules(demo, member_client):
    grid1 = member_client("grid1")
    limit = TimeLimit.objects.first()
    assert grid1.get("/api/v1/rules/time-limits/").status_code == 403
    assert (
        grid1.patch(f"/api/v1/rules/time-limits/{limit.pk}/", {"amount": 1}, format="json")
    ).status_code == 403
    assert (
        grid1.post(
            "/api/v1/rules/calendar-days/",
            {"street": demo.street.pk, "date": "2027-03-01", "is_workday": False},
            format="json",
        ).status_code
        == 403
    )
    assert not CalendarDay.objects.filter(date=date(2027, 3, 1)).exists()


def test_a_time_limit_edit_recomputes_an_open_rule_deadline_across_new_year(
    demo, member_client, django_capture_on_commit_callbacks
):
    # Assigned Fri 2026-12-11 to the unit head (3 working days → Wed 16 Dec).
    case = report("neighbour.noise", when=datetime(2026, 12, 11, 10, 0, tzinfo=TZ)).case
    case = services.act(
        case.pk, "start", case.handler, when=datetime(2026, 12, 11, 11, 0, tzinfo=TZ)
    )
    assert case.level == "unit_head" and case.due_source == "rule"
    assert case.due_at.astimezone(TZ) == datetime(2026, 12, 16, 18, 0, tzinfo=TZ)
    limit = TimeLimit.objects.get(category__code="neighbour", stage="handle", level="unit_head")
    street = member_client("street")
    with django_capture_on_commit_callbacks(execute=True):
        resp = street.patch(f"/api/v1/rules/time-limits/{limit.pk}/", {"amount": 15}, format="json")
    assert resp.status_code == 200, resp.content
    _run_recompute_jobs()
    case.refresh_from_db()
    # 15 working days: 14 in December, 元旦 and the weekend rest → Mon 4 Jan 2027
    assert case.due_at.astimezone(TZ) == datetime(2027, 1, 4, 18, 0, tzinfo=TZ)
    assert case.events.filter(kind="deadline_recomputed").exists()
    assert AuditEntry.objects.filter(
        object_type="rules.timelimit", object_id=str(limit.pk), actor__username="street"
    ).exists()
