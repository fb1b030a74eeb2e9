"""Test fixtures: a real PostGIS test database with the demo street loaded once per run.

The demo street is built once into a template database (``gridsvc_demo_tpl_<hash>``, the
hash of the fixtures, migrations and code that build it: :func:`ensure_demo_template`) and
every test database — one per pytest-xdist worker, ``test_gridsvc_gw0`` … — is a copy of it
(``CREATE DATABASE … TEMPLATE``, seconds instead of migrating and loading the demo each time).
Each test runs inside a transaction that is rolled back, so tests may change the demo data
freely. Helpers here build small extra territories for edge cases.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PREFIX = "gridsvc_demo_tpl_"
TEMPLATES_KEPT = 3  # other checkouts sharing the cluster may use older templates
TEMPLATE_IDLE_HOURS = 2  # … and any template asked for in the last two hours is kept


def _template_key() -> str:
    """Hash of everything the demo template is built from: the fixtures, the migrations and
    the code that runs them (gridsvc/, geo/), and the settings given by environment variables
    (keys that encrypt and hash the demo's personal data)."""
    h = hashlib.sha256()
    sources = [p for p in (ROOT / "fixtures").rglob("*") if p.is_file()]
    for package in ("gridsvc", "geo"):
        sources += (ROOT / package).rglob("*.py")
        sources += (ROOT / package).rglob("*.sql")
    for path in sorted(p for p in sources if "__pycache__" not in p.parts):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    for name in sorted(os.environ):
        if name.startswith(("GRIDSVC_", "DJANGO_")) and name != "GRIDSVC_TEST_DB":
            h.update(f"{name}={os.environ[name]}\0".encode())
    return h.hexdigest()[:16]


def _admin_connection(settings_dict: dict[str, Any]):  # type: ignore[no-untyped-def]
    """An autocommit connection to the cluster's ``postgres`` database as the test role."""
    import psycopg

    return psycopg.connect(
        dbname="postgres",
        user=settings_dict["USER"] or None,
        password=settings_dict["PASSWORD"] or None,
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
        autocommit=True,
    )


def database_url(settings_dict: dict[str, Any], name: str) -> str:
    """The ``DATABASE_URL`` of database ``name`` on the test cluster, for subprocesses."""
    from urllib.parse import quote

    s = settings_dict
    auth = quote(s["USER"] or "", safe="")
    if s["PASSWORD"]:
        auth += ":" + quote(s["PASSWORD"], safe="")
    return f"postgis://{auth}@{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{name}"


def _build_template(admin, settings_dict: dict[str, Any], name: str) -> None:  # type: ignore[no-untyped-def]
    """Migrate and load the demo into ``<name>_build``, then rename it to ``name`` (a build that
    stops half-way never leaves a template behind)."""
    build = f"{name}_build"
    admin.execute(f'DROP DATABASE IF EXISTS "{build}"')
    admin.execute(f'CREATE DATABASE "{build}"')
    env = {**os.environ, "GRIDSVC_TESTING": "1", "DATABASE_URL": database_url(settings_dict, build)}
    env.pop("DATABASE_REPLICA_URL", None)
    for command in (
        ["migrate", "--no-input", "--run-syncdb", "-v", "0"],
        ["createcachetable"],
        ["load_demo", "-v", "0"],
    ):
        r = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            admin.execute(f'DROP DATABASE IF EXISTS "{build}"')
            raise RuntimeError(f"building the demo template: manage.py {command[0]} failed\n"
                               f"{r.stdout[-3000:]}\n{r.stderr[-6000:]}")  # fmt: skip
    admin.execute(f'ALTER DATABASE "{build}" RENAME TO "{name}"')


def _lock_key(name: str) -> int:
    """Advisory lock key of one template (builders of other templates do not wait)."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:15], 16)


def _prune_templates(admin, keep: str) -> None:  # type: ignore[no-untyped-def]
    """Drop templates nobody has asked for in ``TEMPLATE_IDLE_HOURS`` (the newest
    ``TEMPLATES_KEPT`` stay anyway), and builds that stopped half-way (those whose builder's
    lock is free)."""
    rows = admin.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
        "WHERE datname LIKE %s ORDER BY oid DESC",
        [TEMPLATE_PREFIX + "%"],
    ).fetchall()
    idle_before = time.time() - TEMPLATE_IDLE_HOURS * 3600
    built = [(n, c) for n, c in rows if not n.endswith("_build") and n != keep]
    for old, used in built[TEMPLATES_KEPT - 1 :]:
        if used and used.isdigit() and int(used) > idle_before:
            continue
        try:
            admin.execute(f'DROP DATABASE IF EXISTS "{old}"')
        except Exception:  # noqa: BLE001 - being copied by another run: next time
            pass
    for build in [n for n, _ in rows if n.endswith("_build")]:
        key = _lock_key(build.removesuffix("_build"))
        if admin.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]:
            try:
                admin.execute(f'DROP DATABASE IF EXISTS "{build}"')
            except Exception:  # noqa: BLE001
                pass
            finally:
                admin.execute("SELECT pg_advisory_unlock(%s)", [key])


def ensure_demo_template(settings_dict: dict[str, Any]) -> str:
    """The name of the demo template for this checkout, built now if the cluster has none.
    Concurrent runs of the same checkout (xdist workers) wait for one builder (advisory
    lock); other checkouts build their own templates meanwhile."""
    name = TEMPLATE_PREFIX + _template_key()
    key = _lock_key(name)
    with _admin_connection(settings_dict) as admin:
        admin.execute("SELECT pg_advisory_lock(%s)", [key])
        try:
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if exists.fetchone() is None:
                _build_template(admin, settings_dict, name)
            # when it was last asked for (pruning keeps templates in use)
            admin.execute(f"COMMENT ON DATABASE \"{name}\" IS '{int(time.time())}'")
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", [key])
        _prune_templates(admin, keep=name)
    return name


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:  # noqa: ARG001
    """Test databases are copies of the demo template (Django's TEST["TEMPLATE"])."""
    from django.conf import settings

    # asked here: under pytest-xdist this runs when the worker's first database test starts,
    # maybe long after the session began (another checkout may have pruned it meanwhile)
    settings.DATABASES["default"]["TEST"]["TEMPLATE"] = ensure_demo_template(
        settings.DATABASES["default"]
    )


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):  # noqa: F811 - extends pytest-django's
    from django.core.management import call_command
    from django.db.backends.signals import connection_created

    connection_created.connect(_remember_connection, weak=False)
    with django_db_blocker.unblock():
        call_command("load_demo", verbosity=0)  # already there in a copy: returns at once
        empty_job_queue()


# Every Django connection of this process (any thread, greenlet or context: Playwright's
# callbacks, the live server's request threads), for :func:`restore_demo_database`.
_connections_made: weakref.WeakSet[Any] = weakref.WeakSet()


def _remember_connection(sender: Any, connection: Any, **kwargs: Any) -> None:  # noqa: ARG001
    _connections_made.add(connection)


def empty_job_queue() -> None:
    """Start the session from an empty procrastinate queue. Jobs deferred by tests that
    commit (live-server and transactional tests) stay in a database kept by ``--reuse-db``,
    and the next session's worker tests would run (or wait for) them; the template's own job
    (the demo's recompute) goes too, so a fresh and a reused database start alike."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("DELETE FROM procrastinate_jobs")  # their events: ON DELETE CASCADE


@pytest.fixture
def demo_database(django_db_modify_db_settings_parallel_suffix) -> Iterator[str]:  # noqa: ARG001
    """A database of its own with the committed demo street (a copy of the template), for a
    server run in another process that may change anything (dropped afterwards); its name."""
    from django.conf import settings

    template = ensure_demo_template(settings.DATABASES["default"])
    base = settings.DATABASES["default"]["TEST"]["NAME"] or "test_gridsvc"
    name = f"{base}_own"
    with _admin_connection(settings.DATABASES["default"]) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield name
    finally:
        with _admin_connection(settings.DATABASES["default"]) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``early`` (long, and on a database of their own) start first: under
    pytest-xdist one worker runs them while the other works through the rest. Runs after
    pytest-django's ordering (plain db tests, then transactional ones).

    Tests marked ``separate`` belong to a documented target of their own (``make
    cluster-faults`` sets ``GRIDSVC_CLUSTER_FAULTS=1``): deselected from ``make test``, not
    skipped."""
    if not os.environ.get("GRIDSVC_CLUSTER_FAULTS"):
        separate = [item for item in items if item.get_closest_marker("separate")]
        if separate:
            config.hook.pytest_deselected(items=separate)
            items[:] = [item for item in items if not item.get_closest_marker("separate")]
    items.sort(key=lambda item: 0 if item.get_closest_marker("early") else 1)
    # Among the transactional tests (pytest-django runs them after the others, before the tests
    # without a database) the browser ones, the longest, start first: the shorter ones and the
    # tests without a database then even out the two workers' ends.
    transactional = [i for i, item in enumerate(items) if _is_transactional(item)]
    if transactional:
        first, last = transactional[0], transactional[-1] + 1
        items[first:last] = sorted(
            items[first:last],
            key=lambda item: 0 if item.get_closest_marker("browser") else 1,
        )


def _is_transactional(item: pytest.Item) -> bool:
    """As pytest-django tells a transactional test (its ordering)."""
    marker = item.get_closest_marker("django_db")
    fixtures = getattr(item, "fixturenames", [])
    return bool(
        (marker is not None and (marker.kwargs.get("transaction") or marker.args[:1] == (True,)))
        or "transactional_db" in fixtures
        or "live_server" in fixtures
    )


@pytest.fixture
def committed_demo(transactional_db):
    """For transactional tests (live server, real worker): the committed demo street in the
    test database. A transactional test ends with pytest-django's flush (every table emptied),
    so the next one finds no demo: the test database is then copied again from the demo
    template the session started from (:func:`restore_demo_database`, about a second where
    ``load_demo`` took half a minute), which also leaves nothing of the earlier test behind
    (procrastinate's tables, which the flush keeps, come back empty)."""
    from fixtures.demo_street import STREET_CODE
    from gridsvc.territory.models import Street

    if not Street.objects.filter(code=STREET_CODE).exists():
        restore_demo_database()


def restore_demo_database() -> None:
    """Replace this worker's test database by a fresh copy of the demo template its session
    was created from (``CREATE DATABASE … TEMPLATE``), with an empty job queue as at the start
    of the session. Django's connections to it are closed first (they reopen on the next
    query) and any left (a live-server request thread's) are ended. The old database is
    renamed out of the way and dropped in the background: ``DROP DATABASE`` waits for a
    checkpoint, seconds on a busy cluster."""
    import psycopg
    from django.conf import settings
    from django.contrib.contenttypes.models import ContentType
    from django.db import connections

    default = settings.DATABASES["default"]
    name = default["NAME"]  # the test database (pytest-django has switched to it)
    template = default["TEST"].get("TEMPLATE") or ensure_demo_template(default)
    old = f"{name}_old"
    connections.close_all()
    # … and this thread's in other contexts (Playwright's callbacks run in greenlets of their
    # own, each with its own Django connection)
    others = []
    for wrapper in list(_connections_made):
        if wrapper.connection is None:
            continue
        if wrapper._thread_ident == threading.get_ident():
            wrapper.close()
        else:
            others.append(wrapper)
    _wait_for_background_drop()
    with _admin_connection(default) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')  # left by a killed run
        for attempt in range(50):
            # the clients only: an autovacuum worker on the database is a superuser process
            # (terminating it is refused; the rename below stops it itself)
            admin.execute(
                "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a "
                "WHERE a.datname = %s AND a.pid <> pg_backend_pid() "
                "AND a.backend_type = 'client backend' "
                "AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = a.usesysid AND r.rolsuper)",
                [name],
            )
            try:
                admin.execute(f'ALTER DATABASE "{name}" RENAME TO "{old}"')
                break
            except psycopg.errors.ObjectInUse:  # a terminated backend still exiting
                if attempt == 49:
                    raise
                time.sleep(0.1)
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    _background_drops.append(threading.Thread(target=_drop_database, args=(default, old)))
    _background_drops[-1].start()  # not a daemon: the session's exit waits for it
    # connections another thread of this process opened were ended with the old database:
    # each checks itself before its next query and reconnects (Django's CONN_HEALTH_CHECKS)
    for wrapper in others:
        wrapper.health_check_enabled = True
        wrapper.health_check_done = False
    empty_job_queue()
    # the flush's post_migrate recreated content types under other ids; the copy has the
    # template's again
    ContentType.objects.clear_cache()


_background_drops: list[threading.Thread] = []


def _drop_database(settings_dict: dict[str, Any], name: str) -> None:
    with _admin_connection(settings_dict) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_for_background_drop() -> None:
    while _background_drops:
        _background_drops.pop().join()


def square(x0: float, y0: float, x1: float, y1: float) -> MultiPolygon:
    """A WGS84 rectangle as a MultiPolygon."""
    return MultiPolygon(Polygon(((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))), srid=4326)


@pytest.fixture
def demo(db):
    """Handles on the demo street's main objects."""
    from gridsvc.territory.models import Community, Grid, Street

    street = Street.objects.get(code="620103003")
    community = Community.objects.get(code="620103003012")
    grids = list(Grid.objects.filter(community=community).order_by("code"))
    return type("Demo", (), {"street": street, "community": community, "grids": grids})


@pytest.fixture
def token_client(db):
    """``token_client("grid1")`` → an APIClient signed in as that demo member the way a phone
    is: a JWT from ``/api/v1/auth/token/`` (device ``phone-<username>``) sent as a bearer
    token, so requests go through the API's own authentication (the caller's one query, riders,
    device revocation), not ``force_authenticate``."""

    def make(username: str) -> APIClient:
        client = APIClient()
        r = client.post(
            "/api/v1/auth/token/",
            {"username": username, "password": "gridsvc-demo", "device": f"phone-{username}"},
            format="json",
        )
        assert r.status_code == 200, r.content
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {r.data['access']}")
        return client

    return make


@pytest.fixture
def member_client(db):
    """``member_client("grid1")`` → an APIClient logged in as that demo member."""

    def make(username: str) -> APIClient:
        from gridsvc.accounts.models import Member

        client = APIClient()
        client.force_authenticate(Member.objects.get(username=username))
        return client

    return make
