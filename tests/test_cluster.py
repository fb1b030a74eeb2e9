"""The production-shaped topology of ``make cluster`` (issue 23, docs/scaling.md), brought up
by the real scripts/cluster.sh on loopback ports around a throwaway primary (never the shared
cluster): nginx → two gunicorn app servers → PgBouncer (transaction mode) → primary, and a
streaming standby made with pg_basebackup that serves the tile reads (gridsvc/dbrouter.py).
Workers are left out here (tests/test_worker_faults.py covers the supervised worker)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import connection

from .test_cases_worker import ROOT, wait_for
from .test_worker_faults import ThrowawayCluster, _dsn

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("nginx") is None and os.geteuid() != 0,
        reason="needs nginx and pgbouncer (apt) or root to install them",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Topology:
    """scripts/cluster.sh with its own ports and directories."""

    def __init__(self, primary: ThrowawayCluster) -> None:
        self.primary = primary
        self.dir = Path(tempfile.mkdtemp(prefix="gridsvc-cluster-"))
        self.dir.chmod(0o755)  # nginx's worker (www-data) and pgbouncer (postgres) go through
        self.nginx, self.app1, self.app2, self.bouncer, self.standby = (
            _free_port() for _ in range(5)
        )
        self.env = {
            **os.environ,
            "GRIDSVC_TESTING": "1",
            "CLUSTER_DIR": str(self.dir),
            "NGINX_PORT": str(self.nginx),
            "APP_PORTS": f"{self.app1} {self.app2}",
            "APP_WORKERS": "1",
            "APP_THREADS": "2",
            "PGBOUNCER_PORT": str(self.bouncer),
            "PRIMARY_PORT": str(primary.port),
            "PRIMARY_SOCKET": str(primary.dir),
            "STANDBY_PORT": str(self.standby),
            "STANDBY_DIR": str(primary.dir / "standby"),
            "CLUSTER_WORKERS": "0",
            "GRIDSVC_LOGIN_FAILURE_RATE": "3/min",
        }
        self.env.pop("DATABASE_URL", None)

    def run(self, command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "scripts/cluster.sh", command],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=240,
        )  # fmt: skip

    def logs(self) -> str:
        out = []
        for f in [*sorted(self.dir.glob("*.log")), self.primary.dir / "standby" / "log"]:
            if not f.exists():
                continue
            out.append(f"--- {f.name}\n{f.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)

    def standby_query(self, sql: str) -> list[tuple]:
        with psycopg.connect(
            host="127.0.0.1", port=self.standby, dbname="gridsvc",
            user="gridsvc_app", password="gridsvc_app",
        ) as conn, conn.cursor() as cur:  # fmt: skip
            cur.execute(sql)
            return cur.fetchall()


@pytest.fixture
def topology(committed_demo):  # type: ignore[no-untyped-def]
    """A throwaway primary holding a copy of the test database (schema and demo street), the
    application role of scripts/setup.sh, and the cluster around it; all torn down after."""
    yield from _bring_up({})


@pytest.fixture
def topology_with_workers(committed_demo):  # type: ignore[no-untyped-def]
    """The same with two supervised workers (fast heartbeats: a killed worker's job counts as
    stalled after 3 s) and a small PgBouncer pool, so that the fault script can fill it."""
    yield from _bring_up(
        {
            "CLUSTER_WORKERS": "2",
            "GRIDSVC_WORKER_HEARTBEAT": "1",
            "GRIDSVC_WORKER_STALLED": "3",
            "POOL_SIZE": "3",
            "MAX_DB_CONNECTIONS": "5",
            "QUERY_WAIT_TIMEOUT": "3",
        }
    )


def _bring_up(extra_env: dict[str, str]):  # type: ignore[no-untyped-def]
    primary = ThrowawayCluster()
    top = None
    try:
        primary.create()
        subprocess.run(
            ["psql", "-q", primary.url("postgres"), "-c", "CREATE DATABASE gridsvc"], check=True
        )
        dump = subprocess.run(
            ["pg_dump", "--no-owner", "--no-privileges", _dsn()], check=True, capture_output=True
        ).stdout
        subprocess.run(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", primary.url()],
            input=dump, check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", primary.url(), "-c",
             "CREATE ROLE gridsvc_app LOGIN PASSWORD 'gridsvc_app';"
             "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO gridsvc_app;"
             "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO gridsvc_app;"],
            check=True, capture_output=True,
        )  # fmt: skip
        top = Topology(primary)
        top.env.update(extra_env)
        started = top.run("start")
        assert started.returncode == 0, started.stdout + started.stderr + top.logs()
        yield top
    finally:
        if top is not None:
            top.run("stop")
            shutil.rmtree(top.dir, ignore_errors=True)
        primary.destroy()


def test_the_cluster_serves_through_nginx_replicates_routes_tiles_and_survives_an_app_server(
    topology,
):
    """One topology, end to end: requests through nginx reach both app servers; a login (a
    write: last_login) lands on the primary and is replayed on the standby; a tile GET reads
    from the standby; with one app server killed the site keeps answering; with the standby
    stopped tiles fall back to the primary; `cluster.sh stop` closes every port."""
    top = topology
    base = f"http://127.0.0.1:{top.nginx}"

    # 1. nginx in front of both app servers (round robin), X-Forwarded-For honoured
    upstreams = set()
    for _ in range(8):
        r = requests.get(f"{base}/health", timeout=10)
        assert r.status_code == 200, r.text
        upstreams.add(r.headers["X-Gridsvc-Upstream"])
    assert upstreams == {f"127.0.0.1:{top.app1}", f"127.0.0.1:{top.app2}"}, upstreams
    static = requests.get(f"{base}/static/web/app.css", headers={"Accept-Encoding": "gzip"})
    assert static.status_code == 200  # served by nginx itself (gzip), not an app server
    assert static.headers["X-Gridsvc-Upstream"] == "nginx"
    assert static.headers.get("Content-Encoding") == "gzip"

    # 2. a write through nginx → PgBouncer → primary, replayed on the standby
    login = requests.post(
        f"{base}/api/v1/auth/token/",
        json={"username": "grid1", "password": "gridsvc-demo"},
        timeout=30,
    )
    assert login.status_code == 200, login.text + top.logs()
    token = login.json()["access"]
    with psycopg.connect(top.primary.url()) as conn, conn.cursor() as cur:
        cur.execute("SELECT last_login FROM accounts_member WHERE username = 'grid1'")
        on_primary = cur.fetchone()[0]
    assert on_primary is not None
    assert wait_for(
        lambda: (
            top.standby_query("SELECT last_login FROM accounts_member WHERE username = 'grid1'")[0][
                0
            ]
            == on_primary
        ),
        30,
    ), "the login's write reached the standby"
    assert top.standby_query("SELECT pg_is_in_recovery()")[0][0] is True

    # 3. a tile GET is read on the standby (its transactions count there), an ordinary GET not
    from geo.hexbin import lonlat_to_tile
    from gridsvc.territory.models import Grid

    g1 = Grid.objects.get(code="620103003012001")
    c = g1.boundary.point_on_surface
    x, y = lonlat_to_tile(c.x, c.y, 16)
    bearer = {"Authorization": f"Bearer {token}"}

    def standby_xacts() -> int:
        return top.standby_query(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'gridsvc'"
        )[0][0]

    me = requests.get(f"{base}/api/v1/me/", headers=bearer, timeout=30)
    assert me.status_code == 200 and me.headers["X-Gridsvc-Read-From"] == "primary"
    before = standby_xacts()
    tile = requests.get(f"{base}/tiles/buildings/16/{x}/{y}.mvt", headers=bearer, timeout=30)
    assert tile.status_code == 200 and tile.content, tile.text
    assert tile.headers["X-Gridsvc-Read-From"] == "replica"
    assert wait_for(lambda: standby_xacts() > before + 1, 10), "the tile was read on the standby"

    # read-your-writes: a client that has just written (cookie set on the write's answer)
    # reads its next tile on the primary
    browser = requests.Session()
    wrote = browser.post(
        f"{base}/api/v1/auth/token/",
        json={"username": "grid1", "password": "gridsvc-demo"},
        timeout=30,
    )
    assert wrote.status_code == 200 and "gridsvc_primary" in browser.cookies
    after = browser.get(f"{base}/tiles/buildings/16/{x}/{y}.mvt", headers=bearer, timeout=30)
    assert after.status_code == 200 and after.headers["X-Gridsvc-Read-From"] == "primary"

    # 4. one app server killed: nginx routes around it, nothing fails
    pid = int((top.dir / f"app-{top.app1}.pid").read_text())
    os.killpg(pid, signal.SIGKILL)
    assert wait_for(lambda: not _port_open(top.app1), 10)
    answers = [requests.get(f"{base}/health", timeout=10) for _ in range(10)]
    assert [a.status_code for a in answers] == [200] * 10
    assert {a.headers["X-Gridsvc-Upstream"].split(", ")[-1] for a in answers} == {
        f"127.0.0.1:{top.app2}"
    }

    # 5. the standby stopped (just after a tile read it there): tiles still answer, on the
    # primary, the first one included
    assert (
        requests.get(f"{base}/tiles/buildings/16/{x}/{y}.mvt", headers=bearer, timeout=30).headers[
            "X-Gridsvc-Read-From"
        ]
        == "replica"
    )
    subprocess.run(
        [*top.primary.as_postgres, str(top.primary.bin / "pg_ctl"), "-D",
         str(top.primary.dir / "standby"), "-m", "immediate", "-w", "stop"],
        check=True, capture_output=True,
    )  # fmt: skip
    for path in (f"tiles/buildings/16/{x}/{y}.mvt", "api/v1/choropleth/grids/") * 2:
        again = requests.get(f"{base}/{path}", headers=bearer, timeout=30)
        assert again.status_code == 200 and again.content, again.text
        assert again.headers["X-Gridsvc-Read-From"] == "primary"

    # 6. PgBouncer stopped: an outage answer (503 + Retry-After) passes through nginx; started
    # again (cluster.sh start only starts what is missing), clients recover
    pid = int((top.dir / "pgbouncer.pid").read_text())
    os.kill(pid, signal.SIGINT)
    assert wait_for(lambda: not _port_open(top.bouncer), 10)
    down = requests.get(f"{base}/api/v1/me/", headers=bearer, timeout=30)
    assert down.status_code == 503 and int(down.headers["Retry-After"]) > 0, down.text
    again = top.run("start")
    assert again.returncode == 0, again.stderr
    # the parts that were running are kept; the killed app server and the standby come back
    assert f"gunicorn app server on port {top.app2}" not in again.stdout
    assert f"gunicorn app server on port {top.app1}" in again.stdout
    assert requests.get(f"{base}/api/v1/me/", headers=bearer, timeout=30).status_code == 200

    # 7. X-Forwarded-For: the address nginx appends is the client's, one the client sends is
    # not — failed logins under three made-up addresses all count against this client, whose
    # next login (right password, a fourth made-up address) is refused
    for i in range(3):
        failed = requests.post(
            f"{base}/api/v1/auth/token/",
            json={"username": "grid1", "password": "wrong-password"},
            headers={"X-Forwarded-For": f"10.9.8.{i}"},
            timeout=30,
        )
        assert failed.status_code in (400, 401), failed.text
    refused = requests.post(
        f"{base}/api/v1/auth/token/",
        json={"username": "grid1", "password": "gridsvc-demo"},
        headers={"X-Forwarded-For": "10.9.8.200"},
        timeout=30,
    )
    assert refused.status_code == 429, refused.text

    # 8. stop: every port of the topology closed (the throwaway primary is the fixture's)
    stopped = top.run("stop")
    assert stopped.returncode == 0, stopped.stderr
    for port in (top.nginx, top.app1, top.app2, top.bouncer, top.standby):
        assert not _port_open(port), port
    assert connection.vendor == "postgresql"


@pytest.mark.separate  # make cluster-faults (4-5 min on a busy machine; docs/scaling.md)
def test_the_fault_script_under_load_loses_nothing(topology_with_workers):
    """scripts/cluster_faults.py (`make cluster-faults`) against the topology with workers:
    under a few clients' mix of reads and case reports (Idempotency-Key), the standby stopped
    (no request fails), an app server killed (no GET fails), a worker killed mid-job (the case
    escalated once), PgBouncer restarted (clients recover), the pool filled (503 + Retry-After,
    no hang) — and nothing lost."""
    import importlib.util

    top = topology_with_workers
    spec = importlib.util.spec_from_file_location(
        "cluster_faults", ROOT / "scripts" / "cluster_faults.py"
    )
    faults = importlib.util.module_from_spec(spec)
    sys.modules["cluster_faults"] = faults  # its dataclasses look their module up
    spec.loader.exec_module(faults)
    cfg = faults.Config(
        nginx=top.nginx,
        apps=[top.app1, top.app2],
        bouncer=top.bouncer,
        run_dir=top.dir,
        standby_dir=top.primary.dir / "standby",
        primary_dsn=top.primary.url(),
        pool_connections=5,
        query_wait_timeout=3,
        env=top.env,
    )
    report = faults.run(cfg)
    summary = report.summary()
    print(summary)  # make cluster-faults shows it (-rP)
    assert report.ok, summary + top.logs()
    assert not report.lost, summary
    assert len(report.checks) == 8, summary  # every fault was checked
