"""The people's-services figures (issue 21 item 4), one definition computed from the
applications: the seed's "享受低保的少数民族人员约296人,120户,占所有享受低保人员的40%;
享受廉租房补贴的少数民族家庭25户,占…30%;享受居民医保的少数民族677人,占…40%".

On assistance on ``day`` = an approved application whose start date is on or before the day
and whose end date is not before it. People are the residents recorded in the household
(for enrolment kinds: the applicant if one is named); minority = ethnicity not 汉族.
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


def _share(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def kind_figures(qs: QuerySet[Application], kind: str, day: date) -> dict[str, Any]:
    """People and households on ``kind``, their minority part and its share."""
    apps = on_assistance(qs.filter(kind=kind), day)
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
