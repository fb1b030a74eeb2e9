"""``manage.py worker``: the background worker, restartable by a supervisor (see
:mod:`gridsvc.supervision.worker`)."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from gridsvc.supervision.worker import run_worker


class Command(BaseCommand):
    help = (
        "Run the background worker (procrastinate). Exits 1 when the database fails it, so "
        "a supervisor (scripts/worker.sh, systemd) restarts it; retries stalled jobs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-q", "--queues", default="", help="comma-separated (default all)")
        parser.add_argument(
            "-p", "--polling", type=float, default=5.0, help="seconds between polls"
        )
        parser.add_argument(
            "--one-shot", action="store_true", help="stop when no job is left to run"
        )

    def handle(self, *args: Any, queues: str, polling: float, one_shot: bool, **kw: Any) -> None:
        code = run_worker(queues.split(","), wait=not one_shot, polling=polling)
        sys.stdout.flush()
        if code:
            sys.exit(code)
