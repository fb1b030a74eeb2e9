"""gunicorn settings for gridsvc: ``gunicorn gridsvc.wsgi -c gridsvc/gunicorn_conf.py``
(scripts/serve.sh, bench/bench_overhead.py). Command-line options given after ``-c`` win.

- ``preload_app`` (``GRIDSVC_PRELOAD``, default on): the application, its URLconf and every
  view module — with the heavy libraries some of them use (pandas/geopandas for exports,
  openpyxl for ledgers, pyproj) — are imported once in the master before the workers fork:
  no worker's first request pays 1–2 s of imports, and the workers share those pages.
  Without preload each worker imports them in ``post_worker_init``, before it accepts a
  request. No database connection is opened before the fork (they are closed after the
  warm-up).
- ``gthread``, 2 workers × 4 threads (see below; ``GRIDSVC_WEB_WORKER_CLASS``,
  ``GRIDSVC_WEB_WORKERS``, ``GRIDSVC_WEB_THREADS``);
- no control socket: gunicorn 27's default socket in the home folder is shared by every
  gunicorn of that user, so a second server (a benchmark, a test) would clobber it.
"""

from __future__ import annotations

import os

preload_app = os.environ.get("GRIDSVC_PRELOAD", "1").strip().lower() in {"1", "true", "yes", "on"}
control_socket_disable = True
# Worker model, chosen by measurement on 2 cores (bench/bench_overhead.py, README): 2 processes
# × 4 threads answered the chain for a point in 6.0 ms (median) against 8.6 ms for 3 sync
# workers, and 366 against 263 req/s with 8 clients (similar at 32); threads keep the
# connection open (a sync worker closes it after every answer) and a slow request (a monthly
# report) holds a thread, not a process. Up to workers × threads database connections.
worker_class = os.environ.get("GRIDSVC_WEB_WORKER_CLASS", "gthread")
workers = int(os.environ.get("GRIDSVC_WEB_WORKERS", "2"))
threads = int(os.environ.get("GRIDSVC_WEB_THREADS", "4"))


def _warm() -> None:
    """Import what the first request would: the URLconf (all view modules)."""
    from django.db import connections
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports api.urls and every view module
    connections.close_all()


def when_ready(server) -> None:  # type: ignore[no-untyped-def]
    if preload_app:
        _warm()  # in the master: inherited by every worker


def post_worker_init(worker) -> None:  # type: ignore[no-untyped-def]
    _warm()  # already done (preload): nothing left to import
