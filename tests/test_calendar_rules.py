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


# --- foreign ids in rule bodies (used by tests/test_scoping_matrix.py's BODY_ID_PROBES) -----
_RULE_PATHS = {
    "street": {
        "/api/v1/rules/calendar-days/": lambda s: {
            "street": s,
            "date": "2027-03-03",
            "is_workday": False,
        },
        "/api/v1/rules/calendar-years/": lambda s: {"street": s, "year": 2031},
        "/api/v1/rules/working-hours/": lambda s: {"street": s, "periods": [["09:00", "17:00"]]},
    },
}


def _rule_street_probe(method: str, path: str) -> object:
    """A dispatcher sends another street's id: 400 "not found", nothing written."""

    def probe(demo, member_client) -> None:  # type: ignore[no-untyped-def]
        from gridsvc.supervision.models import WorkingHours
        from gridsvc.territory.models import Street

        other = Street.objects.create(code="620103097", name="别的街道")
        client = member_client("street")
        body = _RULE_PATHS["street"][path](other.pk)
        model = {"calendar-days": CalendarDay, "calendar-years": CalendarYear}.get(
            path.split("/")[-2], WorkingHours
        )
        if method == "POST":
            r = client.post(path, body, format="json")
        else:
            mine = client.post(path, _RULE_PATHS["street"][path](demo.street.pk), format="json")
            assert mine.status_code == 201, mine.content
            url = f"{path}{mine.json()['id']}/"
            r = getattr(client, method.lower())(url, body, format="json")
        assert r.status_code == 400 and r.json().get("street") == ["not found"], r.content
        assert not model.objects.filter(street=other).exists()

    return probe


def _rule_catalogue_probe(method: str, path: str, field: str) -> object:
    """Categories are one catalogue: an unknown id is refused, and field roles get 403."""

    def probe(demo, member_client) -> None:  # type: ignore[no-untyped-def]
        from gridsvc.cases.models import Category

        target = (
            TimeLimit.objects.order_by("id").first()
            if "time-limits" in path
            else Category.objects.get(code="neighbour.noise")
        )
        url = path if method == "POST" else f"{path}{target.pk}/"
        body = {field: 999999}
        if method != "PATCH":
            body = (
                {"stage": "handle", "level": "", "amount": 1, "unit": "working_days", **body}
                if "time-limits" in path
                else {"code": "x.y", "name": "x", "kind": "dispute", **body}
            )
        assert (
            getattr(member_client("grid1"), method.lower())(url, body, format="json").status_code
            == 403
        )
        r = getattr(member_client("street"), method.lower())(url, body, format="json")
        assert r.status_code == 400 and field in r.json(), r.content

    return probe


RULES_BODY_ID_PROBES: dict[tuple[str, str, str], object] = {}
for _m in ("POST", "PUT", "PATCH"):
    for _p in _RULE_PATHS["street"]:
        _key_path = _p if _m == "POST" else _p + "{id}/"
        RULES_BODY_ID_PROBES[(_m, _key_path, "street")] = _rule_street_probe(_m, _p)
    for _p, _f in (
        ("/api/v1/rules/time-limits/", "category"),
        ("/api/v1/rules/categories/", "parent"),
    ):
        _key_path = _p if _m == "POST" else _p + "{id}/"
        RULES_BODY_ID_PROBES[(_m, _key_path, _f)] = _rule_catalogue_probe(_m, _p, _f)

#: the rules endpoints are not about territory: street office only, per-street rows scoped
RULES_ALLOWED: dict[str, str] = {}
for _r in (
    "calendar-days",
    "calendar-years",
    "working-hours",
    "time-limits",
    "categories",
    "flag-rules",
):
    for _m in ("GET", "POST"):
        RULES_ALLOWED[f"{_m} /api/v1/rules/{_r}/"] = (
            "rules (calendar, time limits, categories): street office only, 403 for field "
            "roles; per-street rows scoped to the dispatcher's streets (tests/test_calendar_rules.py)"
        )
    for _m in ("GET", "PUT", "PATCH") + (() if _r == "categories" else ("DELETE",)):
        RULES_ALLOWED[f"{_m} /api/v1/rules/{_r}/<pk>/"] = RULES_ALLOWED[f"GET /api/v1/rules/{_r}/"]
