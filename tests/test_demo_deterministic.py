"""The demo street makes the same cases whatever the hour, weekday or date it is loaded at.

Its times are relative to the moment it is loaded (the dispatch queue always has fresh and
overdue cases), but what each case is — its title, category and place, under the same
creation order (the same id and number in a template) — must not depend on the clock: a demo
template built at 11:00 (+08:00) once gave cases 225 and 240 other contents than one built
in the morning, because the case loader drew one random number more only when a case's
working-hours time fell after "now" (and let the hour decide which cases were recent, which
hazards were handled on the spot, which cards came ...), so every later case drew other
numbers.

The community's 调处员 mediations of the demo's dispute cases follow the cases: they were
the disputes reported before a fixed day (2026-11-21), so which cases (and how many numbers
were drawn to pick them) changed with the day the demo was loaded at.

Each test loads a part of the demo again in the test's own database at two clocks (the cases
part is deleted first, so each load starts from the same state; the test's transaction is
rolled back after) and compares what it made, in creation order.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.utils import timezone

from fixtures import demo_cases, demo_community, demo_visits
from fixtures.demo_street import STREET_CODE
from gridsvc.accounts.models import Member
from gridsvc.cases.models import Case
from gridsvc.community.models import Mediation
from gridsvc.territory.models import Household
from gridsvc.visits.models import DailyReport, Visit, VisitTask

pytestmark = pytest.mark.django_db

TZ = ZoneInfo("Asia/Shanghai")
#: the clocks: a Saturday night before the working day starts (every case of the day has its
#: time still to come, so each is put hours before now), and late on the last day of a month,
#: a Monday (the day's cases are in the past)
EARLY_SATURDAY = datetime(2026, 11, 28, 3, 0, tzinfo=TZ)
LATE_MONTH_END = datetime(2026, 11, 30, 22, 30, tzinfo=TZ)
#: the first cases only (a load of all 260 takes a minute); enough to hold a case of the day
#: (in the demo's stream the 84th, in the stream before this test the 117th)
CASES = 120
DEMO_HOUSEHOLDS = {"unit__building__grid__community__street__code": STREET_CODE}
#: the community loader's members that mediate and sign off the demo's cases
STAFF = ("cadre5", "ethnic")


@contextlib.contextmanager
def clock_at(at: datetime) -> Iterator[None]:
    """``timezone.now()`` (and so ``localdate()``, the fields' defaults …) reads ``at`` plus
    the time spent since, as if the loader were run then."""
    real_now = timezone.now
    started = real_now()
    with mock.patch("django.utils.timezone.now", lambda: at + (real_now() - started)):
        yield


def _loaded_at(at: datetime) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The demo's first :data:`CASES` cases loaded afresh at ``at`` (the demo's cases deleted
    first), then the community loader's mediations of them: the cases as (reported at, title,
    category, household, location, grid) in creation order, the mediations as (the case's
    place in that order, days after its report, outcome). Nothing of it is kept."""
    with transaction.atomic():  # a savepoint in the test's transaction, rolled back
        with connection.cursor() as cur:  # case events are append-only: not for this undo
            cur.execute("ALTER TABLE cases_caseevent DISABLE TRIGGER cases_event_no_update_delete")
        Case.objects.filter(street__code=STREET_CODE).delete()  # their mediations with them
        with mock.patch.object(demo_cases, "N_CASES", CASES), clock_at(at):
            demo_cases.load()
            members = {u.username: u for u in Member.objects.filter(username__in=STAFF)}
            demo_community._cases(random.Random(demo_community.SEED), members)
        ids, cases = [], []
        for pk, reported_at, title, category, household, loc, grid in (
            Case.objects.filter(street__code=STREET_CODE)
            .order_by("id")
            .values_list(
                "id", "reported_at", "title", "category__code", "household_id", "location",
                "grid__code",
            )
        ):  # fmt: skip
            ids.append(pk)
            where = (round(loc.x, 9), round(loc.y, 9)) if loc else None
            cases.append((reported_at, title, category, household, where, grid))
        mediations = sorted(
            (
                ids.index(m.case_id) + 1,
                (m.date - timezone.localdate(m.case.reported_at)).days,
                m.outcome,
            )
            for m in Mediation.objects.filter(case_id__in=ids).select_related("case")
        )
        transaction.set_rollback(True)
    return cases, mediations


def test_the_demo_cases_are_the_same_at_any_hour_weekday_or_month_end(demo):
    loads = {at: _loaded_at(at) for at in (EARLY_SATURDAY, LATE_MONTH_END)}
    # the clocks do differ for these cases: a case of the day, reported this morning when
    # loaded late, had its time still to come at 03:00 (and was put hours before that)
    today = [
        n
        for n, row in enumerate(loads[LATE_MONTH_END][0], start=1)
        if timezone.localtime(row[0]).date() == LATE_MONTH_END.date()
    ]
    assert today, "no case of the day among the first cases: load more (CASES)"
    what = {at: [row[1:] for row in cases] for at, (cases, _) in loads.items()}
    assert len(what[EARLY_SATURDAY]) == CASES
    # the clock moved the times, not what each case is
    assert [
        (n, early, late)
        for n, (early, late) in enumerate(
            zip(what[EARLY_SATURDAY], what[LATE_MONTH_END], strict=True), start=1
        )
        if early != late
    ] == []
    # nor which of them the community's 调处员 mediated, when after the report, with what end
    mediated = {at: mediations for at, (_, mediations) in loads.items()}
    assert len(mediated[EARLY_SATURDAY]) == 12
    assert mediated[EARLY_SATURDAY] == mediated[LATE_MONTH_END]


def _visits_made() -> dict[str, list[tuple[Any, ...]]]:
    """The demo street's visit tasks, visits and daily reports, each in creation order, by
    what they are (not their ids)."""
    households = Household.objects.filter(**DEMO_HOUSEHOLDS)
    tasks = list(
        VisitTask.objects.filter(household__in=households)
        .order_by("id")
        .values_list(
            "id", "rule__code", "household_id", "resident_id", "period", "status",
            "assigned_member_id", "updated_at",
        )
    )  # fmt: skip
    task_name = {t[0]: t[1:5] for t in tasks}
    visits = [
        (task_name.get(task), member, household, resident, time, (round(p.x, 7), round(p.y, 7)))
        + tuple(rest)
        for task, member, household, resident, time, p, *rest in Visit.objects.filter(
            household__in=households
        )
        .order_by("id")
        .values_list(
            "task_id", "member_id", "household_id", "resident_id", "client_time", "location",
            "accuracy_m", "distance_m", "far_off", "findings", "server_time",
        )
    ]  # fmt: skip
    reports = list(
        DailyReport.objects.filter(member__username__regex=r"^(grid|cadre)[0-9]+$")
        .order_by("id")
        .values_list("member_id", "date", "nothing_abnormal", "items", "created_at")
    )
    return {"tasks": [t[1:] for t in tasks], "visits": visits, "daily_reports": reports}


def test_the_demo_visits_are_the_same_at_any_hour_or_day(demo):
    """The visits part (its fixed reference day, 2026-11-24) loaded again at 03:00 on a
    Saturday makes what the template's load (at the hour and day it was built) made."""
    built = _visits_made()
    assert all(built.values())
    with transaction.atomic():  # a savepoint in the test's transaction, rolled back
        households = Household.objects.filter(**DEMO_HOUSEHOLDS)
        Visit.objects.filter(household__in=households).delete()
        VisitTask.objects.filter(household__in=households).delete()
        DailyReport.objects.filter(member__username__regex=r"^(grid|cadre)[0-9]+$").delete()
        with clock_at(EARLY_SATURDAY):
            demo_visits.load()
        again = _visits_made()
        transaction.set_rollback(True)
    for part, rows in built.items():
        assert len(again[part]) == len(rows), part
        assert [
            (n, a, b) for n, (a, b) in enumerate(zip(rows, again[part], strict=True)) if a != b
        ][:5] == [], part
