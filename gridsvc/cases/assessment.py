"""Assessment 考核 from cases: counts per member, grid, community or outside department for a
period, the figures and the weighted score (formulas in :mod:`gridsvc.supervision.assessment`
and docs/supervision.md), and the cases behind every figure (drill-down).

What is counted, for cases whose handling deadline (``handle_due_at``, moved by approved
extensions) falls in the period — void, merged and rejected cases are not counted:

- due: those cases; handled: resolved (or verified/closed); handled_on_time: resolved by the
  deadline; closed / closed_on_time: closed, and closed having been resolved by the deadline;
  deferred: extended or on hold; extended: an approved extension; reworked: re-dispatched after
  an unsatisfied follow-up; overdue_unhandled: not handled and the deadline passed;
- on_the_spot: 自处理 cases reported in the period (counted apart, not in ``due``).

The member a case counts for is its handler (who holds it now or resolved it).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, time
from typing import Any

from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from gridsvc.supervision.assessment import Counts, figures, grade, score
from gridsvc.supervision.models import AssessmentScheme

from .figures import NOT_COUNTED as _NOT_COUNTED
from .figures import RESOLVED
from .models import Case, Status

GROUPS = {
    "member": ("handler", "handler__display_name"),
    "grid": ("grid", "grid__name"),
    "community": ("community", "community__name"),
    "department": ("department", "department__name"),
}
#: void, merged (as in every case figure) and rejected cases are not due for handling
NOT_COUNTED = (*_NOT_COUNTED, Status.REJECTED)


def figure_filters(now: datetime) -> dict[str, Q]:
    """The condition behind each count (used for the counts and for the drill-down); handled
    is :data:`gridsvc.cases.figures.RESOLVED`, the resolved of every case figure."""
    handled = RESOLVED
    on_time = handled & Q(resolved_at__lte=F("handle_due_at"))
    return {
        "due": Q(),
        "handled": handled,
        "handled_on_time": on_time,
        "closed": Q(status=Status.CLOSED),
        "closed_on_time": Q(status=Status.CLOSED) & Q(resolved_at__lte=F("handle_due_at")),
        "deferred": Q(extended_count__gt=0) | Q(status=Status.ON_HOLD),
        "extended": Q(extended_count__gt=0),
        "reworked": Q(reworked_count__gt=0),
        "overdue_unhandled": ~handled & Q(handle_due_at__lt=now),
    }


#: Every figure the drill-down lists the cases of (the counts above, and on-the-spot).
FIGURES: tuple[str, ...] = (*figure_filters(timezone.now()), "on_the_spot")


def _bounds(since: date, until: date) -> tuple[datetime, datetime]:
    tz = timezone.get_current_timezone()
    return (
        datetime.combine(since, time.min, tzinfo=tz),
        datetime.combine(until, time.min, tzinfo=tz),
    )


def due_cases(qs: QuerySet[Case], since: date, until: date) -> QuerySet[Case]:
    start, end = _bounds(since, until)
    return qs.exclude(status__in=NOT_COUNTED).filter(
        handle_due_at__gte=start, handle_due_at__lt=end, on_the_spot=False
    )


def scheme() -> tuple[dict[str, float], list[list[Any]]]:
    row = AssessmentScheme.objects.filter(active=True).order_by("id").first()
    if row is None:
        return {}, []
    return row.weights, row.grades


def assess(qs: QuerySet[Case], by: str, since: date, until: date) -> list[dict[str, Any]]:
    """One row per member/grid/community/department: counts, figures, score and grade."""
    if by not in GROUPS:
        raise ValueError(f"by must be one of {', '.join(GROUPS)}")
    key, label = GROUPS[by]
    now = min(timezone.now(), _bounds(since, until)[1])
    conds = figure_filters(now)
    rows = {
        r[key]: r
        for r in due_cases(qs, since, until)
        .exclude(**{f"{key}__isnull": True})
        .values(key, label)
        .annotate(**{name: Count("id", filter=q) for name, q in conds.items()})
    }
    start, end = _bounds(since, until)
    spots = dict(
        qs.filter(on_the_spot=True, reported_at__gte=start, reported_at__lt=end)
        .exclude(**{f"{key}__isnull": True})
        .values(key)
        .annotate(n=Count("id"))
        .values_list(key, "n")
    )
    weights, grades = scheme()
    out = []
    for k in sorted(set(rows) | set(spots), key=lambda v: (v is None, v)):
        r = rows.get(k, {})
        counts = Counts(**{n: r.get(n, 0) for n in conds}, on_the_spot=spots.get(k, 0))
        f = figures(counts)
        points = score(f, weights or None)
        out.append(
            {
                "key": k,
                "name": r.get(label) or _name(by, k),
                "counts": asdict(counts),
                "figures": f.as_dict(),
                "score": points,
                "grade": grade(points, grades or None),
            }
        )
    return out


def _name(by: str, pk: object) -> str:
    from django.apps import apps

    model = {
        "member": apps.get_model("accounts", "Member"),
        "grid": apps.get_model("territory", "Grid"),
        "community": apps.get_model("territory", "Community"),
        "department": apps.get_model("cases", "Department"),
    }[by]
    obj = model._default_manager.filter(pk=pk).first()
    return str(obj) if obj else str(pk)


def drill_down(
    qs: QuerySet[Case], by: str, key: int, figure: str, since: date, until: date
) -> QuerySet[Case]:
    """The cases behind one count of one row."""
    if by not in GROUPS:
        raise ValueError(f"by must be one of {', '.join(GROUPS)}")
    field = GROUPS[by][0]
    if figure == "on_the_spot":
        start, end = _bounds(since, until)
        return qs.filter(
            on_the_spot=True, reported_at__gte=start, reported_at__lt=end, **{field: key}
        )
    conds = figure_filters(min(timezone.now(), _bounds(since, until)[1]))
    if figure not in conds:
        raise ValueError(f"figure must be one of {', '.join([*conds, 'on_the_spot'])}")
    return due_cases(qs, since, until).filter(conds[figure], **{field: key})
