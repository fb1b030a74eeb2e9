"""Case figures 案件指标: one definition of each figure, for every place that shows it.

The case list figures (``/api/v1/cases/figures/``), the choropleth of grids
(``/api/v1/choropleth/grids/``), the work report (工作报告) and the assessment (考核, with
:mod:`gridsvc.cases.assessment`) all count through the conditions and expressions below, so a
figure shown in two places for the same territory and period is the same number. Each is an
ORM condition or aggregate: PostgreSQL does the counting, never Python over rows.

- counted: every case except void (作废) and merged (已合并) ones — the whole of a rate;
- resolved 已化解/已整改: handled — resolved, verified or closed, or carrying a resolution time;
- open 未结: reported, assigned, in progress, escalated, reopened or transferred;
- overdue 超期: open and past its stage deadline (``due_at``);
- resolution rate 化解率: resolved ÷ counted (``None`` without cases);
- ended at level 终结层级: resolved cases by the level that resolved them
  (小矛盾不出小区, 大矛盾不出社区);
- settled within a month: disputes resolved within 30 days of being reported.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Expression, F, Q, QuerySet
from django.utils import timezone

from .models import DONE_STATUSES, OPEN_STATUSES, Case, Kind, Status

#: never part of a total or a rate (void and merged cases are not cases of their own)
NOT_COUNTED = (Status.VOID, Status.MERGED)

#: 已化解/已整改: handled (resolved, verified or closed), or carrying a resolution time
RESOLVED = Q(status__in=DONE_STATUSES) | Q(resolved_at__isnull=False)

#: 未结: still being handled
OPEN = Q(status__in=OPEN_STATUSES)

#: disputes settled within a month of being reported
WITHIN_A_MONTH = Q(resolved_at__lte=F("reported_at") + timedelta(days=30))


def overdue(now: datetime | Expression) -> Q:
    """超期: open and past its stage deadline at ``now`` (a time, or ``Now()`` in SQL)."""
    return OPEN & Q(due_at__lt=now)


def counted(qs: QuerySet[Case]) -> QuerySet[Case]:
    """The cases that make up totals and rates (void and merged left out)."""
    return qs.exclude(status__in=NOT_COUNTED)


def rate(part: int | None, whole: int | None) -> float | None:
    """part ÷ whole to four places; ``None`` without a whole or when the part is suppressed."""
    return round(part / whole, 4) if whole and part is not None else None


def counts(now: datetime | None = None) -> dict[str, Count]:
    """The per-group counts as aggregates, for ``counted(qs).aggregate(**counts())`` or
    ``counted(qs).values(key).annotate(**counts())``: total, open, overdue, resolved."""
    now = now or timezone.now()
    return {
        "total": Count("id"),
        "open": Count("id", filter=OPEN),
        "overdue": Count("id", filter=overdue(now)),
        "resolved": Count("id", filter=RESOLVED),
    }


def resolution_rate(row: dict[str, Any]) -> float | None:
    """化解率 of a row of :func:`counts` (resolved ÷ total)."""
    return rate(row.get("resolved", 0), row.get("total", 0))


def ended_at_levels(qs: QuerySet[Case]) -> dict[str, int]:
    """How many resolved cases ended at each level (``unknown`` where none was recorded):
    小矛盾不出小区, 大矛盾不出社区."""
    rows = (
        counted(qs)
        .filter(RESOLVED)
        .order_by()
        .values("resolved_level")
        .annotate(n=Count("id"))
        .order_by("resolved_level")
    )
    return {r["resolved_level"] or "unknown": r["n"] for r in rows}


def case_figures(qs: QuerySet[Case], now: datetime | None = None) -> dict[str, Any]:
    """The case list figures: totals by state, category and the level they ended at, open,
    overdue, resolved, 化解率, 自处理 and disputes settled within a month."""
    now = now or timezone.now()
    base = counted(qs).order_by()
    c = base.aggregate(
        **counts(now),
        disputes_resolved=Count("id", filter=Q(kind=Kind.DISPUTE) & RESOLVED),
        within_month=Count("id", filter=Q(kind=Kind.DISPUTE) & RESOLVED & WITHIN_A_MONTH),
    )
    # 自处理 as the assessment counts them (whatever became of them since)
    on_the_spot = qs.filter(on_the_spot=True).count()
    by_status = dict(
        qs.order_by().values("status").annotate(n=Count("id")).values_list("status", "n")
    )
    by_category = {
        r["category__code"]: {"name": r["category__name"], "count": r["n"]}
        for r in qs.order_by().values("category__code", "category__name").annotate(n=Count("id"))
    }
    return {
        "total": c["total"],
        "by_status": by_status,
        "by_category": by_category,
        "ended_at_level": ended_at_levels(qs),
        "resolved": c["resolved"],
        "resolution_rate": resolution_rate(c),
        "open": c["open"],
        "overdue": c["overdue"],
        "on_the_spot": on_the_spot,
        "disputes_settled_within_a_month": c["within_month"],
        "disputes_settled_within_a_month_rate": rate(c["within_month"], c["disputes_resolved"]),
    }


__all__ = [
    "NOT_COUNTED",
    "OPEN",
    "RESOLVED",
    "WITHIN_A_MONTH",
    "case_figures",
    "counted",
    "counts",
    "ended_at_levels",
    "overdue",
    "rate",
    "resolution_rate",
]
