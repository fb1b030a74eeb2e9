"""The demo street makes the same cases whatever the hour, weekday or date it is loaded at.

Its times are relative to the moment it is loaded (the dispatch queue always has fresh and
overdue cases), but what each case is — its title, category and place, under the same
creation order (the same id and number in a template) — must not depend on the clock: a demo
template built at 11:00 (+08:00) once gave cases 225 and 240 other contents than one built
in the morning, because the case loader drew one random number more only when a case's
working-hours time fell after "now" (and let the hour decide which cases were recent, which
hazards were handled on the spot, which cards came ...), so every later case drew other
numbers.

Each test loads a part of the demo again in the test's own database at two clocks (the cases
part is deleted first, so each load starts from the same state; the test's transaction is
rolled back after) and compares what it made, in creation order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.utils import timezone

from fixtures import demo_cases
from fixtures.demo_street import STREET_CODE
from gridsvc.cases.models import Case

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


@contextlib.contextmanager
def clock_at(at: datetime) -> Iterator[None]:
    """``timezone.now()`` (and so ``localdate()``, the fields' defaults …) reads ``at`` plus
    the time spent since, as if the loader were run then."""
    real_now = timezone.now
    started = real_now()
    with mock.patch("django.utils.timezone.now", lambda: at + (real_now() - started)):
        yield


def _cases_loaded_at(at: datetime) -> list[tuple[Any, ...]]:
    """The demo's first :data:`CASES` cases loaded afresh at ``at`` (the demo's cases deleted
    first): (reported at, title, category, household, location, grid) in creation order.
    Nothing of it is kept."""
    with transaction.atomic():  # a savepoint in the test's transaction, rolled back
        with connection.cursor() as cur:  # case events are append-only: not for this undo
            cur.execute("ALTER TABLE cases_caseevent DISABLE TRIGGER cases_event_no_update_delete")
        Case.objects.filter(street__code=STREET_CODE).delete()
        with mock.patch.object(demo_cases, "N_CASES", CASES), clock_at(at):
            demo_cases.load()
        rows = [
            (
                reported_at,
                title,
                category,
                household,
                (round(loc.x, 9), round(loc.y, 9)) if loc else None,
                grid,
            )
            for reported_at, title, category, household, loc, grid in Case.objects.filter(
                street__code=STREET_CODE
            )
            .order_by("id")
            .values_list(
                "reported_at", "title", "category__code", "household_id", "location", "grid__code"
            )
        ]
        transaction.set_rollback(True)
    return rows


def test_the_demo_cases_are_the_same_at_any_hour_weekday_or_month_end(demo):
    loads = {at: _cases_loaded_at(at) for at in (EARLY_SATURDAY, LATE_MONTH_END)}
    # the clocks do differ for these cases: a case of the day, reported this morning when
    # loaded late, had its time still to come at 03:00 (and was put hours before that)
    today = [
        n
        for n, row in enumerate(loads[LATE_MONTH_END], start=1)
        if timezone.localtime(row[0]).date() == LATE_MONTH_END.date()
    ]
    assert today, "no case of the day among the first cases: load more (CASES)"
    what = {at: [row[1:] for row in rows] for at, rows in loads.items()}
    assert len(what[EARLY_SATURDAY]) == CASES
    # the clock moved the times, not what each case is
    assert [
        (n, early, late)
        for n, (early, late) in enumerate(
            zip(what[EARLY_SATURDAY], what[LATE_MONTH_END], strict=True), start=1
        )
        if early != late
    ] == []
