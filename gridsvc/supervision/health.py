"""``/health`` and ``/health/worker``: is the service up, and is a background worker alive?

A worker writes a heartbeat every ``GRIDSVC_WORKER_HEARTBEAT`` seconds (10) in procrastinate's
``procrastinate_workers`` table (see :mod:`gridsvc.supervision.worker`). The worker counts as
*stale* when no worker has written one for ``GRIDSVC_WORKER_STALE`` seconds (60): deadlines
are then not checked, nobody is escalated and no SMS goes out.

- ``GET /health`` — for the load balancer / liveness probe of the *web* process: 200 while the
  database answers, with ``"status": "ok"`` or ``"degraded"`` (no live worker) and a
  ``"worker"`` object; 503 (with ``Retry-After``) when the database is down. A dead worker does
  not take the web process out of rotation: the web still serves.
  When the configured field keys cannot decrypt the stored personal data (``"keys":
  "wrong"``: the wrong ``GRIDSVC_FIELD_KEYS``), 503: every resident read would fail.
- ``GET /health/worker`` — for the monitor that pages someone: 200 when a worker is alive, 503
  ``{"worker": "stale" | "none", …}`` when none has been alive recently.
"""

from __future__ import annotations

import os
from typing import Any

from django.db import connection
from django.http import HttpRequest, JsonResponse


def stale_after_seconds() -> float:
    return float(os.environ.get("GRIDSVC_WORKER_STALE", "60"))


def worker_status() -> dict[str, Any]:
    """``{"state": "ok" | "stale" | "none", "alive": n, "last_heartbeat": iso | None,
    "age_seconds": s | None}`` from the workers' heartbeats."""
    limit = stale_after_seconds()
    with connection.cursor() as cur:
        cur.execute(
            "SELECT max(last_heartbeat), extract(epoch FROM now() - max(last_heartbeat)), "
            "count(*) FILTER (WHERE last_heartbeat > now() - make_interval(secs => %s)) "
            "FROM procrastinate_workers",
            [limit],
        )
        last, age, alive = cur.fetchone()
    if last is None:
        state = "none"
    else:
        state = "ok" if alive else "stale"
    return {
        "state": state,
        "alive": alive,
        "last_heartbeat": last.isoformat() if last else None,
        "age_seconds": round(float(age), 1) if age is not None else None,
        "stale_after_seconds": limit,
    }


def health(request: HttpRequest) -> JsonResponse:
    """Liveness/readiness of the web process: the database and PostGIS answer; says whether a
    worker is alive (``status`` ``degraded`` when not)."""
    with connection.cursor() as cur:
        cur.execute("select postgis_lib_version()")
        postgis = cur.fetchone()[0]
    from gridsvc.crypto import keys_read_stored_data

    keys = keys_read_stored_data()
    worker = worker_status()
    if keys is False:
        return JsonResponse(
            {
                "status": "wrong_keys",
                "postgis": postgis,
                "database": "ok",
                "keys": "wrong",
                "detail": "GRIDSVC_FIELD_KEYS cannot decrypt the stored personal data",
                "worker": worker,
            },
            status=503,
        )
    return JsonResponse(
        {
            "status": "ok" if worker["state"] == "ok" else "degraded",
            "postgis": postgis,
            "database": "ok",
            "keys": "ok" if keys else "no_data",
            "worker": worker,
        }
    )


def health_worker(request: HttpRequest) -> JsonResponse:
    """503 when no background worker has sent a heartbeat recently (for alerting)."""
    worker = worker_status()
    ok = worker["state"] == "ok"
    return JsonResponse(
        {"status": "ok" if ok else "stale", "worker": worker["state"], **worker},
        status=200 if ok else 503,
    )
