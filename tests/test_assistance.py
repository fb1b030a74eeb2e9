"""People's services (issue 21 item 1): assistance applications as a workflow.

A grid member starts one (from a visit, with the phone's client_uuid: a retry is the same
application), checks it, the community reviews it and the street decides it; each step is an
event with actor and time; the check deadline runs on the working-day clock and the worker
escalates once; neighbours' roles and another grid get nothing; income and amounts are
masked for staff without an unmask grant. The dicts at the end plug these endpoints into
tests/test_scoping_matrix.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridsvc.accounts.models import Member
from gridsvc.assistance import services
from gridsvc.assistance.models import Application, ApplicationEvent, Status
from gridsvc.audit.models import AuditEntry, UnmaskGrant
from gridsvc.supervision.clock import WorkClock
from gridsvc.supervision.models import InboxMessage
from gridsvc.territory.models import Household, Resident
from gridsvc.visits.models import Visit

pytestmark = pytest.mark.django_db
URL = "/api/v1/assistance/"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _hh(grid) -> Household:  # type: ignore[no-untyped-def]
    return Household.objects.filter(unit__building__grid=grid).order_by("id").first()


def _b001_household() -> Household:
    return Household.objects.filter(unit__building__code__endswith="B001").order_by("id").first()


def _submit(client, household: Household, **extra):  # type: ignore[no-untyped-def]
    body = {"household": household.pk, "kind": "dibao", "reason": "失业, 无收入", **extra}
    return client.post(URL, body, format="json")


def test_the_workflow_end_to_end_by_the_right_roles(demo, member_client):
    household = _b001_household()
    assert household.unit.building.grid == demo.grids[0]
    visit = (
        Visit.objects.filter(household=household).first()
        or Visit.objects.filter(household__unit__building__grid=demo.grids[0]).first()
    )
    if visit is not None:
        household = visit.household
    applicant = Resident.objects.filter(household=household).first()
    key = str(uuid.uuid4())
    grid1 = member_client("grid1")
    extra = {"client_uuid": key, "applicant": applicant.pk}
    if visit is not None:
        extra["visit"] = visit.pk
    r = _submit(grid1, household, **extra)
    assert r.status_code == 201, r.content
    app_id = r.json()["id"]
    assert r.json()["status"] == "submitted" and r.json()["due_at"]
    # the phone retries: the same application, not a second one
    again = _submit(grid1, household, **extra)
    assert again.status_code == 200 and again.json()["id"] == app_id
    assert Application.objects.filter(household=household, kind="dibao").count() == 1
    # a second open 低保 application for the household is refused
    assert _submit(grid1, household).status_code == 409

    step = f"{URL}{app_id}/"
    # the street cannot decide before the community reviewed
    street = member_client("street")
    early = street.post(step + "decide/", {"approved": True, "reason": "x"}, format="json")
    assert early.status_code == 409
    r = grid1.post(
        step + "check/",
        {"members_count": 3, "monthly_income": "450.00", "documents": ["户口簿", "身份证"]},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "checked" and r.json()["monthly_income"] == "**"
    # a grid member does not review: the community does
    opinion = {"recommended": True, "opinion": "经民主评议, 同意上报"}
    assert grid1.post(step + "review/", opinion, format="json").status_code == 403
    r = member_client("cadre1").post(step + "review/", opinion, format="json")
    assert r.status_code == 200 and r.json()["status"] == "reviewed", r.content
    # the community does not decide: the street does
    decision = {
        "approved": True,
        "reason": "家庭人均收入低于低保标准",
        "amount": "620.00",
        "start_date": "2026-11-01",
    }
    assert (
        member_client("cadre1").post(step + "decide/", decision, format="json").status_code == 403
    )
    r = street.post(step + "decide/", decision, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["status"] == "approved" and body["amount"] == "**"
    assert body["start_date"] == "2026-11-01" and body["recheck_due"] == "2027-11-01"  # yearly
    assert body["due_at"] is None
    events = [(e["action"], e["to_status"]) for e in body["events"]]
    assert events == [
        ("submit", "submitted"),
        ("check", "checked"),
        ("review", "reviewed"),
        ("approve", "approved"),
    ]
    actors = list(
        ApplicationEvent.objects.filter(application_id=app_id)
        .order_by("at", "id")
        .values_list("actor__username", flat=True)
    )
    assert actors == ["grid1", "grid1", "cadre1", "street"]
    assert all(e["at"] for e in body["events"])
    app = Application.objects.get(pk=app_id)
    assert app.applicant == applicant and (visit is None or app.visit == visit)
    # under an unmask grant the street sees the amounts in clear, and the read is audited
    member = Member.objects.get(username="street")
    UnmaskGrant.objects.create(
        member=member, reason="低保 复核", expires_at=datetime.now(SHANGHAI) + timedelta(hours=1)
    )
    clear = street.get(step + "?unmask=1")
    assert clear.status_code == 200, clear.content
    assert clear.json()["amount"] == "620.00" and clear.json()["monthly_income"] == "450.00"
    assert clear.json()["masked"] == []
    audited = AuditEntry.objects.filter(
        actor=member, object_type="assistance_application", object_id=str(app_id)
    )
    assert audited.filter(action=AuditEntry.Action.UNMASKED_READ).exists()
    # the yearly re-check: not overdue yet; listed once its date has passed
    qs = Application.objects.filter(pk=app_id)
    assert not services.recheck_overdue(qs, date(2027, 10, 31)).exists()
    assert services.recheck_overdue(qs, date(2027, 11, 2)).exists()
    r = street.post(step + "recheck/", {"continues": True, "note": "收入未变"}, format="json")
    assert r.status_code == 200 and r.json()["recheck_due"] == "2028-11-01", r.content


def test_a_neighbour_and_another_grid_get_nothing(demo, member_client):
    household = _b001_household()
    r = _submit(member_client("grid1"), household)
    assert r.status_code == 201
    app_id = r.json()["id"]
    # the building head of B001 (a neighbour) sees nothing and can start nothing
    bh = member_client("bh-001")
    listed = bh.get(URL)
    assert listed.status_code == 200 and listed.json()["results"] == []
    assert bh.get(f"{URL}{app_id}/").status_code == 404
    assert _submit(bh, household, kind="temp_relief").status_code == 403
    assert bh.post(f"{URL}{app_id}/withdraw/", {}, format="json").status_code == 404
    # grid 5's member neither sees it nor acts on it, nor starts one for grid 1's household
    grid5 = member_client("grid5")
    assert app_id not in {a["id"] for a in grid5.get(URL).json()["results"]}
    assert grid5.get(f"{URL}{app_id}/").status_code == 404
    check = {"members_count": 2, "monthly_income": "0", "documents": ["户口簿"]}
    assert grid5.post(f"{URL}{app_id}/check/", check, format="json").status_code == 404
    r = _submit(grid5, household, kind="temp_relief")
    assert r.status_code == 400 and r.json()["household"] == ["not found"]
    assert Application.objects.filter(household=household, kind="temp_relief").count() == 0
    # grid 1's member does see it
    assert app_id in {a["id"] for a in member_client("grid1").get(URL).json()["results"]}


def test_the_check_deadline_runs_on_the_working_day_clock_and_escalates_once(demo):
    household = _hh(demo.grids[0])
    grid1 = Member.objects.get(username="grid1")
    friday = datetime.combine(date(2026, 11, 13), time(10, 0), tzinfo=SHANGHAI)
    app = services.submit(grid1, household, "temp_relief", now=friday).application
    clock = WorkClock(demo.street.pk)
    assert app.due_at == clock.add(friday, 5, "working_days")
    # five working days from a Friday: the next Friday, end of office hours (weekend skipped)
    assert app.due_at.astimezone(SHANGHAI).date() == date(2026, 11, 20)
    # a minute before the deadline it has been reminded (临期, tests/test_assistance_worker.py)
    assert services.apply_clock(app.pk, app.due_at - timedelta(minutes=1)) == "reminded"
    before = InboxMessage.objects.filter(object_type="assistance").count()
    after_due = app.due_at + timedelta(minutes=1)
    assert services.sweep(after_due) == {"escalated": 1}
    sent = InboxMessage.objects.filter(object_type="assistance", object_id=str(app.pk))
    who = set(sent.values_list("member__username", flat=True))
    assert {"grid1", "cadre1", "street"} <= who  # the stage's actors and the street desk
    assert not who & {"bh-001", "grid5"}
    # a second run (or a retried job) sends nothing more
    assert services.apply_clock(app.pk, after_due) == "done"
    assert services.sweep(after_due) == {}
    assert InboxMessage.objects.filter(object_type="assistance").count() == before + len(who)
    # the check moves it on: a new deadline of ten working days, reminded afresh
    app = services.check(grid1, app.pk, members_count=1, monthly_income=0, documents=["身份证"])
    assert app.status == Status.CHECKED and app.reminded_for is None
    assert app.due_at is not None and app.due_at > after_due


def test_households_eligible_without_assistance_and_overdue_rechecks(demo, member_client):
    """应保尽保: a household tagged 低保/困难 with no application is a gap until one is made;
    the street sees the households only under an unmask grant; neighbours get 403."""
    grid = demo.grids[0]
    # the demo street applied for all its 低保 households (fixtures/demo_assistance.py)
    Application.objects.filter(household__unit__building__grid=grid, kind="dibao").delete()
    tagged = (
        Household.objects.filter(
            unit__building__grid=grid, residents__tags__overlap=["low_income", "hardship"]
        )
        .exclude(assistance_applications__kind="dibao")
        .order_by("id")
        .first()
    )
    assert tagged is not None, "the demo has 低保 households in grid 1"
    in_grid = Household.objects.filter(unit__building__grid=grid)
    assert tagged.pk in services.gaps(in_grid)["missing"]["dibao"]
    r = member_client("grid1").get(URL + "gaps/")
    assert r.status_code == 200 and r.json()["households"] is None  # counts only
    rows = r.json()["results"]
    assert {row["grid"] for row in rows} <= {grid.pk}
    assert member_client("bh-001").get(URL + "gaps/").status_code == 403
    # an application closes the gap; once approved and a year on, the re-check is overdue
    grid1 = Member.objects.get(username="grid1")
    app = services.submit(grid1, tagged, "dibao").application
    assert tagged.pk not in services.gaps(in_grid)["missing"]["dibao"]
    services.check(grid1, app.pk, members_count=2, monthly_income=300, documents=["户口簿"])
    services.review(Member.objects.get(username="cadre1"), app.pk, recommended=True, opinion="同意")
    services.decide(
        Member.objects.get(username="street"),
        app.pk,
        approved=True,
        reason="符合条件",
        amount=500,
        start_date=date(2025, 1, 1),
    )
    assert services.gaps(in_grid, date(2026, 1, 2))["recheck_overdue"] == [tagged.pk]
    # the street desk, under a grant, gets the households (audited)
    street = Member.objects.get(username="street")
    UnmaskGrant.objects.create(
        member=street, reason="应保尽保", expires_at=datetime.now(SHANGHAI) + timedelta(hours=1)
    )
    r = member_client("street").get(URL + "gaps/?unmask=1")
    assert r.status_code == 200, r.content
    assert tagged.pk in r.json()["households"]["recheck_overdue"]
    assert AuditEntry.objects.filter(
        actor=street, object_type="household", object_id=str(tagged.pk)
    ).exists()


def test_the_yearly_recheck_is_reminded_once_a_month_ahead(demo):
    household = _hh(demo.grids[1])
    app = _approve_in(household, date(2026, 3, 1))
    assert app.recheck_due == date(2027, 3, 1)
    told = InboxMessage.objects.filter(
        object_type="assistance", object_id=str(app.pk), title__contains="复核"
    )
    services.recheck_reminders(date(2027, 1, 15))  # more than a month ahead: not yet
    assert not told.exists()
    sent = services.recheck_reminders(date(2027, 2, 10))
    assert sent >= told.count() > 0
    assert "street" in set(told.values_list("member__username", flat=True))
    n = told.count()
    services.recheck_reminders(date(2027, 2, 11))  # the next morning: nothing more
    assert told.count() == n
    # after the re-check the next one (a year on) is reminded afresh in due time
    services.recheck(Member.objects.get(username="street"), app.pk, continue_=True, note="收入未变")
    app.refresh_from_db()
    assert app.recheck_due > date(2027, 3, 1)


def _approve_in(household: Household, start: date) -> Application:
    grid_id = household.unit.building.grid_id
    member = Member.objects.filter(
        positions__position_type="grid_member", positions__grid_id=grid_id
    ).first()
    app = services.submit(member, household, "dibao").application
    services.check(member, app.pk, members_count=2, monthly_income=300, documents=["户口簿"])
    services.review(
        Member.objects.get(username="mediator"), app.pk, recommended=True, opinion="同意"
    )
    return services.decide(
        Member.objects.get(username="street"),
        app.pk,
        approved=True,
        reason="符合条件",
        amount=500,
        start_date=start,
    )


def probe_gaps(ctx) -> None:  # type: ignore[no-untyped-def]
    """The scoping matrix's probe: counts only for the caller's grids (or 403)."""
    from gridsvc.territory.models import Grid

    r = ctx.client.get(URL + "gaps/")
    if r.status_code == 403:
        return
    assert r.status_code == 200, r.content[:200]
    grids = {row["grid"] for row in r.json()["results"]}
    assert grids <= (ctx.visible(Grid) or set()) | {None}, (ctx.role, grids)


def _approve(household: Household, kind: str, start: date, applicant=None) -> Application:  # type: ignore[no-untyped-def]
    grid1 = Member.objects.get(username="grid1")
    app = services.submit(grid1, household, kind, applicant=applicant).application
    services.check(grid1, app.pk, members_count=2, monthly_income=300, documents=["户口簿"])
    services.review(Member.objects.get(username="cadre1"), app.pk, recommended=True, opinion="同意")
    return services.decide(
        Member.objects.get(username="street"),
        app.pk,
        approved=True,
        reason="符合条件",
        amount=500,
        start_date=start,
    )


def test_figures_come_from_the_applications(demo, member_client):
    """低保 people, households and their minority share; 居民医保 per enrolled person;
    counts from the records of approved applications in force on the day."""
    from gridsvc.assistance.figures import figures

    Application.objects.all().delete()  # the demo street's records (test_assistance_demo.py)
    homes = list(
        Household.objects.filter(unit__building__grid=demo.grids[0])
        .filter(residents__isnull=False)
        .distinct()
        .order_by("id")[:8]
    )
    for h in homes[:6]:
        _approve(h, "dibao", date(2026, 1, 1))
    person = Resident.objects.filter(household=homes[6]).first()
    _approve(homes[6], "medical_insurance", date(2026, 1, 1), applicant=person)
    services.submit(Member.objects.get(username="grid1"), homes[7], "dibao")  # not approved
    people = Resident.objects.filter(household__in=homes[:6])
    minority = people.exclude(ethnicity="01")
    out = figures(Application.objects.all(), date(2026, 6, 1))
    dibao = out["dibao"]
    assert dibao["households"] == 6 and dibao["people"] == people.count()
    assert dibao["minority_people"] == minority.count()
    assert dibao["minority_households"] == len(set(minority.values_list("household", flat=True)))
    assert out["medical_insurance"]["people"] == 1
    assert out["medical_insurance"]["minority_people"] == int(person.ethnicity != "01")
    # before the start date nobody is on assistance
    assert figures(Application.objects.all(), date(2025, 12, 31))["dibao"]["people"] == 0
    # the API: the street gets exact counts; grid 5 (another grid) gets none of grid 1's
    r = member_client("street").get(URL + "figures/?day=2026-06-01")
    assert r.status_code == 200 and r.json()["figures"]["dibao"]["households"] == 6
    r = member_client("grid5").get(URL + "figures/?day=2026-06-01")
    assert r.json()["figures"]["dibao"]["households"] == 0
    assert member_client("bh-001").get(URL + "figures/").status_code == 403


def test_the_deadline_check_is_queued_by_name_on_the_assistance_queue(demo):
    from procrastinate.contrib.django.models import ProcrastinateJob

    app = services.submit(
        Member.objects.get(username="grid1"), _hh(demo.grids[0]), "job"
    ).application
    jobs = ProcrastinateJob.objects.filter(
        task_name="assistance.check", args={"application_id": app.pk}
    )
    assert {j.queue_name for j in jobs} == {"assistance"}
    # at the reminder time (临期, as a case's yellow card) and at the deadline
    assert sorted(j.scheduled_at for j in jobs) == [app.remind_at, app.due_at]


def probe_figures(ctx) -> None:  # type: ignore[no-untyped-def]
    """The scoping matrix's probe: figures count only applications in the territory."""
    from gridsvc.assistance.figures import figures

    r = ctx.client.get(URL + "figures/?day=2026-06-01")
    if r.status_code == 403:
        return
    assert r.status_code == 200, r.content[:200]
    mine = Application.objects.filter(pk__in=ctx.visible(Application) or set())
    expected = figures(mine, date(2026, 6, 1))["dibao"]["households"]
    assert r.json()["figures"]["dibao"]["households"] in (expected, None)


def test_a_migrant_from_arrival_to_departure(demo, member_client):
    """流动人口: grid1 records an arrival with 居住证, home contact, 个体户 licence and a child's
    school need; the grid's members get it in their inbox; the month's flows count it; the
    departure is recorded; neighbours and another grid get nothing."""
    from gridsvc.assistance.models import Migrant

    resident = Resident.objects.filter(household=_hh(demo.grids[0])).first()
    grid1 = member_client("grid1")
    r = grid1.post(
        "/api/v1/migrants/",
        {
            "resident": resident.pk,
            "arrived_on": "2026-10-08",
            "permit": "applied",
            "home_contact": "定西市安定区某村委会",
            "home_contact_phone": "13912345678",
            "work": "self_employed",
            "business_licence": "91620100MA00000000",
            "children_needs": "一个孩子上小学",
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    mid = r.json()["id"]
    assert r.json()["home_contact_phone"] != "13912345678"  # masked
    told = InboxMessage.objects.filter(object_type="migrant", object_id=str(mid))
    assert "grid1" in set(told.values_list("member__username", flat=True))
    r = grid1.patch(
        f"/api/v1/migrants/{mid}/",
        {"permit": "issued", "permit_expires": "2027-10-08"},
        format="json",
    )
    assert r.status_code == 200 and r.json()["permit"] == "issued", r.content
    flows = grid1.get("/api/v1/migrants/flows/?month=2026-10").json()
    assert flows["arrived"] >= 1 and flows["departed"] == 0
    # another grid and a neighbour get nothing
    assert member_client("grid5").get(f"/api/v1/migrants/{mid}/").status_code == 404
    assert member_client("bh-001").get("/api/v1/migrants/").json()["results"] == []
    r = member_client("grid5").post(
        "/api/v1/migrants/", {"resident": resident.pk, "arrived_on": "2026-10-09"}, format="json"
    )
    assert r.status_code == 400 and r.json()["resident"] == ["not found"]
    # the departure
    r = grid1.post(
        f"/api/v1/migrants/{mid}/depart/",
        {"departed_on": "2026-11-03", "departed_to": "兰州市七里河区"},
        format="json",
    )
    assert r.status_code == 200 and r.json()["departed_on"] == "2026-11-03", r.content
    assert told.count() >= 2  # arrival and departure
    nov = grid1.get("/api/v1/migrants/flows/?month=2026-11").json()
    assert nov["departed"] >= 1
    assert Migrant.objects.get(pk=mid).departed_to == "兰州市七里河区"
    again = grid1.post(
        f"/api/v1/migrants/{mid}/depart/", {"departed_on": "2026-11-04"}, format="json"
    )
    assert again.status_code == 409


def probe_migrant_flows(ctx) -> None:  # type: ignore[no-untyped-def]
    from gridsvc.assistance.models import Migrant

    r = ctx.client.get("/api/v1/migrants/flows/?month=2026-10")
    assert r.status_code == 200, r.content[:200]
    mine = Migrant.objects.filter(pk__in=ctx.visible(Migrant) or set())
    assert r.json()["present"] <= mine.count()


def _body_foreign_migrant(demo, member_client) -> None:  # type: ignore[no-untyped-def]
    from gridsvc.assistance.models import Migrant

    foreign = Resident.objects.filter(household=_hh(demo.grids[4])).first()
    before = Migrant.objects.count()
    r = member_client("grid1").post(
        "/api/v1/migrants/", {"resident": foreign.pk, "arrived_on": "2026-10-01"}, format="json"
    )
    assert r.status_code == 400 and r.json().get("resident") == ["not found"], r.content
    assert Migrant.objects.count() == before


# ---------------------------------------------------------------- the scoping matrix's part
def _body_foreign(field: str) -> Callable:
    def probe(demo, member_client) -> None:  # type: ignore[no-untyped-def]
        mine, foreign = _hh(demo.grids[0]), _hh(demo.grids[4])
        other = {
            "household": foreign.pk,
            "applicant": Resident.objects.filter(household=foreign).first().pk,
            "visit": getattr(Visit.objects.filter(household=foreign).first(), "pk", 10**9),
        }[field]
        body = {"household": mine.pk, "kind": "dibao", field: other}
        before = Application.objects.count()
        r = member_client("grid1").post(URL, body, format="json")
        assert r.status_code == 400 and r.json().get(field) == ["not found"], r.content
        assert Application.objects.count() == before

    return probe


def probe_changes(ctx) -> None:  # type: ignore[no-untyped-def]
    """The phone's feed: neighbours 403; staff get only applications and migrants of their
    territory (tests/test_assistance_sync.py)."""
    from gridsvc.assistance.models import Migrant

    r = ctx.client.get(URL + "changes/")
    if r.status_code == 403:
        return
    assert r.status_code == 200, (ctx.role, r.content[:200])
    body = r.json()
    assert {a["id"] for a in body["applications"]} <= (ctx.visible(Application) or set())
    assert {m["id"] for m in body["migrants"]} <= (ctx.visible(Migrant) or set())


def probe_document_file(ctx) -> None:  # type: ignore[no-untyped-def]
    """A document of an application outside the territory is 404, as the application is
    (tests/test_assistance_documents.py)."""
    from gridsvc.assistance.models import ApplicationDocument

    for pk in ctx.foreign(ApplicationDocument):
        doc = ApplicationDocument.objects.get(pk=pk)
        r = ctx.client.get(f"{URL}{doc.application_id}/documents/{pk}/file/")
        assert r.status_code == 404, (ctx.role, r.status_code)


ASSISTANCE_ALLOWED: dict[str, str] = {
    "POST /api/v1/assistance/batch/": (
        "the phone's offline batch: items' ids (household, applicant, visit, resident, "
        "migrant) are resolved in the caller's staff scope, a foreign one is rejected "
        "'not found' (tests/test_assistance_sync.py); neighbours get 403"
    ),
    "POST /api/v1/migrants/": (
        "records an arrival; its body id (resident) has a foreign-id probe, neighbours get 403"
    ),
    "POST /api/v1/assistance/": (
        "creates an application; its body ids (household, applicant, visit) have foreign-id "
        "probes, neighbours get 403 (tests/test_assistance.py)"
    ),
}
ASSISTANCE_BODY_ID_PROBES: dict[tuple[str, str, str], Callable] = {
    ("POST", URL, f): _body_foreign(f) for f in ("household", "applicant", "visit")
}
ASSISTANCE_BODY_ID_PROBES[("POST", "/api/v1/migrants/", "resident")] = _body_foreign_migrant
ASSISTANCE_NOT_IDS: dict[str, str] = {"members_count": "household members counted at the check"}
ASSISTANCE_EXPLICIT: dict[str, Callable] = {
    "GET /api/v1/assistance/gaps/": probe_gaps,
    "GET /api/v1/assistance/figures/": probe_figures,
    "GET /api/v1/migrants/flows/": probe_migrant_flows,
    "GET /api/v1/assistance/changes/": probe_changes,
    "GET /api/v1/assistance/<app_id>/documents/<pk>/file/": probe_document_file,
}
