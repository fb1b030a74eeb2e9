"""Faults under the background work: the database restarted under the worker (a throwaway
PostgreSQL of its own, never the shared one), a worker killed in the middle of a job, an
outage answered with 503, and event times taken inside the case's lock."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from .test_cases_worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


# ---------------------------------------------------------------------- 6. event time in the lock
def test_concurrent_transitions_are_stamped_in_the_order_they_happen(committed_demo):
    """A transition that waits for the case's lock is stamped after the one holding it, so
    the timeline's times and its order (event ids) agree even without If-Match."""
    from django.db import connections, transaction

    from gridsvc.cases import services
    from gridsvc.cases.models import Case

    from .cases_helpers import member, report

    case = report().case
    actor = member("grid1")
    errors: list[BaseException] = []

    def waiting_comment() -> None:
        try:
            services.act(case.pk, "comment", actor, note="second: waited for the lock")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    with transaction.atomic():
        Case.objects.select_for_update().get(pk=case.pk)  # someone holds the case
        waiter = threading.Thread(target=waiting_comment)
        waiter.start()
        assert wait_for(lambda: _waiting_for_lock(), 30), f"the second transition waits {errors}"
        # the holder's own transition happens (and commits) first
        services.act(case.pk, "comment", actor, note="first: held the lock")
    waiter.join(60)
    assert not errors, errors
    events = list(case.events.filter(kind="comment").order_by("id").values_list("note", "at"))
    assert [n.split(":")[0] for n, _ in events] == ["first", "second"]
    times = [at for _, at in events]
    assert times == sorted(times), f"event times follow event order: {events}"


def _waiting_for_lock() -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")  # else one snapshot per transaction
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cur.fetchone()[0] > 0
