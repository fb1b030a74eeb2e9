"""The monthly and annual work report (工作月报/年报) of a community or a street.

One function, :func:`work_report`, computes every figure with SQL aggregates (GROUP BY and
conditional counts, never Python loops over rows) so the API, the command, the street's web
page and the supervision/assessment work all show the same numbers:

- 人口: households, residents; minority (少数民族) households (head not Han) and residents and
  their share; residents and households by ethnicity; residency type (户籍/人户分离/流动/境外);
  floating population (流动人口) by place of origin.
- 低保: low-income people and households, the minority among them and their share; low-rent
  housing (廉租房) households; key groups (重点人群) by tag.
- per grid: the same headline figures per grid.
- 走访 (when the visits app is installed): tasks due in the period, done, coverage = done ÷ due,
  visits logged, far-off visits.
- 考核: the supervision scores per grid (按期处置率, 结案率, 按期结案率, 返工率, 超期未处置率,
  延期率, 自处理, weighted score and grade), as in ``/api/v1/assessment/``.
- 矛盾纠纷/安全隐患/信访 (when the cases app has a ``Case`` model): disputes received, resolved,
  resolution rate, by category and by the level where they ended; hazards found and
  rectified; cases flagged petition risk.

Population figures are a snapshot (the registers have no history); visit and case figures
are for the period. Everything is limited to the caller's territory.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from gridsvc.chain.scope import Scope
from gridsvc.territory.codes import ETHNICITIES, HAN
from gridsvc.territory.models import Community, Grid, Household, Resident, Street

TAG_LABELS = dict(Resident.Tag.choices)
RESIDENCY_LABELS = dict(Resident.Residency.choices)


@dataclass(frozen=True)
class Period:
    kind: str  # "month" | "year"
    label: str  # "2026-10" | "2026"
    start: date
    end: date  # exclusive

    @property
    def title(self) -> str:
        if self.kind == "month":
            return f"{self.start.year}年{self.start.month}月"
        return f"{self.start.year}年"

    def bounds(self) -> tuple[datetime, datetime]:
        tz = timezone.get_current_timezone()
        return (
            datetime.combine(self.start, time.min, tz),
            datetime.combine(self.end, time.min, tz),
        )


def month_period(text: str) -> Period:
    m = re.fullmatch(r"(\d{4})-(\d{1,2})", (text or "").strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValidationError({"month": "month must look like 2026-10"})
    y, mo = int(m.group(1)), int(m.group(2))
    start = date(y, mo, 1)
    return Period(
        "month", f"{y}-{mo:02d}", start, start + timedelta(days=calendar.monthrange(y, mo)[1])
    )


def year_period(text: str | int) -> Period:
    s = str(text or "").strip()
    if not re.fullmatch(r"\d{4}", s):
        raise ValidationError({"year": "year must look like 2026"})
    y = int(s)
    return Period("year", s, date(y, 1, 1), date(y + 1, 1, 1))


def resolve_area(
    scope: Scope, *, community: str | None = None, street: str | None = None
) -> Community | Street:
    """The community or street the report is about; it must be visible to the caller."""
    if bool(community) == bool(street):
        raise ValidationError({"community": "give exactly one of community or street (code)"})
    if community:
        obj = scope.filter(Community.objects.filter(code=community)).first()
        if obj is None:
            raise ValidationError({"community": f"no community {community} in your territory"})
        return obj
    obj = scope.filter(Street.objects.filter(code=street)).first()
    if obj is None:
        raise ValidationError({"street": f"no street {street} in your territory"})
    return obj


def _area_q(area: Community | Street, building_path: str) -> Q:
    key = "grid__community" if isinstance(area, Community) else "grid__community__street"
    return Q(**{f"{building_path}{key}": area})


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# ---------------------------------------------------------------- population
def _population(residents: QuerySet, households: QuerySet) -> dict[str, Any]:
    not_han = ~Q(ethnicity=HAN)
    r = residents.aggregate(
        residents=Count("id"),
        minority_residents=Count("id", filter=not_han),
        low_income=Count("id", filter=Q(tags__contains=["low_income"])),
        low_income_minority=Count("id", filter=Q(tags__contains=["low_income"]) & not_han),
        low_income_households=Count(
            "household", filter=Q(tags__contains=["low_income"]), distinct=True
        ),
        low_income_minority_households=Count(
            "household", filter=Q(tags__contains=["low_income"]) & not_han, distinct=True
        ),
        floating=Count("id", filter=Q(residency=Resident.Residency.FLOATING)),
    )
    h = households.aggregate(
        households=Count("id"),
        minority_households=Count("id", filter=Q(head__isnull=False) & ~Q(head__ethnicity=HAN)),
        low_rent_households=Count("id", filter=Q(tenure=Household.Tenure.LOW_RENT)),
    )
    return {
        "households": h["households"],
        "residents": r["residents"],
        "minority_households": h["minority_households"],
        "minority_households_share": _share(h["minority_households"], h["households"]),
        "minority_residents": r["minority_residents"],
        "minority_residents_share": _share(r["minority_residents"], r["residents"]),
        "floating_residents": r["floating"],
        "low_income": {
            "people": r["low_income"],
            "households": r["low_income_households"],
            "minority_people": r["low_income_minority"],
            "minority_households": r["low_income_minority_households"],
            "minority_share": _share(r["low_income_minority"], r["low_income"]),
        },
        "low_rent_households": h["low_rent_households"],
    }


def _by_ethnicity(residents: QuerySet) -> list[dict[str, Any]]:
    rows = (
        residents.order_by()
        .values("ethnicity")
        .annotate(residents=Count("id"), households=Count("household", distinct=True))
        .order_by("-residents", "ethnicity")
    )
    total = sum(r["residents"] for r in rows)
    return [
        {
            "code": r["ethnicity"],
            "name": ETHNICITIES.get(r["ethnicity"], (r["ethnicity"], ""))[0],
            "residents": r["residents"],
            "households": r["households"],
            "share": _share(r["residents"], total),
        }
        for r in rows
    ]


def _by_residency(residents: QuerySet) -> list[dict[str, Any]]:
    rows = residents.order_by().values("residency").annotate(n=Count("id")).order_by("residency")
    return [
        {
            "code": r["residency"],
            "name": RESIDENCY_LABELS.get(r["residency"], ""),
            "residents": r["n"],
        }
        for r in rows
    ]


def _floating_by_origin(residents: QuerySet) -> list[dict[str, Any]]:
    rows = (
        residents.filter(residency=Resident.Residency.FLOATING)
        .order_by()
        .values("origin_place")
        .annotate(n=Count("id"), h=Count("household", distinct=True))
        .order_by("-n", "origin_place")
    )
    return [
        {"origin": r["origin_place"] or "(未填)", "residents": r["n"], "households": r["h"]}
        for r in rows
    ]


def _key_groups(residents: QuerySet) -> list[dict[str, Any]]:
    agg = residents.aggregate(
        **{tag: Count("id", filter=Q(tags__contains=[tag])) for tag in Resident.Tag.values}
    )
    return [{"tag": t, "name": TAG_LABELS[t], "residents": agg[t]} for t in Resident.Tag.values]


def _per_grid(residents: QuerySet, households: QuerySet) -> list[dict[str, Any]]:
    not_han = ~Q(ethnicity=HAN)
    key = "household__unit__building__grid"
    r_rows = {
        r[f"{key}__code"]: r
        for r in residents.order_by()
        .values(f"{key}__code", f"{key}__name")
        .annotate(
            residents=Count("id"),
            minority=Count("id", filter=not_han),
            low_income=Count("id", filter=Q(tags__contains=["low_income"])),
            floating=Count("id", filter=Q(residency=Resident.Residency.FLOATING)),
        )
    }
    h_rows = {
        r["unit__building__grid__code"]: r
        for r in households.order_by()
        .values("unit__building__grid__code")
        .annotate(
            households=Count("id"),
            minority_households=Count("id", filter=Q(head__isnull=False) & ~Q(head__ethnicity=HAN)),
        )
    }
    out = []
    for code in sorted(set(r_rows) | set(h_rows), key=lambda c: c or ""):
        r, h = r_rows.get(code, {}), h_rows.get(code, {})
        out.append(
            {
                "code": code,
                "name": r.get(f"{key}__name") or "",
                "households": h.get("households", 0),
                "minority_households": h.get("minority_households", 0),
                "residents": r.get("residents", 0),
                "minority_residents": r.get("minority", 0),
                "minority_share": _share(r.get("minority", 0), r.get("residents", 0)),
                "low_income": r.get("low_income", 0),
                "floating": r.get("floating", 0),
            }
        )
    return out


# ---------------------------------------------------------------- visits (issue 4)
def _visits(area, period: Period, scope: Scope) -> dict[str, Any]:
    if not apps.is_installed("gridsvc.visits"):
        return {"available": False, "reason": "the visits app is not installed"}
    try:
        VisitTask = apps.get_model("visits", "VisitTask")
        Visit = apps.get_model("visits", "Visit")
    except LookupError:
        return {"available": False, "reason": "the visits app has no VisitTask/Visit yet"}
    S = VisitTask.Status
    tasks = scope.filter(
        VisitTask.objects.filter(
            _area_q(area, "household__unit__building__"),
            due_on__gte=period.start,
            due_on__lt=period.end,
        )
    )
    t = tasks.aggregate(
        due=Count("id"),
        done=Count("id", filter=Q(status=S.DONE)),
        overdue=Count("id", filter=Q(status=S.OVERDUE)),
        missed=Count("id", filter=Q(status=S.MISSED)),
        open=Count("id", filter=Q(status=S.OPEN)),
    )
    by_rule = [
        {
            "rule": r["rule__code"],
            "name": r["rule__name"],
            "due": r["due"],
            "done": r["done"],
            "coverage": _share(r["done"], r["due"]),
        }
        for r in tasks.order_by()
        .values("rule__code", "rule__name")
        .annotate(due=Count("id"), done=Count("id", filter=Q(status=S.DONE)))
        .order_by("rule__code")
    ]
    lo, hi = period.bounds()
    visits = scope.filter(
        Visit.objects.filter(
            _area_q(area, "household__unit__building__"), client_time__gte=lo, client_time__lt=hi
        )
    ).aggregate(
        n=Count("id"),
        far_off=Count("id", filter=Q(far_off=True)),
        households=Count("household", distinct=True),
    )
    return {
        "available": True,
        "tasks_due": t["due"],
        "tasks_done": t["done"],
        "tasks_open": t["open"],
        "tasks_overdue": t["overdue"],
        "tasks_missed": t["missed"],
        "coverage": _share(t["done"], t["due"]),
        "visits_logged": visits["n"],
        "households_visited": visits["households"],
        "far_off_visits": visits["far_off"],
        "by_rule": by_rule,
    }


# ---------------------------------------------------------------- cases (issue 3)
def case_model():  # type: ignore[no-untyped-def]
    try:
        return apps.get_model("cases", "Case")
    except LookupError:
        return None


def _field(model, *names: str) -> str | None:  # type: ignore[no-untyped-def]
    have = {f.name for f in model._meta.get_fields()}
    return next((n for n in names if n in have), None)


def case_fields(Case) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    """How the Case model names what the report needs (None where it has no such field)."""
    return {
        "kind": _field(Case, "kind", "case_type", "type"),
        "category": _field(Case, "category"),
        "state": _field(Case, "state", "status"),
        "reported": _field(Case, "reported_at", "created_at", "created"),
        "resolved": _field(Case, "resolved_at", "closed_at"),
        "level": _field(Case, "current_level", "level", "level_name"),
        "petition": _field(Case, "petition_risk", "flag_petition_risk"),
        "flags": _field(Case, "flags"),
        "grid": _field(Case, "grid"),
    }


RESOLVED_STATES = ("resolved", "verified", "follow_up_verified", "closed")


def _cases(area, period: Period, scope: Scope) -> dict[str, Any]:
    Case = case_model()
    if Case is None:
        return {"available": False, "reason": "the cases app has no Case model yet"}
    f = case_fields(Case)
    if not (f["reported"] and f["grid"] and f["state"]):
        return {"available": False, "reason": f"Case fields not recognised: {f}"}
    lo, hi = period.bounds()
    try:
        qs = scope.filter(Case.objects.all())
    except TypeError as exc:
        return {"available": False, "reason": f"cases cannot be scoped yet: {exc}"}
    key = "community" if isinstance(area, Community) else "community__street"
    qs = qs.filter(
        **{f"{f['grid']}__{key}": area, f"{f['reported']}__gte": lo, f"{f['reported']}__lt": hi}
    )
    resolved_q = Q(**{f"{f['state']}__in": RESOLVED_STATES})
    if f["resolved"]:
        resolved_q |= Q(**{f"{f['resolved']}__isnull": False})

    def kind_q(kind: str) -> Q:
        return Q(**{f["kind"]: kind}) if f["kind"] else Q()

    disputes = qs.filter(kind_q("dispute"))
    hazards = qs.filter(kind_q("hazard")) if f["kind"] else qs.none()
    d = disputes.aggregate(received=Count("id"), resolved=Count("id", filter=resolved_q))
    hz = hazards.aggregate(found=Count("id"), rectified=Count("id", filter=resolved_q))
    out: dict[str, Any] = {
        "available": True,
        "disputes_received": d["received"],
        "disputes_resolved": d["resolved"],
        "resolution_rate": _share(d["resolved"], d["received"]),
        "hazards_found": hz["found"],
        "hazards_rectified": hz["rectified"],
        "rectification_rate": _share(hz["rectified"], hz["found"]),
    }
    if f["category"]:
        cat = f["category"]
        is_fk = Case._meta.get_field(cat).is_relation
        label = f"{cat}__name" if is_fk else cat
        out["disputes_by_category"] = [
            {
                "category": str(r[label]),
                "received": r["n"],
                "resolved": r["r"],
                "rate": _share(r["r"], r["n"]),
            }
            for r in disputes.order_by()
            .values(label)
            .annotate(n=Count("id"), r=Count("id", filter=resolved_q))
            .order_by("-n")
        ]
    if f["level"]:
        out["disputes_by_level_ended"] = [
            {"level": str(r[f["level"]]), "resolved": r["n"]}
            for r in disputes.filter(resolved_q)
            .order_by()
            .values(f["level"])
            .annotate(n=Count("id"))
            .order_by(f["level"])
        ]
    if f["petition"]:
        out["petition_risk"] = qs.filter(**{f["petition"]: True}).count()
    elif f["flags"]:
        out["petition_risk"] = qs.filter(**{f"{f['flags']}__contains": ["petition_risk"]}).count()
    return out


def _assessment(area, period: Period, scope: Scope) -> dict[str, Any]:
    """考核: the supervision scores per grid for the period (same rows as
    ``/api/v1/assessment/?by=grid``), best first."""
    if case_model() is None:
        return {"available": False, "reason": "the cases app is not installed"}
    from gridsvc.cases.assessment import assess
    from gridsvc.cases.models import Case

    key = "community" if isinstance(area, Community) else "community__street"
    qs = scope.filter(Case.objects.all()).filter(**{f"grid__{key}": area})
    rows = assess(qs, "grid", period.start, period.end)
    rows.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0), str(r["name"])))
    return {"available": True, "by_grid": rows}


def case_density_by_grid(area, period: Period, scope: Scope) -> dict[str, int]:
    """Cases reported in the period per grid code (for the heat map); {} without cases."""
    Case = case_model()
    if Case is None:
        return {}
    f = case_fields(Case)
    if not (f["reported"] and f["grid"]):
        return {}
    lo, hi = period.bounds()
    try:
        qs = scope.filter(Case.objects.all())
    except TypeError:
        return {}
    key = "community" if isinstance(area, Community) else "community__street"
    rows = (
        qs.filter(
            **{f"{f['grid']}__{key}": area, f"{f['reported']}__gte": lo, f"{f['reported']}__lt": hi}
        )
        .order_by()
        .values(f"{f['grid']}__code")
        .annotate(n=Count("id"))
    )
    return {r[f"{f['grid']}__code"]: r["n"] for r in rows}


# ---------------------------------------------------------------- the report
def work_report(
    *,
    period: Period,
    scope: Scope,
    community: str | None = None,
    street: str | None = None,
) -> dict[str, Any]:
    """Every figure of the work report for a community or street (see the module doc)."""
    area = resolve_area(scope, community=community, street=street)
    residents = scope.filter(Resident.objects.filter(_area_q(area, "household__unit__building__")))
    households = scope.filter(Household.objects.filter(_area_q(area, "unit__building__")))
    grids = scope.filter(
        Grid.objects.filter(
            parent__isnull=True,
            **({"community": area} if isinstance(area, Community) else {"community__street": area}),
        )
    )
    return {
        "area": {
            "level": "community" if isinstance(area, Community) else "street",
            "code": area.code,
            "name": area.name,
            "grids": grids.count(),
        },
        "period": {"kind": period.kind, "label": period.label, "title": period.title,
                   "start": period.start.isoformat(), "end": (period.end - timedelta(days=1)).isoformat()},
        "generated_at": timezone.now().isoformat(timespec="seconds"),
        "population": _population(residents, households),
        "by_ethnicity": _by_ethnicity(residents),
        "by_residency": _by_residency(residents),
        "floating_by_origin": _floating_by_origin(residents),
        "key_groups": _key_groups(residents),
        "grids": _per_grid(residents, households),
        "visits": _visits(area, period, scope),
        "cases": _cases(area, period, scope),
        "assessment": _assessment(area, period, scope),
    }  # fmt: skip


# ---------------------------------------------------------------- documents
MEDIA = {
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}


def grid_shapes(report: dict[str, Any], scope: Scope) -> list[tuple[str, str, Any]]:
    """(code, name, shapely geometry) of the report's grids, for the map."""
    import shapely
    from django.contrib.gis.db.models.functions import AsWKB

    level = report["area"]["level"]
    key = "community__code" if level == "community" else "community__street__code"
    rows = (
        scope.filter(Grid.objects.filter(parent__isnull=True, **{key: report["area"]["code"]}))
        .annotate(wkb=AsWKB("boundary"))
        .values_list("code", "name", "wkb")
        .order_by("code")
    )
    return [(c, n, shapely.from_wkb(bytes(w))) for c, n, w in rows]


def report_document(
    fmt: str,
    *,
    period: Period,
    scope: Scope,
    member=None,  # type: ignore[no-untyped-def]
    community: str | None = None,
    street: str | None = None,
) -> tuple[dict[str, Any], bytes | None, str]:
    """The report and, for xlsx/pdf, its rendered file and a file name. Rendered files are
    exports of figures about people and are written to the audit log."""
    if fmt not in MEDIA:
        raise ValidationError({"format": "format must be json, xlsx or pdf"})
    report = work_report(period=period, scope=scope, community=community, street=street)
    name = f"work-report-{report['area']['code']}-{period.label}.{fmt}"
    if fmt == "json":
        return report, None, name
    from . import render

    if fmt == "xlsx":
        content = render.report_xlsx(report)
    else:
        area = resolve_area(scope, community=community, street=street)
        content = render.report_pdf(
            report, grid_shapes(report, scope), case_density_by_grid(area, period, scope)
        )
    from gridsvc.dataio.access import audit_export

    audit_export(
        member,
        "work_report",
        detail={"area": report["area"]["code"], "period": period.label, "format": fmt},
    )
    return report, content, name
