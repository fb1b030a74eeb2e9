"""Issue 18 item 17: a past period's report does not change later.

Residents' tags (低保, 社区矫正 …) keep a status history with dates, who and why; a period's tag
figures are read as of its last day; an issued report (印发) is served as issued. Also: a
queued import whose job was killed is imported again by the retried job, once.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from gridsvc.accounts.models import Member
from gridsvc.chain.scope import Scope
from gridsvc.reports.models import ImportRun, IssuedReport
from gridsvc.reports.services import issue_report, month_period, work_report
from gridsvc.territory.history import ResidentStatus, status_change, tags_on
from gridsvc.territory.models import Household, Resident

pytestmark = pytest.mark.django_db


def last_month() -> str:
    first = timezone.localdate().replace(day=1)
    return f"{(first - timedelta(days=1)):%Y-%m}"


def this_month() -> str:
    return f"{timezone.localdate():%Y-%m}"


def roster_file(tmp_path, demo):  # type: ignore[no-untyped-def]
    """A roster with good rows (a new 低保 resident among them) and bad ones."""
    from gridsvc.territory.models import Building
    from tests.test_dataio_roster import rows, workbook

    b1 = Building.objects.filter(grid=demo.grids[0]).order_by("code").first()
    far = Building.objects.filter(grid=demo.grids[6]).order_by("code").first()
    path = tmp_path / "roster.xlsx"
    path.write_bytes(workbook(rows(b1.code, far.name)))
    return path


def monthly(client, demo, month: str) -> dict:  # type: ignore[no-untyped-def]
    r = client.get(f"/api/v1/reports/monthly/?community={demo.community.code}&month={month}")
    assert r.status_code == 200, r.content
    return r.json()


def unmasked(member_client):  # type: ignore[no-untyped-def]
    """The street office with an unmask grant (it may then see, and remove, 低保)."""
    client = member_client("street")
    r = client.post("/api/v1/privacy/grants/", {"reason": "低保复核", "minutes": 5}, format="json")
    assert r.status_code == 201, r.content
    return client


def alone_in_household(tag: str) -> Resident:
    """A resident with ``tag`` who is the only one in the household with it."""
    for r in Resident.objects.filter(tags__contains=[tag]).order_by("pk"):
        if not Resident.objects.filter(household=r.household, tags__contains=[tag]).exclude(
            pk=r.pk
        ):
            return r
    raise AssertionError(f"no resident alone with {tag}")


def test_editing_tags_today_leaves_last_months_figures(demo, member_client):
    # a sensitive tag (残疾) counted in 重点人群; 低保 is counted from its applications
    client = unmasked(member_client)

    def disabled(month: str) -> int:
        groups = monthly(client, demo, month)["key_groups"]
        return {g["tag"]: g["residents"] for g in groups}["disabled"]

    before, now_before = disabled(last_month()), disabled(this_month())
    gone = alone_in_household("disabled")
    r = client.patch(
        f"/api/v1/residents/{gone.pk}/?unmask=1",
        {"tags": [t for t in gone.tags if t != "disabled"], "tags_reason": "复核不再符合"},
        format="json",
    )
    assert r.status_code == 200, r.content
    gone.refresh_from_db()
    assert "disabled" not in gone.tags
    assert disabled(last_month()) == before  # as it was on the month's last day
    assert disabled(this_month()) == now_before - 1


def test_tag_added_today_not_in_last_months_key_groups(demo, member_client):
    client = member_client("street")

    def groups(month: str) -> dict:
        return {g["tag"]: g["residents"] for g in monthly(client, demo, month)["key_groups"]}

    before = groups(last_month())
    target = Resident.objects.exclude(tags__contains=["community_correction"]).first()
    r = client.patch(
        f"/api/v1/residents/{target.pk}/",
        {"tags": [*target.tags, "community_correction", "volunteer"]},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert groups(last_month()) == before
    now = groups(this_month())
    assert now["community_correction"] == before["community_correction"] + 1


def test_history_records_who_when_and_why(demo, member_client):
    street = Member.objects.get(username="street")
    gone = alone_in_household("low_income")
    today = timezone.localdate()
    r = unmasked(member_client).patch(
        f"/api/v1/residents/{gone.pk}/?unmask=1",
        {"tags": [*[t for t in gone.tags if t != "low_income"], "disabled"],
         "tags_reason": "复核不再符合; 残联认定"},
        format="json",
    )  # fmt: skip
    assert r.status_code == 200, r.content
    assert "tags_reason" not in r.json()
    ended = ResidentStatus.objects.get(resident=gone, tag="low_income")
    assert ended.valid_from is None  # held before the history was kept (the demo's records)
    assert ended.valid_to == today and ended.ended_by == street
    assert ended.end_reason == "复核不再符合; 残联认定" and ended.ended_at is not None
    started = ResidentStatus.objects.get(resident=gone, tag="disabled", valid_to__isnull=True)
    assert started.valid_from == today and started.changed_by == street
    assert started.reason == "复核不再符合; 残联认定"
    # unchanged tags keep their one open row
    for tag in gone.tags:
        if tag != "low_income":
            assert ResidentStatus.objects.filter(resident=gone, tag=tag).count() == 1
    assert "low_income" in tags_on(gone, today - timedelta(days=1))
    assert "low_income" not in tags_on(gone, today)


def test_back_dated_change_and_dates_of_a_service_edit(demo):
    r = Resident.objects.filter(tags=[]).first()
    with status_change(None, "民政局通知", on=date(2026, 3, 15)):
        r.tags = ["low_income"]
        r.save()
    with status_change(None, "收入超标", on=date(2026, 6, 1)):
        r.tags = []
        r.save()
    assert tags_on(r, date(2026, 3, 14)) == []
    assert tags_on(r, date(2026, 3, 15)) == ["low_income"]
    assert tags_on(r, date(2026, 5, 31)) == ["low_income"]
    assert tags_on(r, date(2026, 6, 1)) == []
    (row,) = ResidentStatus.objects.filter(resident=r)
    assert (row.reason, row.end_reason) == ("民政局通知", "收入超标")


def test_demo_tags_have_their_history(demo):
    low = Resident.objects.filter(tags__contains=["low_income"])
    rows = ResidentStatus.objects.filter(tag="low_income", valid_to__isnull=True)
    assert rows.count() == low.count() and not rows.filter(valid_from__isnull=False).exists()
    # the demo's November figures: 740 low-income people, 296 of them minority
    report = work_report(period=month_period("2026-11"), scope=Scope(everything=True),
                         community=demo.community.code)  # fmt: skip
    assert report["population"]["low_income"]["people"] == low.count()
    assert report["population"]["low_income"]["minority_people"] == 296


def test_roster_import_records_who_and_why(demo, tmp_path):
    from gridsvc.dataio.roster import import_roster

    path = roster_file(tmp_path, demo)
    actor = Member.objects.get(username="street")
    rep, _ = import_roster(path, actor=actor)
    assert rep["applied"], rep
    rows = ResidentStatus.objects.filter(changed_by=actor)
    assert rows.exists()
    assert all(r.reason.startswith("名册导入") for r in rows)


# ---------------------------------------------------------------- issued reports
def test_an_issued_report_stays_as_issued(demo, member_client):
    street = Member.objects.get(username="street")
    period = month_period(last_month())
    scope = Scope(street_ids=frozenset({demo.street.pk}))
    issued = issue_report(period=period, scope=scope, member=street,
                          community=demo.community.code, note="第11期")  # fmt: skip
    client = member_client("street")
    first = monthly(client, demo, period.label)
    assert first["issued"]["by"] == "street" and first["issued"]["note"] == "第11期"
    assert first["population"] == issued.report["population"]
    # the registers change afterwards: a new household with two residents
    hh = Household.objects.create(unit=Household.objects.first().unit, room="9999")
    for n in range(2):
        Resident.objects.create(household=hh, name=f"新住户{n}", tags=["low_income"])
    again = monthly(client, demo, period.label)
    assert again == first  # the same numbers (and the same generated_at)
    live = work_report(period=period, scope=scope, community=demo.community.code)
    assert live["population"]["residents"] == first["population"]["residents"] + 2
    # issued once; only by the street office
    with pytest.raises(ValidationError):
        issue_report(period=period, scope=scope, member=street, community=demo.community.code)
    with pytest.raises(PermissionDenied):
        issue_report(period=month_period("2026-01"), scope=scope,
                     member=Member.objects.get(username="grid1"), community=demo.community.code)  # fmt: skip
    with pytest.raises(ValidationError):  # the month is not over
        issue_report(period=month_period(this_month()), scope=scope, member=street,
                     community=demo.community.code)  # fmt: skip


def test_issue_from_the_command(demo, tmp_path):
    label = "2026-02"
    call_command("work_report", community=demo.community.code, month=label,
                 out=str(tmp_path / "r.json"), issue=True)  # fmt: skip
    stored = IssuedReport.objects.get(area_code=demo.community.code, period_label=label)
    assert stored.issued_by is None and stored.report["period"]["label"] == label


# ---------------------------------------------------------------- killed imports
def test_a_killed_roster_job_is_imported_again_once(demo, tmp_path):
    from gridsvc.dataio import tasks
    from gridsvc.dataio.tasks import queue_import

    actor = Member.objects.get(username="street")
    run = queue_import(roster_file(tmp_path, demo), actor=actor, dry_run=False, file_name="r.xlsx")
    residents = Resident.objects.count()
    # the worker took the job, marked the run running and was killed (its transaction, with
    # any row it had written, rolled back): the stalled-job recovery runs the job again
    ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.RUNNING, phase="writing")
    out = tasks.import_roster_job(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.DONE and run.applied, run.report
    assert out["status"] == "done" and run.upload is None
    created = run.report["residents_created"]
    assert created > 0 and Resident.objects.count() == residents + created
    # a second retry of the finished job imports nothing twice
    assert tasks.import_roster_job(run_id=run.pk)["status"] == "done"
    assert Resident.objects.count() == residents + created


def test_a_killed_boundary_job_that_had_committed_is_finished_not_redone(demo):
    from gridsvc.dataio import tasks

    run = ImportRun.objects.create(
        kind=ImportRun.Kind.GRID, file_name="g.geojson", dry_run=False, ok=True, applied=True,
        status=ImportRun.Status.RUNNING, upload=b"x",
        report={"ok": True, "applied": True, "features": 7},
    )  # fmt: skip
    out = tasks.import_boundaries_job(run_id=run.pk)
    run.refresh_from_db()
    assert out["status"] == "done" and run.status == ImportRun.Status.DONE
    assert run.upload is None and run.rows_done == 7 and run.finished_at is not None


def test_issue_through_the_api_street_office_only(demo, member_client):
    body = {"community": demo.community.code, "month": last_month(), "note": "月报"}
    assert member_client("grid1").post("/api/v1/reports/issued/", body).status_code == 403
    assert member_client("bh-001").post("/api/v1/reports/issued/", body).status_code == 403
    street = member_client("street")
    r = street.post("/api/v1/reports/issued/", body, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["issued"]["by"] == "street"
    assert street.post("/api/v1/reports/issued/", body, format="json").status_code == 400
    assert monthly(street, demo, last_month()) == r.json()
    # lower tiers keep their own (computed, suppressed) report: never the exact issued one
    staff = monthly(member_client("grid1"), demo, last_month())
    assert "issued" not in staff and staff["privacy"]["tier"] == "staff"
    neighbour = monthly(member_client("bh-001"), demo, last_month())
    assert "issued" not in neighbour and "low_income" not in neighbour["population"]


def test_a_retry_leaves_a_run_whose_job_is_still_alive(demo, tmp_path):
    from django.db import DEFAULT_DB_ALIAS, connections

    from gridsvc.dataio import tasks
    from gridsvc.dataio.tasks import queue_import

    actor = Member.objects.get(username="street")
    run = queue_import(roster_file(tmp_path, demo), actor=actor, dry_run=False, file_name="r.xlsx")
    ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.RUNNING)
    residents = Resident.objects.count()
    alive = connections.create_connection(DEFAULT_DB_ALIAS)  # the first job, still importing
    try:
        with alive.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, %s)", [tasks._LOCK_CLASS, run.pk])
        assert tasks.import_roster_job(run_id=run.pk)["status"] == "running"
        run.refresh_from_db()
        assert run.status == ImportRun.Status.RUNNING and run.upload is not None
        assert Resident.objects.count() == residents
    finally:
        alive.close()
    # the lock goes when the closed session's backend has exited, a moment after the close
    with connection.cursor() as cur:
        for _ in range(100):
            cur.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                " AND classid = %s AND objid = %s)",
                [tasks._LOCK_CLASS, run.pk],
            )
            if cur.fetchone()[0]:
                break
            time.sleep(0.1)
    assert tasks.import_roster_job(run_id=run.pk)["status"] == "done"  # its lock is gone
