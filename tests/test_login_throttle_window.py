"""The failed-login throttle (登录限流) counts the failures of the last period, whatever the
clock's window boundaries (gridsvc.accounts.throttle).

The counters live in the real database cache (``gridsvc_cache``); only the clock is patched:
``time.time`` (what the throttle's windows and the cache's expiry times are computed from) and
the database cache's ``now`` (what it compares the expiry times with), both moved by the test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from unittest import mock

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

PASSWORD = "gridsvc-demo"
ATTACKER = {"REMOTE_ADDR": "203.0.113.77", "HTTP_USER_AGENT": "curl/8.5"}
OTHER = {"REMOTE_ADDR": "198.51.100.8", "HTTP_USER_AGENT": "GridApp/2.1 (Android 14)"}
NAMES = ["grid1", "grid2", "grid3", "grid5", "grid6", "grid7"]


class Clock:
    """A wall clock the test sets (seconds since the epoch)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def time(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, tz=UTC)


@pytest.fixture
def clock() -> Iterator[Clock]:
    c = Clock(time.time())
    with (
        mock.patch("gridsvc.accounts.throttle.time.time", c.time),
        mock.patch("django.core.cache.backends.db.tz_now", c.now),
    ):
        yield c


def next_boundary(period: int) -> int:
    """The next multiple of ``period`` seconds after the real clock (a window boundary)."""
    return (int(time.time()) // period + 1) * period


def login(username: str, password: str = PASSWORD, **client: str) -> tuple[int, dict]:
    r = APIClient().post(
        "/api/v1/auth/token/",
        {"username": username, "password": password, "device": "phone-1"},
        format="json",
        **client,
    )
    return r.status_code, r.json()


def fail(i: int) -> None:
    """One failed login from the attacker's address (a different username each time, so the
    per-client lockout of django-axes plays no part)."""
    status, _ = login(NAMES[i % len(NAMES)], password="guess-123456", **ATTACKER)
    assert status == 401


@override_settings(LOGIN_FAILURE_RATE="3/min")
def test_failures_on_both_sides_of_a_minute_boundary_add_up(demo, clock):
    boundary = next_boundary(60)
    clock.t = boundary - 1  # 23:59:59
    fail(0)
    fail(1)
    clock.t = boundary + 1  # 00:00:01: two seconds later, three failures in the last minute
    fail(2)
    status, body = login("cadre1", **ATTACKER)  # the right password
    assert status == 429, body
    assert "address" in body["detail"]
    assert login("cadre1", **OTHER)[0] == 200  # another address is not affected
    # still within a minute of the first failure: still refused
    clock.t = boundary + 50
    assert login("cadre1", **ATTACKER)[0] == 429
    # the counters are shared by every worker: rows of the database cache, one per window
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM gridsvc_cache WHERE cache_key LIKE %s",
            ["%login-failures:203.0.113.77:%"],
        )
        assert cur.fetchone()[0] == 2


@override_settings(LOGIN_FAILURE_RATE="3/min")
def test_failures_older_than_the_last_windows_are_forgotten(demo, clock):
    boundary = next_boundary(60)
    clock.t = boundary - 3
    for i in range(3):
        fail(i)
    assert login("cadre1", **ATTACKER)[0] == 429
    clock.t = boundary + 1  # the next window: the failures are in the previous one
    assert login("cadre1", **ATTACKER)[0] == 429
    clock.t = boundary - 3 + 120  # two periods later the address may sign in again
    status, body = login("cadre1", **ATTACKER)
    assert status == 200, body


@override_settings(LOGIN_FAILURE_RATE="3/hour")
def test_an_hourly_limit_remembers_failures_for_the_last_hour(demo, clock):
    boundary = next_boundary(3600)
    clock.t = boundary - 600  # 10 minutes before the hour
    fail(0)
    fail(1)
    clock.t = boundary + 1800  # 40 minutes after the first failures: the same hour
    fail(2)
    status, body = login("cadre1", **ATTACKER)
    assert status == 429, body
    assert "address" in body["detail"]
    clock.t = boundary + 2 * 3600 + 1  # two windows later they are forgotten
    assert login("cadre1", **ATTACKER)[0] == 200
