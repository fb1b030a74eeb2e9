"""Shared helpers for the login-protection tests (登录限流, 登录锁定): a wall clock the test
sets for the failure throttle's windows (:mod:`gridsvc.accounts.throttle`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from unittest import mock


class Clock:
    """A wall clock the test sets (seconds since the epoch)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def time(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, tz=UTC)


@contextmanager
def throttle_clock() -> Iterator[Clock]:
    """The failure throttle's clock (and the database cache's), set by the test; it starts at
    the next minute boundary of the real clock."""
    c = Clock((int(time.time()) // 60 + 1) * 60)
    with (
        mock.patch("gridsvc.accounts.throttle.time.time", c.time),
        mock.patch("django.core.cache.backends.db.tz_now", c.now),
    ):
        yield c
