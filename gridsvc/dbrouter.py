"""Read replica routing (issue 23): heavy read-only paths on the streaming standby.

Active only when ``DATABASE_REPLICA_URL`` is set (settings add the ``replica`` alias, this
router and :class:`ReplicaMiddleware`). The rules:

- a GET/HEAD whose view is one of :data:`REPLICA_VIEWS` (tiles, heatmap, choropleth, OGC
  items, layer features, exports, reports) reads from ``replica``;
- everything else, every write, and every read inside a transaction on the primary
  (``atomic``, ``select_for_update``) goes to ``default`` (the primary);
- read-your-writes: a member who has just written (a non-GET request) reads from the primary
  for :data:`STICKY_SECONDS` (a cookie set on the answer to the write);
- replica lag is measured (``now() - pg_last_xact_replay_timestamp()`` while WAL is pending)
  at most every :data:`LAG_CHECK_SECONDS` per process; beyond ``GRIDSVC_REPLICA_MAX_LAG``
  seconds (default 5), or when the standby does not answer, reads fall back to the primary.

The tile cache (``layers_tilecache``) is read where the request reads (its rows are invalidated
by triggers on the primary and replicated like any other row) and written on the primary.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest, HttpResponse

REPLICA = "replica"
PRIMARY = "default"
STICKY_COOKIE = "gridsvc_primary"
STICKY_SECONDS = int(os.environ.get("GRIDSVC_REPLICA_STICKY", "10"))
MAX_LAG = float(os.environ.get("GRIDSVC_REPLICA_MAX_LAG", "5"))
LAG_CHECK_SECONDS = 2.0
# URL names (api/layers.py, api/reports.py) whose GETs only read
REPLICA_VIEWS = frozenset(
    {
        "tile",
        "tilejson",
        "heatmap-cases",
        "choropleth-grids",
        "layers",
        "layer-features",
        "ogc-collections",
        "ogc-collection",
        "ogc-items",
        "export-layer",
        "ledgers",
        "report-monthly",
        "report-annual",
    }
)

_use_replica: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "gridsvc_use_replica", default=False
)
_health: dict[str, float] = {"checked": 0.0, "ok": 0.0, "lag": 0.0}


def replica_configured() -> bool:
    return REPLICA in connections.databases


def replica_lag() -> float | None:
    """Seconds the standby is behind (0 when it has replayed everything it received), or None
    when it does not answer."""
    try:
        with connections[REPLICA].cursor() as cur:
            cur.execute(
                "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
                " ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)"
                " END"
            )
            return float(cur.fetchone()[0])
    except Exception:  # noqa: BLE001 - any failure: the replica is not usable now
        try:
            connections[REPLICA].close()
        except Exception:  # noqa: BLE001
            pass
        return None


def replica_usable() -> bool:
    """The standby answers and is within :data:`MAX_LAG` (checked every few seconds)."""
    now = time.monotonic()
    if now - _health["checked"] >= LAG_CHECK_SECONDS:
        lag = replica_lag()
        _health.update(checked=now, ok=float(lag is not None and lag <= MAX_LAG), lag=lag or 0)
    return bool(_health["ok"])


def read_alias() -> str:
    """Where a read of the current request goes."""
    if not _use_replica.get() or not replica_configured():
        return PRIMARY
    if connections[PRIMARY].in_atomic_block:
        return PRIMARY
    return REPLICA if replica_usable() else PRIMARY


def read_connection() -> BaseDatabaseWrapper:
    """The connection for raw read-only SQL (tile building, the tile cache lookup)."""
    return connections[read_alias()]


class ReplicaRouter:
    """Django database router: reads of replica-eligible requests on ``replica``."""

    def db_for_read(self, model: type, **hints: Any) -> str:
        return read_alias()

    def db_for_write(self, model: type, **hints: Any) -> str:
        _use_replica.set(False)  # a request that writes reads its own writes
        return PRIMARY

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == PRIMARY


class ReplicaMiddleware:
    """Marks the request replica-eligible (safe method, listed view, no recent write by this
    client) and sets the read-your-writes cookie after a write. Answers carry
    ``X-Gridsvc-Read-From`` (``replica`` or ``primary``) so an operator can see the routing."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _use_replica.set(False)
        try:
            response = self.get_response(request)
            eligible = _use_replica.get()
            response["X-Gridsvc-Read-From"] = (
                "replica" if eligible and read_alias() == REPLICA else "primary"
            )
        finally:
            _use_replica.reset(token)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            response.set_cookie(
                STICKY_COOKIE, "1", max_age=STICKY_SECONDS, httponly=True, samesite="Lax"
            )
        return response

    def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: Any) -> None:
        match = request.resolver_match
        if (
            request.method in ("GET", "HEAD")
            and match is not None
            and match.url_name in REPLICA_VIEWS
            and not request.COOKIES.get(STICKY_COOKIE)
        ):
            _use_replica.set(True)
            request._gridsvc_view = (view, args, kwargs)  # type: ignore[attr-defined]

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        """The standby failed under a replica read (stopped, restarting, connection dropped):
        mark it down and run the (read-only) view again on the primary, so the client sees no
        error. Other errors, and failures of the primary, go on to the outage middleware."""
        from django.db import InterfaceError, OperationalError

        target = getattr(request, "_gridsvc_view", None)
        if (
            target is None
            or not _use_replica.get()
            or not isinstance(exception, (OperationalError, InterfaceError))
            or replica_lag() is not None
        ):
            return None
        _health.update(checked=time.monotonic(), ok=0.0)
        _use_replica.set(False)
        request._gridsvc_view = None  # type: ignore[attr-defined]
        view, args, kwargs = target
        response = view(request, *args, **kwargs)
        if hasattr(response, "render") and callable(response.render):
            response = response.render()
        return response
