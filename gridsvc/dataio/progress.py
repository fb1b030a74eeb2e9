"""Progress of a queued import (an :class:`~gridsvc.reports.models.ImportRun`), written on a
connection of its own so the uploader sees it while the import's transaction is still open.
Shared by the roster and the boundary imports."""

from __future__ import annotations

import time

from django.db import DEFAULT_DB_ALIAS, connections


class ProgressWriter:
    """Writes a queued run's progress on a connection of its own, so the uploader sees it
    while the import's transaction is still open (at most once a second)."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.conn = connections.create_connection(DEFAULT_DB_ALIAS)
        self.last = 0.0
        self.phase_seen = ""

    def __call__(self, done: int, total: int, phase: str) -> None:
        now = time.monotonic()
        if now - self.last < 1.0 and phase == self.phase_seen:
            return
        self.last, self.phase_seen = now, phase
        from gridsvc.reports.models import ImportRun

        with self.conn.cursor() as cur:
            cur.execute(
                f"UPDATE {ImportRun._meta.db_table} SET rows_done = %s, rows_total = %s, "
                "phase = %s WHERE id = %s",
                [done, total or None, phase, self.run_id],
            )

    def close(self) -> None:
        self.conn.close()
