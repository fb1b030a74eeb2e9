"""The failed-login throttle (登录限流) counts the failures of the last period, whatever the
clock's window boundaries (gridsvc.accounts.throttle).

The counters live in the real database (``accounts.LoginThrottleCount``); only the clock is
patched: ``time.time`` (what the throttle's windows are computed from) and the database cache's
``now`` (the cache the counters lived in before), both moved by the test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from .login_helpers import Clock, throttle_clock

pytestmark = pytest.mark.django_db

PASSWORD = "gridsvc-demo"
ATTACKER = {"REMOTE_ADDR": "203.0.113.77", "HTTP_USER_AGENT": "curl/8.5"}
OTHER = {"REMOTE_ADDR": "198.51.100.8", "HTTP_USER_AGENT": "GridApp/2.1 (Android 14)"}
NAMES = ["grid1", "grid2", "grid3", "grid5", "grid6", "grid7"]


@pytest.fixture
def clock() -> Iterator[Clock]:
    with throttle_clock() as c:  # from the next minute boundary
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
    # the counters are shared by every worker: one database row per address, its two windows
    # (2 failures before the boundary; after it 1 failure and 2 refused attempts)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT previous, current FROM accounts_loginthrottlecount"
            " WHERE scope = 'failure' AND address = %s",
            ["203.0.113.77"],
        )
        assert cur.fetchall() == [(2, 3)]


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


def login_from(address: str, username: str, password: str = PASSWORD) -> tuple[int, str | None]:
    """A login from ``address``; the status and the ``Retry-After`` header."""
    r = APIClient().post(
        "/api/v1/auth/token/",
        {"username": username, "password": password, "device": "phone-1"},
        format="json",
        REMOTE_ADDR=address,
        HTTP_USER_AGENT="curl/8.5",
    )
    return r.status_code, r.headers.get("Retry-After")


def refused(clock: Clock, address: str, failures_at: list[int], asked_at: int) -> int:
    """Failed logins from ``address`` at the given clock times, then a login with the right
    password at ``asked_at``: refused; returns its Retry-After (seconds)."""
    for i, t in enumerate(failures_at):
        clock.t = t
        assert login_from(address, NAMES[i % len(NAMES)], "guess-123456")[0] == 401
    clock.t = asked_at
    status, retry_after = login_from(address, "cadre1")
    assert status == 429 and retry_after is not None
    return int(retry_after)


# failures (seconds from a minute boundary), when the client is refused, the Retry-After it
# gets; the refused login counts as a failure of the window it is in
RETRY_CASES = {
    # 3 failures before the boundary: their window is counted until the one after next
    "all before a boundary": ([-10, -9, -8], -5, 65),
    # 2 before, 1 after (then 2 after with the refused one): the boundary frees the address
    "straddling, fewer after": ([-2, -1, 1], 2, 58),
    # 1 before, 2 after: the refused login is the third failure of its window, which then
    # alone holds the limit and is counted until the end of the next window
    "straddling, the refusal fills the window": ([-1, 1, 2], 5, 115),
    # 3 after the boundary: refused until two boundaries later
    "all after a boundary": ([1, 2, 3], 10, 110),
}


@override_settings(LOGIN_FAILURE_RATE="3/min")
@pytest.mark.parametrize("case", RETRY_CASES, ids=list(RETRY_CASES))
def test_retry_after_is_when_the_address_is_let_in_again(demo, clock, case):
    failures, asked, expected = RETRY_CASES[case]
    boundary = next_boundary(60)
    times = [boundary + t for t in failures]
    # two addresses doing the same (every login of a refused address counts as a failure,
    # so one address is asked one second early and the other on time)
    early = refused(clock, "203.0.113.81", times, boundary + asked)
    on_time = refused(clock, "203.0.113.82", times, boundary + asked)
    assert early == on_time == expected
    clock.t = boundary + asked + early - 1  # a second early: still refused
    assert login_from("203.0.113.81", "cadre1")[0] == 429
    clock.t = boundary + asked + on_time  # on time: let in
    status, _ = login_from("203.0.113.82", "cadre1")
    assert status == 200


@override_settings(LOGIN_FAILURE_RATE="3/hour")
def test_retry_after_of_an_hourly_limit_is_more_than_an_hour(demo, clock):
    boundary = next_boundary(3600)
    times = [boundary + 1, boundary + 2, boundary + 3]  # the refused login is the 4th failure
    early = refused(clock, "203.0.113.83", times, boundary + 600)
    on_time = refused(clock, "203.0.113.84", times, boundary + 600)
    assert early == on_time == 2 * 3600 - 600
    clock.t = boundary + 600 + early - 1
    assert login_from("203.0.113.83", "cadre1")[0] == 429
    clock.t = boundary + 600 + on_time
    assert login_from("203.0.113.84", "cadre1")[0] == 200
