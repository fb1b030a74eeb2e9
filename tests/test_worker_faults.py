"""Faults under the background work: the database restarted under the worker (a throwaway
PostgreSQL of its own, never the shared one), a worker killed in the middle of a job, an
outage answered with 503, and event times taken inside the case's lock."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from procrastinate.contrib.django.models import ProcrastinateJob

from .test_cases_worker import ROOT, start_worker, stop, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# fast heartbeats so that a killed worker counts as dead after 3 s (production: 10 s / 30 s)
FAST = {"GRIDSVC_WORKER_HEARTBEAT": "1", "GRIDSVC_WORKER_STALLED": "3"}


def _dsn() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def _no_live_worker() -> bool:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM procrastinate_workers "
            "WHERE last_heartbeat > now() - interval '4 seconds'"
        )
        return cur.fetchone()[0] == 0


def _status(job_id: int) -> str:
    return ProcrastinateJob.objects.get(pk=job_id).status


def _kill_while_doing(job_id: int, worker, log_lines: list[str]) -> None:  # type: ignore[no-untyped-def]
    assert wait_for(lambda: _status(job_id) == "doing", 60), "the job started"
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    log_lines.append(stop(worker))
    # the killed worker's heartbeat ages: its job is now stalled
    assert wait_for(_no_live_worker, 30)


def _sent(ids: list[int]) -> list[int]:
    """The gateway's messages among ``ids`` (other jobs may send other messages)."""
    return [m["data"]["message_id"] for m in _Gateway.received if m["data"]["message_id"] in ids]


class _Gateway(BaseHTTPRequestHandler):
    """An SMS gateway / webhook that records what it receives."""

    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Gateway.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


# ---------------------------------------------------------------------- 2. a killed job is retried
def test_a_delivery_killed_half_way_is_finished_by_the_next_worker_sending_each_once(
    committed_demo,
):
    """SIGKILL the worker while a cases.deliver job is in `doing` (one message sent, the next
    one waiting); another worker retries the stalled job and sends the rest: every message
    reaches the gateway exactly once."""
    from django.db import transaction

    from gridsvc.cases import services
    from gridsvc.supervision.models import InboxMessage

    from .cases_helpers import member, report

    case = report().case
    gateway = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    _Gateway.received = []
    env = {
        **FAST,
        "GRIDSVC_NOTIFIER": "gridsvc.supervision.notify.WebhookSender",
        "GRIDSVC_NOTIFY_WEBHOOK": f"http://127.0.0.1:{gateway.server_port}/sms",
    }
    ProcrastinateJob.objects.filter(task_name="cases.deliver").delete()
    members = [member(u).pk for u in ("grid1", "grid2", "cadre1")]
    with transaction.atomic():
        services.inbox(members, InboxMessage.Kind.OTHER, case, "测试通知")
    ids = sorted(
        InboxMessage.objects.filter(title="测试通知", object_id=str(case.pk)).values_list(
            "pk", flat=True
        )
    )
    assert len(ids) == 3
    job_id = ProcrastinateJob.objects.get(task_name="cases.deliver", args__message_ids=ids).pk
    # the second message is held (as if the gateway hung on it): the job stops there
    holder = psycopg.connect(_dsn())
    with holder.cursor() as cur:
        cur.execute("SELECT 1 FROM supervision_inboxmessage WHERE id = %s FOR UPDATE", [ids[1]])
    logs: list[str] = []
    first = start_worker(**env)
    try:
        assert wait_for(lambda: _sent(ids), 60), "the first message went out"
        _kill_while_doing(job_id, first, logs)
    finally:
        stop(first)
        holder.rollback()
        holder.close()
    second = start_worker(**env)
    try:
        assert wait_for(lambda: _status(job_id) == "succeeded", 60), logs
    finally:
        logs.append(stop(second))
        gateway.shutdown()
    sent = _sent(ids)
    assert sorted(sent) == ids, f"each message once: {sent}\n{logs}"
    assert not InboxMessage.objects.filter(pk__in=ids, delivered_at__isnull=True).exists()


def test_a_recompute_killed_half_way_is_finished_by_the_next_worker_once(committed_demo):
    """SIGKILL the worker in the middle of cases.recompute (after a calendar change); the next
    worker retries it: every open case's deadline follows the new calendar, with one
    deadline_recomputed event each."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from gridsvc.cases import services
    from gridsvc.cases.models import Case
    from gridsvc.supervision.models import CalendarDay

    from .cases_helpers import report

    cases = [report().case for _ in range(3)]
    due = cases[0].due_at
    ProcrastinateJob.objects.filter(task_name="cases.recompute").delete()
    holder = psycopg.connect(_dsn())
    with holder.cursor() as cur:  # one case is busy: the recompute waits for it
        cur.execute("SELECT 1 FROM cases_case WHERE id = %s FOR UPDATE", [cases[1].pk])
    with transaction.atomic():  # the calendar change enqueues the recompute
        CalendarDay.objects.update_or_create(
            date=timezone.localtime(due).date(),
            street=None,
            defaults={"is_workday": False, "note": "临时停工"},
        )
    job_id = ProcrastinateJob.objects.get(task_name="cases.recompute").pk
    logs: list[str] = []
    first = start_worker(**FAST)
    try:
        _kill_while_doing(job_id, first, logs)
    finally:
        stop(first)
        holder.rollback()
        holder.close()
    second = start_worker(**FAST)
    try:
        assert wait_for(lambda: _status(job_id) == "succeeded", 90), logs
    finally:
        logs.append(stop(second))
    for case in cases:
        case = Case.objects.get(pk=case.pk)
        expected, _ = services.compute_deadline(case)
        assert case.due_at == expected and case.due_at > due + timedelta(hours=1)
        assert case.events.filter(kind="deadline_recomputed").count() == 1, logs


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


def test_a_deadline_check_killed_half_way_escalates_the_case_once(committed_demo):
    """SIGKILL the worker while it applies the clock to an overdue case (cases.check or the
    sweep, waiting for the case's lock); the next worker retries the stalled job: the case is
    red-carded and escalated exactly once, and no job stays in `doing`."""
    from datetime import timedelta

    from django.utils import timezone

    from gridsvc.cases.models import Case

    from .cases_helpers import report
    from .test_cases_worker import worker_ready_and_idle

    case = report(when=timezone.now() - timedelta(days=40)).case
    assert case.due_at < timezone.now() and case.escalations == 0
    holder = psycopg.connect(_dsn())
    with holder.cursor() as cur:  # the case is busy: the clock waits for it
        cur.execute("SELECT 1 FROM cases_case WHERE id = %s FOR UPDATE", [case.pk])
    logs: list[str] = []
    first = start_worker(**FAST)
    try:
        assert wait_for(_someone_waits_for_a_lock, 60), "a clock job waits for the case"
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert wait_for(_no_live_worker, 30)
        assert ProcrastinateJob.objects.filter(queue_name="cases", status="doing").exists()
    finally:
        logs.append(stop(first))
        holder.rollback()
        holder.close()
    second = start_worker(**FAST)
    try:
        assert wait_for(lambda: Case.objects.get(pk=case.pk).escalations >= 1, 60), logs
        assert wait_for(lambda: worker_ready_and_idle("cases"), 60), "nothing left in doing"
    finally:
        logs.append(stop(second))
    case.refresh_from_db()
    assert case.escalations == 1 and case.card == "red", logs
    assert case.events.filter(kind="escalate", data__auto=True).count() == 1
    assert case.events.filter(kind="red_card").count() == 1


def _someone_waits_for_a_lock() -> bool:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        return cur.fetchone()[0] > 0


# ------------------------------------- 1 and 5. the database restarted under the worker and the web
class ThrowawayCluster:
    """A PostgreSQL cluster of the test's own (temp dir, free port), so that it can be stopped
    and restarted without touching the shared one. Runs as ``postgres`` when the test is root
    (initdb refuses root)."""

    def __init__(self) -> None:
        import glob
        import socket
        import tempfile

        self.bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
        self.dir = Path(tempfile.mkdtemp(prefix="gridsvc-pg-"))
        self.data = self.dir / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_postgres = ["runuser", "-u", "postgres", "--"]

    def _pg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.as_postgres, *args], check=check, capture_output=True, text=True, timeout=120
        )

    def create(self) -> None:
        self._pg(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        self.start()

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c shared_buffers=32MB"
        )
        self._pg(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._pg(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False
        )

    def url(self, db: str = "gridsvc") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_cluster():  # type: ignore[no-untyped-def]
    """A throwaway cluster with gridsvc's schema (copied from the migrated test database)."""
    cluster = ThrowawayCluster()
    try:
        cluster.create()
        subprocess.run(
            ["psql", "-q", cluster.url("postgres"), "-c", "CREATE DATABASE gridsvc"], check=True
        )
        schema = subprocess.run(
            ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", _dsn()],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", cluster.url()],
            input=schema,
            check=True,
            capture_output=True,
        )
        yield cluster
    finally:
        cluster.destroy()


def _get(url: str, **kwargs):  # type: ignore[no-untyped-def]
    import requests

    try:
        return requests.request(kwargs.pop("method", "GET"), url, timeout=10, **kwargs)
    except requests.ConnectionError:
        return None


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.django_db  # reads the test database's schema only: no flush afterwards
def test_the_database_restarts_under_the_worker_and_the_web(own_cluster, tmp_path):
    """The real supervised worker (scripts/worker.sh, as in `make demo`) and the real web on a
    cluster of their own: /health says no worker is alive until one is; the cluster stops —
    the web answers 503 + Retry-After, the worker exits non-zero; the cluster starts again —
    the supervisor has a worker running and a job deferred afterwards is done."""
    import socket

    db_url = own_cluster.url().replace("postgres://", "postgis://", 1)
    env = {**os.environ, "GRIDSVC_TESTING": "1", "DATABASE_URL": db_url, **FAST}
    env["GRIDSVC_WORKER_MAX_BACKOFF"] = "2"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        web_port = s.getsockname()[1]
    base = f"http://127.0.0.1:{web_port}"
    web = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "gridsvc.wsgi", "-b", f"127.0.0.1:{web_port}",
         "-w", "1", "--timeout", "60"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    log_path = tmp_path / "worker.log"
    supervisor = None
    try:
        assert wait_for(lambda: _get(f"{base}/health") is not None, 60), "the web started"
        health = _get(f"{base}/health")
        assert health.status_code == 200 and health.json()["worker"]["state"] == "none"
        assert health.json()["status"] == "degraded"
        assert _get(f"{base}/health/worker").status_code == 503

        with open(log_path, "w") as log:
            supervisor = subprocess.Popen(
                ["bash", "scripts/worker.sh", "-p", "0.5"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        assert wait_for(lambda: _get(f"{base}/health/worker").status_code == 200, 60)
        assert _get(f"{base}/health").json()["status"] == "ok"
        first_worker = _workers(own_cluster)[-1]

        own_cluster.stop()  # the database restarts: first it is down …
        down = _get(f"{base}/health")
        assert down.status_code == 503, down.text
        assert int(down.headers["Retry-After"]) > 0
        assert down.json()["code"] == "database_unavailable"
        login = _get(
            f"{base}/api/v1/auth/token/",
            method="POST",
            json={"username": "grid1", "password": "x"},
        )
        assert login.status_code == 503 and "Retry-After" in login.headers
        assert wait_for(lambda: "exited with status 1" in log_path.read_text(), 60), (
            log_path.read_text()
        )

        own_cluster.start()  # … then back
        assert wait_for(lambda: any(w > first_worker for w in _workers(own_cluster)), 60), (
            log_path.read_text()
        )
        job_id = _defer_raw(own_cluster, "cases", "cases.recompute")
        assert wait_for(lambda: _job_status(own_cluster, job_id) == "succeeded", 60), (
            log_path.read_text()
        )
        assert wait_for(lambda: _get(f"{base}/health/worker").status_code == 200, 30)
        assert supervisor.poll() is None, "the supervisor keeps running"
    finally:
        if supervisor is not None:
            _terminate(supervisor)
        _terminate(web)
    assert supervisor.returncode == 0, "SIGTERM stops the supervisor and its worker cleanly"


def _workers(cluster: ThrowawayCluster) -> list[int]:
    try:
        with psycopg.connect(cluster.url()) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT id FROM procrastinate_workers "
                "WHERE last_heartbeat > now() - interval '3 seconds' ORDER BY id"
            )
            return [r[0] for r in cur.fetchall()]
    except psycopg.OperationalError:
        return []


def _defer_raw(cluster: ThrowawayCluster, queue: str, task: str) -> int:
    with psycopg.connect(cluster.url()) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args) "
            "VALUES (%s, %s, '{}') RETURNING id",
            [queue, task],
        )
        return cur.fetchone()[0]


def _job_status(cluster: ThrowawayCluster, job_id: int) -> str:
    with psycopg.connect(cluster.url()) as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM procrastinate_jobs WHERE id = %s", [job_id])
        return cur.fetchone()[0]


def test_the_worker_watchdog_reaches_a_live_database(db):
    """The watchdog's own connection works (a wrong DSN would make every worker exit 1 within
    two checks and the supervisor restart it forever)."""
    import asyncio

    from gridsvc.supervision.worker import _ping_database, _watchdog

    _ping_database()  # raises when the connection parameters are wrong

    async def three_checks() -> None:
        await asyncio.wait_for(_watchdog(0.2), timeout=1.0)

    with pytest.raises(TimeoutError):  # still watching: no DatabaseGone after 4 checks
        asyncio.run(three_checks())
