"""The monthly and annual work report (工作月报/年报) of a community or a street.

One function, :func:`work_report`, computes every figure with SQL aggregates (GROUP BY and
conditional counts, never Python loops over rows) so the API, the command, the street's web
page and the supervision/assessment work all show the same numbers:

- 人口: households, residents; minority (少数民族) households (head not Han) and residents and
  their share; residents and households by ethnicity; residency type (户籍/人户分离/流动/境外);
  floating population (流动人口) by place of origin.
- 低保: people and households on 低保 — approved 低保 applications in force on the period's last
  day (gridsvc.assistance.figures, the one definition: the same figure in 概况, the per-grid
  table, the charts and the 民生服务 section), the minority among them and their share;
  households living in 廉租房 (实物配租, ``Household.tenure`` — a housing type, not the
  廉租房租赁补贴 paid, which is a 民生服务 figure from the records); key groups (重点人群) by tag
  (the 低保 and 廉租房 tags left out: those figures are the ones above).
- per grid: the same headline figures per grid.
- 走访 (when the visits app is installed): tasks due in the period, done, coverage = done ÷ due,
  visits logged, far-off visits.
- 考核: the supervision scores per grid (按期处置率, 结案率, 按期结案率, 返工率, 超期未处置率,
  延期率, 自处理, weighted score and grade), as in ``/api/v1/assessment/``.
- 矛盾纠纷/安全隐患/信访 (when the cases app has a ``Case`` model): disputes received, resolved,
  resolution rate, by category and by the level where they ended; hazards found and
  rectified; cases flagged petition risk.
- 民族团结进步创建 (``unity``, staff and street only): :func:`gridsvc.community.services.figures`
  for the area and period, once; the xlsx writes it on a sheet of its own and the PDF in a
  section of its own, both from this dict (:func:`gridsvc.reports.render.unity_rows`) —
  activities, 五员 screening, 信访, venues, pairing help, volunteers, ratings, mediations, the
  group ledgers, interpreters and the 五员/一格十员's languages (``member_languages``).

Tag figures (重点人群) are as of the period's last day, read from the status history
(:mod:`gridsvc.territory.history`): a tag edited later does not move a past period's figures.
Household and resident counts are a snapshot (residences have no history); visit and case
figures are for the period. Everything is limited to the caller's territory. A report issued
(:func:`issue_report`, 印发) is kept as issued: the street tier asking for it again gets the
stored figures (:class:`~gridsvc.reports.models.IssuedReport`).

Need-to-know (:mod:`gridsvc.chain.visibility`, the ``tier`` argument):

- the neighbour tier (楼长、单元长、物业、业委会) gets no figure about a sensitive attribute at
  all: no ethnicity (少数民族 counts, 民族构成), no 低保/廉租房/困难 counts, no sensitive key
  groups (社区矫正、两劳帮教、残疾、宗教人士 …), no visits of sensitive target groups. The keys
  are absent, not zero.
- the staff tier gets them counted only over the part of its territory held through staff
  positions (:func:`~gridsvc.chain.visibility.staff_scope`), with small cells suppressed:
  a count of 1–4 is ``None`` (shown as "<5" in files), its share too, and where a total is
  published beside a group of cells, further cells are suppressed until the hidden ones sum
  to at least k, so no suppressed cell can be had by subtraction.
- the street tier (and the operator's command) gets exact counts.

``report["privacy"]`` says which applied.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Case as DbCase
from django.db.models import CharField, Count, F, Q, QuerySet, Value, When
from django.utils import timezone

from gridsvc.cases import figures as case_figures
from gridsvc.cases.assessment import assess
from gridsvc.cases.models import Case, Kind
from gridsvc.chain.scope import Scope
from gridsvc.chain.visibility import (
    SENSITIVE_TAGS,
    SMALL_CELL_K,
    Tier,
    knows_sensitive,
    staff_scope,
    suppress_small,
    tier_for,
)
from gridsvc.territory.codes import ETHNICITIES, HAN
from gridsvc.territory.history import tag_held_on
from gridsvc.territory.models import Community, Grid, Household, Resident, Street
from gridsvc.visits.models import Visit, VisitTask

TAG_LABELS = dict(Resident.Tag.choices)
#: 重点人群 by tag: every tag but 低保 and 廉租房, whose figures are the report's 低保 (from the
#: approved applications) and 廉租房 (the housing type) rows — one definition, shown once.
KEY_GROUP_TAGS = [t for t in Resident.Tag.values if t not in ("low_income", "low_rent_housing")]
DIBAO = "dibao"  # gridsvc.assistance.models.Kind.DIBAO
RESIDENCY_LABELS = dict(Resident.Residency.choices)


@dataclass(frozen=True)
class Period:
    kind: str  # "month" | "year"
    label: str  # "2026-10" | "2026"
    start: date
    end: date  # exclusive

    @property
    def last_day(self) -> date:
        """The day the period's tag figures are read as of (its last day)."""
        return self.end - timedelta(days=1)

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
    """A month asked for (``2026-10``) in the years of :func:`parse_year`; else a 400 naming
    ``month`` (year 0000 was a 500)."""
    m = re.fullmatch(r"(\d{4})-(\d{1,2})", str(text or "").strip())
    if not m or not 1 <= int(m.group(2)) <= 12 or not YEAR_MIN <= int(m.group(1)) <= YEAR_MAX:
        raise ValidationError({"month": "month must look like 2026-10"})
    y, mo = int(m.group(1)), int(m.group(2))
    start = date(y, mo, 1)
    return Period(
        "month", f"{y}-{mo:02d}", start, start + timedelta(days=calendar.monthrange(y, mo)[1])
    )


#: the years a report, a ledger or a month of them may be asked for (one range for all)
YEAR_MIN, YEAR_MAX = 1900, 2999


def parse_year(text: str | int) -> int:
    """A year asked for in a query (``year=2026``): four digits, 1900–2999; else a 400 naming
    ``year``. The one parser of every report's and ledger's year."""
    s = str(text or "").strip()
    if not re.fullmatch(r"\d{4}", s) or not YEAR_MIN <= int(s) <= YEAR_MAX:
        raise ValidationError({"year": "year must look like 2026"})
    return int(s)


def year_period(text: str | int) -> Period:
    y = parse_year(text)
    return Period("year", str(y), date(y, 1, 1), date(y + 1, 1, 1))


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


def figures_tier(member: Any, scope: Scope, area: Community | Street | None = None) -> Tier:
    """The tier at which ``member`` reads figures of ``area`` (None: of their whole staff
    territory, as ``/assistance/figures/`` counts it). The street tier's exact small counts
    are for the street it holds its street post over: a dispatcher of one street who is a
    grid member in another reads that other street's figures as staff (small cells
    suppressed, no report kept as issued for the whole area). ``member`` None (the
    operator's command) is STREET."""
    tier = Tier.STREET if member is None else tier_for(member)
    if member is None or tier < Tier.STREET or scope.everything:
        return tier
    if area is not None:
        street_id = area.pk if isinstance(area, Street) else area.street_id
        return tier if street_id in scope.street_ids else Tier.STAFF
    staff = staff_scope(scope)
    outside = (
        Community.objects.filter(id__in=staff.community_ids)
        .exclude(street_id__in=staff.street_ids)
        .exists()
        or Grid.objects.filter(id__in=staff.grid_ids)
        .exclude(community__street_id__in=staff.street_ids)
        .exists()
    )
    return Tier.STAFF if outside else tier


def _area_q(area: Community | Street, building_path: str) -> Q:
    key = "grid__community" if isinstance(area, Community) else "grid__community__street"
    return Q(**{f"{building_path}{key}": area})


def _share(part: int | None, whole: int | None) -> float | None:
    """part ÷ whole; None without a whole or when the part is suppressed."""
    return round(part / whole, 4) if whole and part is not None else None


# ---------------------------------------------------------------- small cells
def suppress_group(
    counts: list[int],
    tier: Tier,
    sensitive: list[bool] | None = None,
    forced: list[bool] | None = None,
) -> list[int | None]:
    """Small-cell suppression over a group of cells whose total is published (k = 5).

    Primary: every count 1..k-1 of a ``sensitive`` cell (default: all) becomes None (below the
    street tier), and every ``forced`` cell (one whose complement is small: 3 Han residents
    beside a grid's 300 minority ones). Secondary: if any cell is hidden, further cells
    (smallest first) are hidden until at least two are and they sum to k or more, so the
    total minus the shown cells never reveals a small count."""
    flags = sensitive if sensitive is not None else [True] * len(counts)
    shown: list[int | None] = [
        suppress_small(c, tier) if flag else c for c, flag in zip(counts, flags, strict=True)
    ]
    for i, force in enumerate(forced or []):
        if force and tier < Tier.STREET:
            shown[i] = None
    hidden = [i for i, v in enumerate(shown) if v is None]
    if not hidden:
        return shown
    rest = sorted((c, i) for i, c in enumerate(counts) if shown[i] is not None and c > 0)
    total = sum(counts[i] for i in hidden)
    while rest and (len(hidden) < 2 or total < SMALL_CELL_K):
        c, i = rest.pop(0)
        shown[i] = None
        hidden.append(i)
        total += c
    return shown


def _suppress_rows(
    rows: list[dict[str, Any]],
    key: str,
    tier: Tier,
    also: tuple[str, ...] = (),
    sensitive: list[bool] | None = None,
    whole: str | None = None,
) -> None:
    """Group-suppress ``rows[*][key]`` in place; a hidden cell hides ``also`` of its row too.
    ``whole``: the key of each row's total that ``key`` is part of — a cell whose complement
    (whole − part) is small is hidden too."""
    forced = None
    if whole is not None:
        forced = [
            r[key] is not None and suppress_small(r[whole] - r[key], tier) is None for r in rows
        ]
    values = suppress_group([r[key] for r in rows], tier, sensitive, forced)
    for row, value in zip(rows, values, strict=True):
        if value is None:
            row[key] = None
            for k in also:
                row[k] = None


def privacy_note(tier: Tier) -> dict[str, Any]:
    """What need-to-know did to this report (``report["privacy"]``)."""
    if not knows_sensitive(tier):
        return {"tier": tier.name.lower(), "sensitive_figures": "omitted"}
    if tier >= Tier.STREET:
        return {"tier": tier.name.lower(), "sensitive_figures": "exact"}
    return {
        "tier": tier.name.lower(),
        "sensitive_figures": "suppressed_below_k",
        "k": SMALL_CELL_K,
        "marker": f"<{SMALL_CELL_K}",
    }


# ---------------------------------------------------------------- population
def _population(
    residents: QuerySet,
    households: QuerySet,
    sensitive: tuple[QuerySet, QuerySet] | None,
    tier: Tier,
    low_income: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Population headline figures. ``sensitive`` is (residents, households) over the staff
    part of the scope, or None for the neighbour tier (no sensitive figure at all);
    ``low_income`` the 低保 figures from the records
    (:func:`gridsvc.assistance.figures.low_income_summary`)."""
    base_r = residents.aggregate(
        residents=Count("id"),
        floating=Count("id", filter=Q(residency=Resident.Residency.FLOATING)),
    )
    out: dict[str, Any] = {
        "households": households.count(),
        "residents": base_r["residents"],
        "floating_residents": base_r["floating"],
    }
    if sensitive is None:
        return out
    s_res, s_hh = sensitive
    not_han = ~Q(ethnicity=HAN)
    r = s_res.aggregate(residents=Count("id"), minority_residents=Count("id", filter=not_han))
    h = s_hh.aggregate(
        households=Count("id"),
        minority_households=Count("id", filter=Q(head__isnull=False) & ~Q(head__ethnicity=HAN)),
        low_rent_households=Count("id", filter=Q(tenure=Household.Tenure.LOW_RENT)),
    )
    k = {name: suppress_small(v, tier) for name, v in (r | h).items()}
    # minority + Han = all, 廉租房 + other housing = all: a small count of either would follow
    # from the other (the same rule as gridsvc.assistance.figures.suppressed)
    for part, whole in (
        ("minority_residents", "residents"),
        ("minority_households", "households"),
        ("low_rent_households", "households"),
    ):
        if k[part] is not None and suppress_small((r | h)[whole] - (r | h)[part], tier) is None:
            k[part] = None
    return out | {
        "minority_households": k["minority_households"],
        "minority_households_share": _share(k["minority_households"], h["households"]),
        "minority_residents": k["minority_residents"],
        "minority_residents_share": _share(k["minority_residents"], r["residents"]),
        "low_income": low_income
        or {
            "people": 0,
            "households": 0,
            "minority_people": 0,
            "minority_households": 0,
            "minority_share": None,
            "source": "applications",
        },
        "low_rent_households": k["low_rent_households"],
    }


def _by_ethnicity(residents: QuerySet, tier: Tier) -> list[dict[str, Any]]:
    rows = list(
        residents.order_by()
        .values("ethnicity")
        .annotate(residents=Count("id"), households=Count("household", distinct=True))
        .order_by("-residents", "ethnicity")
    )
    total = sum(r["residents"] for r in rows)
    out = [
        {
            "code": r["ethnicity"],
            "name": ETHNICITIES.get(r["ethnicity"], (r["ethnicity"], ""))[0],
            "residents": r["residents"],
            "households": r["households"],
            "share": _share(r["residents"], total),
        }
        for r in rows
    ]
    _suppress_rows(out, "residents", tier, ("households", "share"))
    for row in out:
        row["households"] = suppress_small(row["households"], tier)
    return out


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


def _key_groups(
    residents: QuerySet, sensitive: QuerySet | None, tier: Tier, day: date
) -> list[dict[str, Any]]:
    """重点人群 by tag as of ``day``; sensitive tags only for tiers that may know them (counted
    over the staff part of the scope, small cells suppressed)."""
    plain = [t for t in KEY_GROUP_TAGS if t not in SENSITIVE_TAGS]
    agg = residents.aggregate(**{t: Count("id", filter=tag_held_on(t, day)) for t in plain})
    if sensitive is not None:
        sens = [t for t in KEY_GROUP_TAGS if t in SENSITIVE_TAGS]
        s_agg = sensitive.aggregate(**{t: Count("id", filter=tag_held_on(t, day)) for t in sens})
        agg |= {t: suppress_small(n, tier) for t, n in s_agg.items()}
    return [
        {"tag": t, "name": TAG_LABELS[t], "residents": agg[t]} for t in KEY_GROUP_TAGS if t in agg
    ]


def _per_grid(
    residents: QuerySet,
    households: QuerySet,
    sensitive: tuple[QuerySet, QuerySet] | None,
    tier: Tier,
    day: date,
) -> list[dict[str, Any]]:
    key = "household__unit__building__grid"
    r_rows = {
        r[f"{key}__code"]: r
        for r in residents.order_by()
        .values(f"{key}__code", f"{key}__name")
        .annotate(
            residents=Count("id"),
            floating=Count("id", filter=Q(residency=Resident.Residency.FLOATING)),
        )
    }
    h_rows = {
        r["unit__building__grid__code"]: r
        for r in households.order_by().values("unit__building__grid__code").annotate(n=Count("id"))
    }
    out = []
    for code in sorted(set(r_rows) | set(h_rows), key=lambda c: c or ""):
        r, h = r_rows.get(code, {}), h_rows.get(code, {})
        out.append(
            {
                "code": code,
                "name": r.get(f"{key}__name") or "",
                "households": h.get("n", 0),
                "residents": r.get("residents", 0),
                "floating": r.get("floating", 0),
            }
        )
    if sensitive is None:
        return out
    from gridsvc.assistance.figures import households_on

    s_res, s_hh = sensitive
    not_han = ~Q(ethnicity=HAN)
    sr = {
        r[f"{key}__code"]: r
        for r in s_res.order_by()
        .values(f"{key}__code")
        .annotate(
            residents=Count("id"),
            minority=Count("id", filter=not_han),
            low_income=Count("id", filter=Q(household__in=households_on(DIBAO, day))),
        )
    }
    sh = {
        r["unit__building__grid__code"]: r
        for r in s_hh.order_by()
        .values("unit__building__grid__code")
        .annotate(
            n=Count("id", filter=Q(head__isnull=False) & ~Q(head__ethnicity=HAN)),
            total=Count("id"),
        )
    }
    # grids reached only through neighbour positions get no sensitive figure (None)
    covered = [row for row in out if row["code"] in sr or row["code"] in sh]
    for row in out:
        s_row, here = sr.get(row["code"], {}), row["code"] in sr or row["code"] in sh
        h_row = sh.get(row["code"], {})
        row["minority_households"] = h_row.get("n", 0) if here else None
        row["minority_residents"] = s_row.get("minority", 0) if here else None
        row["low_income"] = s_row.get("low_income", 0) if here else None
        row["_staff_residents"] = s_row.get("residents", 0)
        row["_staff_households"] = h_row.get("total", 0)
    # a part beside its grid's total: the rest (Han residents, households not on 低保) is a
    # cell too — a small rest is as telling as a small part
    for key, whole in (
        ("minority_residents", "_staff_residents"),
        ("minority_households", "_staff_households"),
        ("low_income", "_staff_residents"),
    ):
        _suppress_rows(covered, key, tier, whole=whole)
    for row in out:
        row["minority_share"] = _share(row["minority_residents"], row.pop("_staff_residents"))
        row.pop("_staff_households")
    return out


# ---------------------------------------------------------------- visits (issue 4)
def _visits(area: Community | Street, period: Period, scope: Scope, tier: Tier) -> dict[str, Any]:
    """走访 figures. Visit rules of a sensitive target group (社区矫正 …) count people of that
    group: left out for the neighbour tier, counted over the staff part of the scope and
    suppressed below k for the staff tier."""
    S = VisitTask.Status
    sensitive_rule = Q(rule__target_group__in=SENSITIVE_TAGS)
    tasks = scope.filter(
        VisitTask.objects.filter(
            _area_q(area, "household__unit__building__"),
            due_on__gte=period.start,
            due_on__lt=period.end,
        )
    )
    visits = scope.filter(Visit.objects.filter(_area_q(area, "household__unit__building__")))
    if knows_sensitive(tier):
        staff = staff_scope(scope)
        outside_staff = sensitive_rule & ~Q(pk__in=staff.filter(VisitTask.objects.all()))
        tasks = tasks.exclude(outside_staff)
    else:
        tasks = tasks.exclude(sensitive_rule)
        visits = visits.exclude(task__rule__target_group__in=SENSITIVE_TAGS).exclude(
            resident__tags__overlap=list(SENSITIVE_TAGS)
        )
    t = tasks.aggregate(
        due=Count("id"),
        done=Count("id", filter=Q(status=S.DONE)),
        overdue=Count("id", filter=Q(status=S.OVERDUE)),
        missed=Count("id", filter=Q(status=S.MISSED)),
        open=Count("id", filter=Q(status=S.OPEN)),
    )
    rules = list(
        tasks.order_by()
        .values("rule__code", "rule__name", "rule__target_group")
        .annotate(due=Count("id"), done=Count("id", filter=Q(status=S.DONE)))
        .order_by("rule__code")
    )
    by_rule = [
        {
            "rule": r["rule__code"],
            "name": r["rule__name"],
            "due": r["due"],
            "done": r["done"],
            "coverage": _share(r["done"], r["due"]),
        }
        for r in rules
    ]
    # the rows of sensitive rules count people: suppress them (and enough others) below k
    flags = [r["rule__target_group"] in SENSITIVE_TAGS for r in rules]
    _suppress_rows(by_rule, "due", tier, ("done", "coverage"), flags)
    for row, flag in zip(by_rule, flags, strict=True):
        if flag and row["done"] is not None and suppress_small(row["done"], tier) is None:
            row["done"] = row["coverage"] = None
    lo, hi = period.bounds()
    v = visits.filter(client_time__gte=lo, client_time__lt=hi).aggregate(
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
        "visits_logged": v["n"],
        "households_visited": v["households"],
        "far_off_visits": v["far_off"],
        "by_rule": by_rule,
    }


# ---------------------------------------------------------------- cases (issue 3)
def _area_cases(area: Community | Street, scope: Scope) -> QuerySet:
    key = "community" if isinstance(area, Community) else "community__street"
    return scope.filter(Case.objects.all()).filter(**{f"grid__{key}": area})


# 已化解/已整改: as every other case figure counts it (gridsvc.cases.figures)
RESOLVED_Q = case_figures.RESOLVED


# What the neighbour tier reads as the category of a case flagged 涉及民族宗教因素.
OTHER_CATEGORY = "其他矛盾纠纷"


def _cases(area: Community | Street, period: Period, scope: Scope, tier: Tier) -> dict[str, Any]:
    """矛盾纠纷/安全隐患 figures. For the neighbour tier, disputes flagged as involving ethnic or
    religious factors are counted under :data:`OTHER_CATEGORY` (ethnicity and religion are
    hidden from neighbours)."""
    lo, hi = period.bounds()
    qs = _area_cases(area, scope).filter(reported_at__gte=lo, reported_at__lt=hi)
    disputes = case_figures.counted(qs).filter(kind=Kind.DISPUTE)
    hazards = case_figures.counted(qs).filter(kind=Kind.HAZARD)
    d = disputes.aggregate(received=Count("id"), resolved=Count("id", filter=RESOLVED_Q))
    hz = hazards.aggregate(found=Count("id"), rectified=Count("id", filter=RESOLVED_Q))
    return {
        "available": True,
        "disputes_received": d["received"],
        "disputes_resolved": d["resolved"],
        "resolution_rate": case_figures.rate(d["resolved"], d["received"]),
        "hazards_found": hz["found"],
        "hazards_rectified": hz["rectified"],
        "rectification_rate": case_figures.rate(hz["rectified"], hz["found"]),
        "disputes_by_category": [
            {
                "category": r["category_label"],
                "received": r["n"],
                "resolved": r["r"],
                "rate": case_figures.rate(r["r"], r["n"]),
            }
            for r in disputes.order_by()
            .annotate(
                category_label=F("category__name")
                if knows_sensitive(tier)
                else DbCase(
                    When(ethnic_religious=True, then=Value(OTHER_CATEGORY)),
                    default=F("category__name"),
                    output_field=CharField(),
                )
            )
            .values("category_label")
            .annotate(n=Count("id"), r=Count("id", filter=RESOLVED_Q))
            .order_by("-n")
        ],
        "disputes_by_level_ended": [
            {"level": level, "resolved": n}
            for level, n in case_figures.ended_at_levels(disputes).items()
        ],
        "petition_risk": qs.filter(petition_risk=True).count(),
    }


def _assessment(area: Community | Street, period: Period, scope: Scope) -> dict[str, Any]:
    """考核: the supervision scores per grid for the period (same rows as
    ``/api/v1/assessment/?by=grid``), best first."""
    rows = assess(_area_cases(area, scope), "grid", period.start, period.end)
    rows.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0), str(r["name"])))
    return {"available": True, "by_grid": rows}


def case_density_by_grid(area: Community | Street, period: Period, scope: Scope) -> dict[str, int]:
    """Cases reported in the period per grid code (for the heat map)."""
    lo, hi = period.bounds()
    rows = (
        _area_cases(area, scope)
        .filter(reported_at__gte=lo, reported_at__lt=hi)
        .order_by()
        .values("grid__code")
        .annotate(n=Count("id"))
    )
    return {r["grid__code"]: r["n"] for r in rows}


# ---------------------------------------------------------------- the report
def work_report(
    *,
    period: Period,
    scope: Scope,
    community: str | None = None,
    street: str | None = None,
    tier: Tier = Tier.STREET,
) -> dict[str, Any]:
    """Every figure of the work report for a community or street (see the module doc), as
    ``tier`` may know them (the operator's command: STREET)."""
    area = resolve_area(scope, community=community, street=street)
    r_q = _area_q(area, "household__unit__building__")
    h_q = _area_q(area, "unit__building__")
    residents = scope.filter(Resident.objects.filter(r_q))
    households = scope.filter(Household.objects.filter(h_q))
    sensitive: tuple[QuerySet, QuerySet] | None = None
    if knows_sensitive(tier):
        staff = staff_scope(scope)
        sensitive = (
            staff.filter(Resident.objects.filter(r_q)),
            staff.filter(Household.objects.filter(h_q)),
        )
    grids = scope.filter(
        Grid.objects.filter(
            parent__isnull=True,
            **({"community": area} if isinstance(area, Community) else {"community__street": area}),
        )
    )
    from gridsvc.assistance.figures import low_income_summary

    assistance = _assistance(area, period, scope, tier)
    low_income = low_income_summary(assistance)
    report: dict[str, Any] = {
        "area": {
            "level": "community" if isinstance(area, Community) else "street",
            "code": area.code,
            "name": area.name,
            "grids": grids.count(),
        },
        "period": {"kind": period.kind, "label": period.label, "title": period.title,
                   "start": period.start.isoformat(), "end": (period.end - timedelta(days=1)).isoformat()},
        "generated_at": timezone.now().isoformat(timespec="seconds"),
        "privacy": privacy_note(tier),
        "population": _population(residents, households, sensitive, tier, low_income),
    }  # fmt: skip
    if sensitive is not None:
        report["by_ethnicity"] = _by_ethnicity(sensitive[0], tier)
    return report | {
        "by_residency": _by_residency(residents),
        "floating_by_origin": _floating_by_origin(residents),
        "key_groups": _key_groups(
            residents, sensitive[0] if sensitive else None, tier, period.last_day
        ),
        "grids": _per_grid(residents, households, sensitive, tier, period.last_day),
        "visits": _visits(area, period, scope, tier),
        "cases": _cases(area, period, scope, tier),
        "assessment": _assessment(area, period, scope),
        **_unity(area, period, scope, tier),
        **assistance,
    }


def _assistance(
    area: Community | Street, period: Period, scope: Scope, tier: Tier
) -> dict[str, Any]:
    """民生服务 figures from the assistance records and 流动人口 inflow/outflow
    (gridsvc.assistance.figures, docs/assistance.md): staff and street only."""
    from gridsvc.assistance.figures import report_section

    return report_section(area, period, scope, tier)


def _unity(area: Community | Street, period: Period, scope: Scope, tier: Tier) -> dict[str, Any]:
    """民族团结进步创建 figures (gridsvc.community, docs/unity.md): staff and street only."""
    if not knows_sensitive(tier):
        return {}
    from gridsvc.community.services import figures

    return {"unity": figures(staff_scope(scope), period.start, period.end, area, tier)}


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
    """The report as ``member``'s tier may know it (``None``, the operator: STREET) and, for
    xlsx/pdf, its rendered file and a file name. Rendered files are exports of figures about
    people and are written to the audit log."""
    if fmt not in MEDIA:
        raise ValidationError({"format": "format must be json, xlsx or pdf"})
    area = resolve_area(scope, community=community, street=street)
    tier = figures_tier(member, scope, area)
    issued = None
    if tier >= Tier.STREET:  # the whole area is the reader's street's: the issued figures
        issued = issued_report(period, area)
    if issued is not None:  # kept as issued: the same numbers, whatever changed since
        report = issued.report | {"issued": issued_note(issued)}
    else:
        report = work_report(
            period=period, scope=scope, community=community, street=street, tier=tier
        )
    name = f"work-report-{report['area']['code']}-{period.label}.{fmt}"
    if fmt == "json":
        return report, None, name
    from . import render

    if fmt == "xlsx":
        content = render.report_xlsx(report)
    else:
        density = (
            issued.case_density if issued is not None else case_density_by_grid(area, period, scope)
        )
        content = render.report_pdf(report, grid_shapes(report, scope), density)
    from gridsvc.dataio.access import audit_export

    audit_export(
        member,
        "work_report",
        detail={"area": report["area"]["code"], "period": period.label, "format": fmt},
    )
    return report, content, name


# ---------------------------------------------------------------- issued reports (印发)
def issued_report(period: Period, area: Community | Street):  # type: ignore[no-untyped-def]
    """The :class:`~gridsvc.reports.models.IssuedReport` of ``area`` for ``period``, or None."""
    from .models import IssuedReport

    return IssuedReport.objects.filter(
        area_code=area.code, period_kind=period.kind, period_label=period.label
    ).first()


def issued_note(issued) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """What a report says about its issue (``report["issued"]``)."""
    return {
        "at": issued.issued_at.isoformat(timespec="seconds"),
        "by": getattr(issued.issued_by, "username", None),
        "note": issued.note,
    }


def issue_report(
    *,
    period: Period,
    scope: Scope,
    member=None,  # type: ignore[no-untyped-def]
    community: str | None = None,
    street: str | None = None,
    note: str = "",
):  # type: ignore[no-untyped-def]
    """Issue (印发) the report of a community or street for a period that is over: its exact
    figures (street tier) are stored and served from then on to the street tier, so asking
    again gives the same numbers. Only the street office (or the operator, ``member`` None)
    issues; a report is issued once."""
    from django.core.exceptions import PermissionDenied
    from django.db import IntegrityError, transaction

    from .models import IssuedReport

    if member is not None and tier_for(member) < Tier.STREET:
        raise PermissionDenied("only the street office issues reports")
    area = resolve_area(scope, community=community, street=street)
    if figures_tier(member, scope, area) < Tier.STREET:  # another street's office
        raise PermissionDenied("only the area's own street office issues its reports")
    if period.end > timezone.localdate():
        raise ValidationError({"period": f"{period.label} is not over yet"})
    done = issued_report(period, area)
    if done is not None:
        raise ValidationError(
            {"period": f"the {period.label} report was issued on {done.issued_at:%Y-%m-%d}"}
        )
    report = work_report(
        period=period, scope=scope, community=community, street=street, tier=Tier.STREET
    )
    try:
        with transaction.atomic():
            return IssuedReport.objects.create(
                level=report["area"]["level"],
                area_code=area.code,
                period_kind=period.kind,
                period_label=period.label,
                report=report,
                case_density=case_density_by_grid(area, period, scope),
                issued_by=member if getattr(member, "pk", None) else None,
                note=note[:200],
            )
    except IntegrityError:  # issued meanwhile by someone else
        raise ValidationError({"period": f"the {period.label} report is already issued"}) from None
