"""One source per case figure: the case list figures, the choropleth of grids, the work report
and the assessment give the same number for the same territory and period."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from gridsvc.cases.models import Case
from gridsvc.reports.services import month_period

pytestmark = pytest.mark.django_db

MONTH = "2026-10"


def _sharpen(demo) -> None:  # type: ignore[no-untyped-def]
    """Give the month the cases on which the old definitions disagreed: a void dispute (not
    a case of its own), a queued case past its deadline (open and overdue) and a dispute that
    was escalated after being resolved at grid level (ended at the grid, not where it is now)."""
    lo, hi = month_period(MONTH).bounds()
    month = Case.objects.filter(grid__in=demo.grids, reported_at__gte=lo, reported_at__lt=hi)
    disputes = month.filter(kind="dispute").order_by("pk")
    done = disputes.filter(status__in=["resolved", "verified", "closed"]).first()
    assert done is not None, "the demo has a resolved dispute in the month"
    Case.objects.filter(pk=done.pk).update(resolved_level="grid", level="community")
    voided = disputes.exclude(pk=done.pk).first()
    assert voided is not None
    Case.objects.filter(pk=voided.pk).update(status="void")
    queued = disputes.exclude(pk__in=[done.pk, voided.pk]).first()
    assert queued is not None
    Case.objects.filter(pk=queued.pk).update(
        status="reported", resolved_at=None, due_at=timezone.now() - timedelta(hours=1)
    )


def test_each_case_figure_is_the_same_through_every_path(demo, member_client):
    _sharpen(demo)
    client = member_client("street")
    period = month_period(MONTH)
    lo, hi = period.bounds()
    window = {"since": lo.isoformat(), "until": hi.isoformat()}

    # the choropleth, per grid (disputes of the month)
    last_day = (period.end - timedelta(days=1)).isoformat()
    r = client.get(
        "/api/v1/choropleth/grids/",
        {"from": period.start.isoformat(), "to": last_day, "kind": "dispute"},
    )
    assert r.status_code == 200, r.content
    chor = {f["id"]: f["properties"] for f in r.json()["features"]}

    # the assessment, per grid, for the same month
    r = client.get(
        "/api/v1/assessment/",
        {"by": "grid", "since": period.start.isoformat(), "until": period.end.isoformat()},
    )
    assert r.status_code == 200, r.content
    assessed = {row["key"]: row for row in r.json()["rows"]}

    sums: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    for g in demo.grids:
        r = client.get("/api/v1/cases/figures/", {**window, "grid": g.id, "kind": "dispute"})
        assert r.status_code == 200, r.content
        listed = r.json()
        p = chor[g.id]
        # case list figures == choropleth property
        assert (listed["total"], listed["resolved"], listed["resolution_rate"]) == (
            p["cases"],
            p["resolved"],
            p["resolution_rate"],
        ), g.code
        assert (listed["open"], listed["overdue"]) == (p["open"], p["overdue"]), g.code
        sums.update(total=listed["total"], resolved=listed["resolved"])
        levels.update(listed["ended_at_level"])
        # 自处理 of the month: case list figures == assessment
        every_kind = client.get("/api/v1/cases/figures/", {**window, "grid": g.id}).json()
        spots = assessed[g.id]["counts"]["on_the_spot"] if g.id in assessed else 0
        assert every_kind["on_the_spot"] == spots, g.code

    assert sums["total"] > 0 and sums["resolved"] > 0
    assert sum(p["overdue"] for p in chor.values()) > 0

    # the work report of the community (all the demo's grids) == the sum over its grids
    r = client.get(
        "/api/v1/reports/monthly/",
        {"community": demo.community.code, "month": MONTH, "format": "json"},
    )
    assert r.status_code == 200, r.content
    report = r.json()
    c = report["cases"]
    assert (c["disputes_received"], c["disputes_resolved"]) == (sums["total"], sums["resolved"])
    assert c["resolution_rate"] == round(sums["resolved"] / sums["total"], 4)
    assert {x["level"]: x["resolved"] for x in c["disputes_by_level_ended"]} == dict(levels)
    assert levels["grid"] > 0
    # the report's assessment is the assessment's
    in_report = {row["key"]: row for row in report["assessment"]["by_grid"]}
    assert in_report == assessed
