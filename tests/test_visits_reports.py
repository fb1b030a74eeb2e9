"""一日一报 (daily reports), coverage figures, today's walking route."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from gridsvc.visits.models import DailyReport, VisitTask
from gridsvc.visits.services import coverage

pytestmark = pytest.mark.django_db
REF = "2026-11-24"


def test_daily_report_missing_list(demo, member_client):
    r = member_client("street").get(f"/api/v1/daily-reports/missing/?date={REF}")
    assert r.status_code == 200, r.content
    missing = {row["username"] for row in r.json()["results"]}
    assert {"grid3", "grid5"} <= missing
    assert "grid1" not in missing and "cadre1" not in missing
    assert "street" not in missing, "desk positions do not send the field report"

    # grid3 reports (nothing abnormal); the list shrinks
    DailyReport.objects.filter(member__username="grid3", date=date(2026, 11, 24)).delete()
    from gridsvc.accounts.models import Member

    DailyReport.objects.create(member=Member.objects.get(username="grid3"), date=date(2026, 11, 24))
    missing = {
        row["username"]
        for row in member_client("street")
        .get(f"/api/v1/daily-reports/missing/?date={REF}")
        .json()["results"]
    }
    assert "grid3" not in missing and "grid5" in missing


def test_daily_report_missing_is_scoped(demo, member_client):
    rows = member_client("cadre6").get(f"/api/v1/daily-reports/missing/?date={REF}").json()
    names = {row["username"] for row in rows["results"]}
    assert "grid5" not in names and "grid3" not in names


def test_daily_report_post_is_one_per_day(demo, member_client):
    client = member_client("grid1")
    r = client.post("/api/v1/daily-reports/", {"nothing_abnormal": True}, format="json")
    assert r.status_code == 201, r.content  # created; the second post below updates it (200)
    r = client.post(
        "/api/v1/daily-reports/",
        {"items": [{"category": "safety_hazard", "description": "3号楼楼道堆物"}]},
        format="json",
    )
    assert r.status_code == 200 and r.json()["nothing_abnormal"] is False
    day = r.json()["date"]
    assert DailyReport.objects.filter(member__username="grid1", date=day).count() == 1
    bad = client.post("/api/v1/daily-reports/", {"nothing_abnormal": False}, format="json")
    assert bad.status_code == 400 and "items" in bad.json()
    bad = client.post("/api/v1/daily-reports/", {"date": "2099-01-01"}, format="json")
    assert bad.status_code == 400 and "date" in bad.json()


def test_coverage_against_hand_counts(demo, member_client):
    d_from, d_to = date(2026, 10, 1), date(2026, 10, 31)
    hand: dict[int, Counter] = {}
    for t in VisitTask.objects.filter(due_on__range=(d_from, d_to)).select_related(
        "household__unit__building", "done_by"
    ):
        c = hand.setdefault(t.household.unit.building.grid_id, Counter())
        c["due"] += 1
        c[t.status] += 1
        if t.status == "done" and t.done_by.far_off:
            c["flagged"] += 1
    rows = coverage(d_from, d_to, group="grid")
    assert len(rows) == len(hand) == 7
    for row in rows:
        c = hand[row["id"]]
        for key in ("due", "done", "open", "overdue", "missed", "flagged"):
            assert row[key] == c[key], (row, c)
    # the API: the same figures, limited to the caller's territory
    api = member_client("cadre6").get(
        "/api/v1/visits/coverage/?from=2026-10-01&to=2026-10-31&group=grid"
    )
    assert api.status_code == 200, api.content
    (only,) = api.json()["results"]
    assert only["id"] == demo.grids[5].id and only["due"] == hand[demo.grids[5].id]["due"]
    by_member = (
        member_client("street")
        .get("/api/v1/visits/coverage/?from=2026-10-01&to=2026-10-31&group=member")
        .json()["results"]
    )
    assert sum(r["due"] for r in by_member) == sum(c["due"] for c in hand.values())


def test_coverage_bad_params(demo, member_client):
    client = member_client("street")
    assert "from" in client.get("/api/v1/visits/coverage/?to=2026-10-01").json()
    assert "to" in client.get("/api/v1/visits/coverage/?from=2026-10-02&to=2026-10-01").json()
    r = client.get("/api/v1/visits/coverage/?from=2026-10-01&to=2026-10-31&group=x")
    assert r.status_code == 400 and "group" in r.json()


def test_todays_route_beats_the_input_order(demo, member_client):
    """On the demo street: every open task due today handed to grid1 (all 7 grids' buildings),
    in task-id order, against the walking order."""
    from gridsvc.accounts.models import Member

    VisitTask.objects.filter(
        status__in=["open", "overdue"], period_start__lte=REF, period_end__gte=REF
    ).update(assigned_member=Member.objects.get(username="grid1"))
    r = member_client("grid1").get(
        f"/api/v1/visits/route/?date={REF}&start_lon=103.7700&start_lat=36.0560"
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert len(body["stops"]) >= 30 and body["ordered"] is True
    due = VisitTask.objects.filter(
        assigned_member__username="grid1",
        status__in=["open", "overdue"],
        period_start__lte=REF,
        period_end__gte=REF,
    ).count()
    assert body["task_count"] == due
    assert body["length_m"] < body["input_length_m"]
    assert body["path"]["type"] in ("LineString", "Feature")


def test_route_bad_params(demo, member_client):
    client = member_client("grid1")
    r = client.get("/api/v1/visits/route/?start_lon=103.77")
    assert r.status_code == 400 and "start_lat" in r.json()
    r = client.get("/api/v1/visits/route/?date=tomorrow")
    assert r.status_code == 400 and "date" in r.json()
