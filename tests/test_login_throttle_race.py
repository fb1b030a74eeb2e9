"""The failed-login throttle (登录限流) when attempts race, and the ``Retry-After`` of every
refusal (gridsvc.accounts.throttle).

Real concurrency: threads, each with its own PostgreSQL connection (as gunicorn workers
have), released together by a barrier, against the committed database (``transaction=True``,
members made by the test). The password check is slowed to what a real hasher costs
(PBKDF2 takes a few hundred milliseconds; the tests' MD5 hasher none), so attempts fired
together are all inside their checks at the same time.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from rest_framework.test import APIClient

from gridsvc.accounts.backends import UsernameOrPhoneBackend
from gridsvc.accounts.models import LoginThrottleCount, Member
from gridsvc.accounts.throttle import failures_from, record_failure, seconds_until_allowed

from .login_helpers import Clock, throttle_clock

PASSWORD = "racing-pass-42"
CHECK_SECONDS = 0.3


def run_together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` in ``n`` threads released at the same moment; their results in order.
    Each thread has its own database connection (closed at its end)."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


@pytest.fixture
def password_checks() -> Iterator[list[str]]:
    """The usernames whose password was checked (by any thread), each check taking
    ``CHECK_SECONDS`` as a real hasher would."""
    checked: list[str] = []
    lock = threading.Lock()
    real = UsernameOrPhoneBackend.authenticate

    def slow_check(self, request, username=None, password=None, **kwargs):  # type: ignore[no-untyped-def]
        with lock:
            checked.append(str(username))
        time.sleep(CHECK_SECONDS)
        return real(self, request, username, password, **kwargs)

    with mock.patch.object(UsernameOrPhoneBackend, "authenticate", slow_check):
        yield checked


def members(prefix: str, n: int) -> list[str]:
    names = [f"{prefix}{i}" for i in range(n)]
    for name in names:
        Member.objects.create_user(name, password=PASSWORD)
    return names


def stored_count(address: str, scope: str = "failure") -> int:
    row = LoginThrottleCount.objects.get(scope=scope, address=address)
    return row.current + row.previous


def api_login(address: str, username: str, password: str, device: str = "phone-1"):  # type: ignore[no-untyped-def]
    return APIClient().post(
        "/api/v1/auth/token/",
        {"username": username, "password": password, "device": device},
        format="json",
        REMOTE_ADDR=address,
        HTTP_USER_AGENT="curl/8.5",
    )


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# ------------------------------------------------------------------ workers racing
@pytest.mark.django_db(transaction=True)
def test_failures_counted_at_the_same_moment_are_all_kept() -> None:
    address = "203.0.113.120"
    per_thread = 10
    run_together(16, lambda i: [record_failure(address) for _ in range(per_thread)])
    # 160 failures counted by 16 connections at once: none lost to a read-then-write
    assert failures_from(address) == 16 * per_thread
    assert stored_count(address) == 16 * per_thread


@pytest.mark.django_db(transaction=True)
@override_settings(LOGIN_FAILURE_RATE="5/min")
def test_guesses_fired_together_get_no_more_password_checks_than_the_limit(
    password_checks: list[str],
) -> None:
    address = "203.0.113.121"
    names = members("racer", 12)  # a different username each (axes' per-username lockout aside)
    responses = run_together(12, lambda i: api_login(address, names[i], "guess-123456"))
    codes = sorted(r.status_code for r in responses)
    # five guesses reach the hasher and fail; the seven others are refused unchecked
    assert len(password_checks) == 5, password_checks
    assert codes == [401] * 5 + [429] * 7, codes
    for r in responses:
        if r.status_code == 429:
            assert "address" in r.json()["detail"]
            assert 1 <= int(r.headers["Retry-After"]) <= 120
    # every attempt is counted, the refused ones too: none lost
    assert stored_count(address) == 12
    # and the right password is refused there now, without a check
    r = api_login(address, names[0], PASSWORD)
    assert r.status_code == 429 and len(password_checks) == 5


@pytest.mark.django_db(transaction=True)
@override_settings(LOGIN_FAILURE_RATE="5/min")
def test_right_passwords_checked_together_take_their_counts_back(
    password_checks: list[str],
) -> None:
    address = "203.0.113.122"
    names = members("gis", 4)
    auth = [basic(name, PASSWORD) for name in names]
    responses = run_together(
        4,
        lambda i: APIClient().get(
            "/ogc/collections", HTTP_AUTHORIZATION=auth[i], REMOTE_ADDR=address
        ),
    )
    assert [r.status_code for r in responses] == [200] * 4
    assert len(password_checks) == 4
    # a GIS client's good requests leave nothing counted: only failures count
    assert failures_from(address) == 0
    # so the address still has all its five failures
    for i in range(5):
        assert api_login(address, names[i % 4], "guess-123456").status_code == 401
    assert api_login(address, names[0], PASSWORD).status_code == 429


@pytest.mark.django_db(transaction=True)
def test_the_api_login_rate_holds_for_requests_fired_together() -> None:
    address = "203.0.113.123"
    names = members("phone", 3)
    rest = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"login": "4/min"}}
    with override_settings(REST_FRAMEWORK=rest):
        responses = run_together(
            10, lambda i: api_login(address, names[i % 3], PASSWORD, device=f"phone-{i}")
        )
    codes = sorted(r.status_code for r in responses)
    # four sign-ins per minute from the address, successes included: the other six are
    # refused with the time to wait, however many workers took them at once
    assert codes == [200] * 4 + [429] * 6, codes
    for r in responses:
        if r.status_code == 429:
            assert 1 <= int(r.headers["Retry-After"]) <= 120
    assert stored_count(address, scope="api-login") == 4  # the refused ones are not counted


# ------------------------------------------------ Retry-After on every refusal
@pytest.fixture
def clock() -> Iterator[Clock]:
    with throttle_clock() as c:  # from the next minute boundary
        yield c


ATTACKER = "203.0.113.130"


def three_failures(clock: Clock, boundary: float) -> None:
    """Three failed logins at 1, 2 and 3 seconds past a minute boundary (the limit is 3/min):
    refused until two boundaries later."""
    for i, name in enumerate(["grid1", "grid2", "grid3"]):
        clock.t = boundary + 1 + i
        assert api_login(ATTACKER, name, "guess-123456").status_code == 401


@pytest.mark.django_db
@override_settings(LOGIN_FAILURE_RATE="3/min")
def test_the_web_login_page_says_when_to_try_again(demo, clock) -> None:
    boundary = clock.t
    browser = Client(REMOTE_ADDR=ATTACKER, HTTP_USER_AGENT="Mozilla/5.0")
    # a wrong password before the limit re-shows the form as before
    clock.t = boundary + 1
    r = browser.post("/login/", {"username": "grid1", "password": "guess-123456"})
    assert r.status_code == 200 and "用户名或密码错误" in r.content.decode()
    clock.t = boundary + 2
    assert api_login(ATTACKER, "grid2", "guess-123456").status_code == 401
    clock.t = boundary + 3
    assert api_login(ATTACKER, "grid3", "guess-123456").status_code == 401
    # refused at +10 s: this window then holds 4 failures, counted until two boundaries later
    clock.t = boundary + 10
    r = browser.post("/login/", {"username": "cadre1", "password": "gridsvc-demo"})
    assert r.status_code == 429
    assert r["Retry-After"] == "110"
    page = r.content.decode()
    assert "登录失败次数过多，请 2 分钟后再试" in page
    assert 'id="login-form"' in page  # the form is still there to come back to
    assert "_auth_user_id" not in browser.session
    # on time, the right password signs in
    clock.t = boundary + 10 + 110
    r = browser.post("/login/", {"username": "cadre1", "password": "gridsvc-demo"})
    assert r.status_code == 302 and browser.session.get("_auth_user_id")


@pytest.mark.django_db
@override_settings(LOGIN_FAILURE_RATE="3/min")
@pytest.mark.parametrize(
    "path", ["/ogc/collections", "/tiles/grids/12/3299/1624.mvt"], ids=["ogc", "tiles"]
)
def test_basic_auth_says_when_to_try_again(demo, clock, path) -> None:
    boundary = clock.t
    three_failures(clock, boundary)
    clock.t = boundary + 30
    right = basic("cadre1", "gridsvc-demo")
    r = APIClient().get(path, HTTP_AUTHORIZATION=right, REMOTE_ADDR=ATTACKER)
    assert r.status_code == 429
    assert r["Retry-After"] == "90"  # the window holds 4 failures: free two boundaries later
    assert "address" in r.json()["detail"]
    assert "WWW-Authenticate" not in r  # not a request for the password again
    # another address with the same credentials is served
    r = APIClient().get(path, HTTP_AUTHORIZATION=right, REMOTE_ADDR="198.51.100.40")
    assert r.status_code in (200, 204), r.content
    # on time, the attacker's address is let in again
    clock.t = boundary + 30 + 90
    assert seconds_until_allowed(ATTACKER) == 0
    r = APIClient().get(path, HTTP_AUTHORIZATION=right, REMOTE_ADDR=ATTACKER)
    assert r.status_code in (200, 204), r.content


@pytest.mark.django_db
@override_settings(LOGIN_FAILURE_RATE="3/min")
def test_the_api_login_refusal_and_basic_agree_on_the_wait(demo, clock) -> None:
    boundary = clock.t
    three_failures(clock, boundary)
    clock.t = boundary + 40
    api = api_login(ATTACKER, "cadre1", "gridsvc-demo")
    ogc = APIClient().get(
        "/ogc/collections",
        HTTP_AUTHORIZATION=basic("cadre1", "gridsvc-demo"),
        REMOTE_ADDR=ATTACKER,
    )
    assert api.status_code == ogc.status_code == 429
    # the same rule, the same clock: free at the boundary after next (+120 s)
    assert int(api["Retry-After"]) == int(ogc["Retry-After"]) == 80
