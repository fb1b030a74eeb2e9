"""Escalation and supervision cards by the real background worker (procrastinate in its own
process, on the test database), including catching up after downtime without escalating
twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob

from gridsvc.cases.jobs import schedule_deadline_checks
from gridsvc.cases.models import Case, Category, TimeLimit
from gridsvc.territory.models import Household

from .cases_helpers import report

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


def start_worker(
    one_shot: bool = False, queues: str = "cases", **env_extra: str
) -> subprocess.Popen:
    """The real worker (``manage.py worker``) on the test database, in its own process."""
    s = connection.settings_dict
    env = {
        **os.environ,
        "GRIDSVC_TESTING": "1",
        "DATABASE_URL": f"postgis://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}",
        **env_extra,
    }
    args = [sys.executable, "manage.py", "worker", "-q", queues, "-p", "0.2"]
    if one_shot:
        args.append("--one-shot")
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.stdout.read().decode(errors="replace") if proc.stdout else ""


def worker_ready_and_idle(queue: str) -> bool:
    """A worker has registered (heartbeat row) and no job of the queue is due or running."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM procrastinate_workers "
            "WHERE last_heartbeat > now() - interval '15 seconds'"
        )
        if not cur.fetchone()[0]:
            return False
        cur.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = %s AND (status = 'doing' "
            "OR (status = 'todo' AND coalesce(scheduled_at, now()) <= now()))",
            [queue],
        )
        return cur.fetchone()[0] == 0


def wait_for(predicate, timeout: float = 90.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def test_worker_escalates_overdue_cases_once_and_catches_up(committed_demo):
    hh = Household.objects.filter(unit__building__code__endswith="B001").order_by("id")
    long_ago = timezone.now() - timedelta(days=40)
    # reported while the worker was down: their deadlines passed long ago
    overdue = report(household=hh[0], when=long_ago).case
    lost_jobs = report("neighbour.leak", household=hh[1], when=long_ago).case
    ProcrastinateJob.objects.filter(
        args__case_id=lost_jobs.pk
    ).delete()  # only the sweep can see it
    fresh = report("neighbour.parking", household=hh[2]).case
    assert overdue.level == "unit_head" and overdue.due_at < timezone.now()

    worker = start_worker()
    try:
        ok = wait_for(
            lambda: (
                Case.objects.get(pk=overdue.pk).escalations >= 1
                and Case.objects.get(pk=lost_jobs.pk).escalations >= 1
            )
        )
        log = "" if ok else stop(worker)
        assert ok, f"the worker escalated the overdue cases\n{log}"
        # every queued check and the sweep have run (no job of the queue is due or running)
        assert wait_for(lambda: worker_ready_and_idle("cases"), 60)
    finally:
        log = stop(worker)
    for case in (overdue, lost_jobs):
        case.refresh_from_db()
        assert case.escalations == 1, log
        assert case.card == "red" and case.status == "escalated"
        assert case.level_index > 1 and case.due_at > timezone.now()
        assert case.events.filter(kind="escalate", data__auto=True).count() == 1
        assert case.events.filter(kind="red_card").count() == 1
    fresh.refresh_from_db()
    assert fresh.escalations == 0 and fresh.card == ""

    # the worker was down again; it starts and finds nothing more to do: no double escalation
    again = start_worker(one_shot=True)
    again.wait(60)
    for case in (overdue, lost_jobs):
        case.refresh_from_db()
        assert case.escalations == 1


def test_worker_gives_a_yellow_then_a_red_card(committed_demo):
    """The case's clock is moved by the test, not waited for: its yellow time is set in the
    past while its deadline is still hours away (only a yellow card can follow, however slowly
    the worker boots), then its deadline is set in the past (the red card and escalation)."""
    cat = Category.objects.get(code="neighbour.noise")
    TimeLimit.objects.create(
        category=cat, stage="accept", level="unit_head", amount=4, unit="natural_hours"
    )
    hh = Household.objects.filter(unit__building__code__endswith="B001").order_by("id")[3]
    case = report(household=hh).case
    assert case.level == "unit_head" and case.due_at - case.reported_at == timedelta(hours=4)
    assert case.reported_at < case.yellow_at < case.due_at

    def move_clock(**times: object) -> None:
        Case.objects.filter(pk=case.pk).update(**times)
        case.refresh_from_db()
        schedule_deadline_checks(case)

    worker = start_worker()
    try:
        assert wait_for(lambda: worker_ready_and_idle("cases"), 90)
        assert Case.objects.get(pk=case.pk).card == "", "nothing is due yet"
        move_clock(yellow_at=timezone.now() - timedelta(seconds=1))
        assert wait_for(lambda: Case.objects.get(pk=case.pk).card == "yellow", 60)
        case.refresh_from_db()
        assert case.escalations == 0 and case.yellow_cards == 1 and case.level == "unit_head"
        move_clock(due_at=timezone.now() - timedelta(seconds=1))
        assert wait_for(lambda: Case.objects.get(pk=case.pk).card == "red", 60)
    finally:
        stop(worker)
    case.refresh_from_db()
    kinds = list(case.events.values_list("kind", flat=True))
    assert kinds.index("yellow_card") < kinds.index("red_card")
    assert case.escalations == 1, "overdue at the unit head: one level up"
    from gridsvc.supervision.models import InboxMessage

    assert InboxMessage.objects.filter(object_id=str(case.pk), kind="yellow_card").exists()
    assert InboxMessage.objects.filter(object_id=str(case.pk), kind="red_card").exists()
