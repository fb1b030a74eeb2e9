"""The people's-services figures (issue 21 item 4), one definition computed from the
applications: the seed's "享受低保的少数民族人员约296人,120户,占所有享受低保人员的40%;
享受廉租房补贴的少数民族家庭25户,占…30%;享受居民医保的少数民族677人,占…40%".

On assistance on ``day`` = an approved application whose start date is on or before the day
and whose end date is not before it. People are the residents recorded in the household
(for enrolment kinds: the applicant if one is named); minority = ethnicity not 汉族.

This is the only definition of 低保 in the work report, its per-grid table and charts
(gridsvc.reports): the residents' ``low_income`` tag is what a roster records about a person,
not the figure (the report reads :func:`households_on` and :func:`kind_figures`).
廉租房 is two figures: the households *living in* 廉租房 (实物配租, ``Household.tenure``, a housing
type) and the households *paid* a rent subsidy (廉租房租赁补贴, 货币补贴, records here); the rows
are labelled so neither reads as the other.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db.models import Q, QuerySet

from gridsvc.territory.codes import HAN
from gridsvc.territory.models import Resident

from .models import Application, Kind, Status

PER_PERSON_KINDS = (Kind.MEDICAL_INSURANCE, Kind.PENSION, Kind.STUDENT_AID, Kind.JOB)


def on_assistance(qs: QuerySet[Application], day: date) -> QuerySet[Application]:
    """Approved applications in force on ``day``."""
    return qs.filter(status=Status.APPROVED, start_date__lte=day).filter(
        Q(end_date__isnull=True) | Q(end_date__gte=day)
    )


def households_on(kind: str, day: date) -> QuerySet[Application, Any]:
    """The households (``values("household")``) with an approved ``kind`` application in
    force on ``day`` — for ``Resident`` filters such as ``household__in=`` (the per-grid 低保)."""
    return on_assistance(Application.objects.filter(kind=kind), day).values("household")


def _share(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def kind_figures(qs: QuerySet[Application], kind: str, day: date) -> dict[str, Any]:
    """People and households on ``kind``, their minority part and its share."""
    return count(on_assistance(qs.filter(kind=kind), day), kind)


def given(qs: QuerySet[Application], first: date, last: date) -> QuerySet[Application]:
    """Approved applications whose assistance started between ``first`` and ``last``
    (inclusive): what was *given* in a period (临时救助 is paid once)."""
    return qs.filter(status=Status.APPROVED, start_date__range=(first, last))


def count(apps: QuerySet[Application], kind: str) -> dict[str, Any]:
    """People and households of the approved applications ``apps`` (all of ``kind``)."""
    if kind in PER_PERSON_KINDS:
        named = Resident.objects.filter(pk__in=apps.exclude(applicant=None).values("applicant"))
        whole = Resident.objects.filter(
            household__in=apps.filter(applicant=None).values("household")
        )
        people = Resident.objects.filter(
            Q(pk__in=named.values("pk")) | Q(pk__in=whole.values("pk"))
        )
    else:
        people = Resident.objects.filter(household__in=apps.values("household"))
    minority = people.filter(~Q(ethnicity=HAN))
    households = set(apps.values_list("household_id", flat=True))
    minority_households = set(minority.values_list("household_id", flat=True)) & households
    n_people, n_minority = people.count(), minority.count()
    return {
        "kind": kind,
        "households": len(households),
        "people": n_people,
        "minority_people": n_minority,
        "minority_households": len(minority_households),
        "minority_people_share": _share(n_minority, n_people),
        "minority_households_share": _share(len(minority_households), len(households)),
    }


def figures(qs: QuerySet[Application], day: date) -> dict[str, dict[str, Any]]:
    """:func:`kind_figures` for 低保, 廉租房补贴, 居民医保 and 临时救助 over ``qs``."""
    kinds = (Kind.DIBAO, Kind.RENT_SUBSIDY, Kind.MEDICAL_INSURANCE, Kind.TEMP_RELIEF)
    return {k: kind_figures(qs, k, day) for k in kinds}


REPORT_KINDS = (Kind.DIBAO, Kind.RENT_SUBSIDY, Kind.MEDICAL_INSURANCE)
COUNT_KEYS = ("households", "people", "minority_people", "minority_households")


def period_figures(qs: QuerySet[Application], first: date, last: date) -> dict[str, Any]:
    """The figures of a report period: 低保, 廉租房补贴 and 居民医保 in force on its last day,
    临时救助 given in it (``temp_relief``)."""
    out: dict[str, Any] = {k: kind_figures(qs, k, last) for k in REPORT_KINDS}
    out[Kind.TEMP_RELIEF] = count(
        given(qs.filter(kind=Kind.TEMP_RELIEF), first, last), Kind.TEMP_RELIEF
    )
    return out


def area_applications(scope: Any, area: Any) -> QuerySet[Application]:
    """Applications of households in ``area`` (a Community or Street) within the staff part
    of ``scope`` (:func:`gridsvc.chain.visibility.staff_scope`)."""
    from gridsvc.chain.visibility import staff_scope
    from gridsvc.territory.models import Community, Household

    key = "unit__building__grid__community"
    if not isinstance(area, Community):
        key += "__street"
    households = staff_scope(scope).filter(Household.objects.filter(**{key: area}))
    return Application.objects.filter(household__in=households)


def suppressed(row: dict[str, Any], tier: Any) -> dict[str, Any]:
    """One kind's figures (:func:`count`) as ``tier`` sees them, in place: a count of 1–4 is
    None below the street tier, and so is a minority count whose complement (the Han people
    or households on the same assistance) is 1–4 — people and minority people published side
    by side would tell that small count by subtraction. A share goes with its count. The one
    rule of the report's section, ``/assistance/figures/`` and the ledger's 民生服务统计."""
    from gridsvc.chain.visibility import suppress_small

    exact = {key: row[key] for key in COUNT_KEYS}
    for key in COUNT_KEYS:
        row[key] = suppress_small(exact[key], tier)
    for part, whole in (("minority_people", "people"), ("minority_households", "households")):
        if row[part] is not None and suppress_small(exact[whole] - exact[part], tier) is None:
            row[part] = None
        if row[part] is None or row[whole] is None:
            row[f"{part}_share"] = None
    return row


def report_section(area: Any, period: Any, scope: Any, tier: Any) -> dict[str, Any]:
    """The work report's ``assistance`` section (gridsvc.reports): staff and street only
    (nothing for the neighbour tier); counts below 5 suppressed below the street tier.
    Also the period's 流动人口 inflow/outflow (:func:`.migrants.flows`)."""
    from gridsvc.chain.visibility import knows_sensitive, staff_scope
    from gridsvc.territory.models import Community

    from .migrants import flows
    from .models import Migrant

    if not knows_sensitive(tier):
        return {}
    first, last = period.start, period.last_day
    out = period_figures(area_applications(scope, area), first, last)
    for row in out.values():
        suppressed(row, tier)
    key = "resident__household__unit__building__grid__community"
    if not isinstance(area, Community):
        key += "__street"
    migrants = staff_scope(scope).filter(Migrant.objects.filter(**{key: area}))
    return {
        "assistance": {
            "day": last.isoformat(),
            "figures": out,
            "migrants": flows(migrants, first, last),
        }
    }


def low_income_summary(section: dict[str, Any]) -> dict[str, Any] | None:
    """The report's ``population["low_income"]`` (低保 people and households, the minority
    among them, their share as a fraction) from the ``assistance`` section's 低保 figures —
    the same records, the same suppression; None without the section (the neighbour tier)."""
    if not section:
        return None
    d = section["assistance"]["figures"][Kind.DIBAO]
    people, minority = d["people"], d["minority_people"]
    return {
        "people": people,
        "households": d["households"],
        "minority_people": minority,
        "minority_households": d["minority_households"],
        "minority_share": round(minority / people, 4) if people and minority is not None else None,
        "source": "applications",
    }


def _n(v: int | None) -> int | str:
    return "<5" if v is None else v


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}%"


def report_rows(section: dict[str, Any]) -> list[tuple[str, Any]]:
    """The ``assistance`` section as (label, value) rows of the report's xlsx and PDF. 低保 is
    not among them: the report's 低保 rows (概况) are these records' figures already
    (``population["low_income"]``, :func:`low_income_summary`), shown once."""
    f = section["figures"]
    r, m, t = f[Kind.RENT_SUBSIDY], f[Kind.MEDICAL_INSURANCE], f[Kind.TEMP_RELIEF]
    g = section["migrants"]
    return [
        ("民生服务—廉租房租赁补贴户数(货币补贴)", _n(r["households"])),
        ("民生服务—少数民族廉租房租赁补贴户数", _n(r["minority_households"])),
        ("民生服务—少数民族占廉租房租赁补贴户数比例", _pct(r["minority_households_share"])),
        ("民生服务—居民医保参保人数", _n(m["people"])),
        ("民生服务—少数民族居民医保参保人数", _n(m["minority_people"])),
        ("民生服务—少数民族占居民医保人数比例", _pct(m["minority_people_share"])),
        ("民生服务—本期临时救助户数", _n(t["households"])),
        ("民生服务—其中少数民族户数", _n(t["minority_households"])),
        ("民生服务—流动人口流入", g["arrived"]),
        ("民生服务—流动人口流出", g["departed"]),
        ("民生服务—期末在住流动人口", g["present"]),
        ("民生服务—本期居住证到期", g["permits_expiring"]),
    ]
