"""Every login refusal says when to come back (gridsvc.accounts.lockout): the admin's login
form refuses a throttled address as the web login does (429, ``Retry-After``, 登录失败次数过多),
and axes' lockout of a username on one client (登录锁定) answers the API login, the web page
and HTTP Basic with 429 and the seconds left of its cool-off, read from axes' record. The owner
on another client is not locked out.

A lockout "reached ten minutes ago" is made by moving axes' record of it back in time: the
cool-off (15 minutes) then has five minutes left."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import F
from django.test import Client, override_settings
from rest_framework.test import APIClient

from fixtures.demo_street import ADMIN_PASSWORD

from .login_helpers import Clock, throttle_clock

pytestmark = pytest.mark.django_db

PASSWORD = "gridsvc-demo"
WRONG = "guess-123456"
ATTACKER = {"REMOTE_ADDR": "203.0.113.77", "HTTP_USER_AGENT": "curl/8.5"}
OWNER = {"REMOTE_ADDR": "198.51.100.17", "HTTP_USER_AGENT": "GridApp/2.1 (Android 14)"}
COOL_OFF = int(timedelta(hours=settings.AXES_COOLOFF_TIME).total_seconds())  # 900


def api_login(username: str, password: str, **client: str):  # type: ignore[no-untyped-def]
    return APIClient().post(
        "/api/v1/auth/token/",
        {"username": username, "password": password, "device": "phone-1"},
        format="json",
        **client,
    )


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def lock_out(username: str, client: dict[str, str]) -> int:
    """Five wrong passwords for ``username`` from ``client`` on the API: the fifth locks it;
    its Retry-After."""
    for _ in range(4):
        assert api_login(username, WRONG, **client).status_code == 401
    r = api_login(username, WRONG, **client)
    assert r.status_code == 429 and "locked" in r.json()["detail"], r.content
    return int(r["Retry-After"])


def locked_minutes_ago(username: str, client: dict[str, str], minutes: int) -> None:
    """Axes' record of the lockout, as if its failures had been ``minutes`` earlier."""
    moved = AccessAttempt.objects.filter(
        username=username,
        ip_address=client["REMOTE_ADDR"],
        user_agent=client["HTTP_USER_AGENT"],
    ).update(attempt_time=F("attempt_time") - timedelta(minutes=minutes))
    assert moved == 1


def cool_off_left(minutes_ago: int) -> tuple[int, int]:
    """The range a Retry-After may take ``minutes_ago`` minutes into a lockout (the seconds
    this test took, at most a few)."""
    left = COOL_OFF - minutes_ago * 60
    return left - 5, left


# --------------------------------------------------------------- the lockout's wait
def test_a_locked_username_on_the_api_is_told_the_cool_off_left(demo) -> None:
    assert COOL_OFF - 5 <= lock_out("grid4", ATTACKER) <= COOL_OFF
    locked_minutes_ago("grid4", ATTACKER, 10)
    low, high = cool_off_left(10)
    r = api_login("grid4", PASSWORD, **ATTACKER)  # the right password, on the locked client
    assert r.status_code == 429 and "locked" in r.json()["detail"]
    assert low <= int(r["Retry-After"]) <= high
    # asking again does not prolong the lockout
    r = api_login("grid4", WRONG, **ATTACKER)
    assert r.status_code == 429 and low <= int(r["Retry-After"]) <= high
    # the owner on her own phone signs in meanwhile
    r = api_login("grid4", PASSWORD, **OWNER)
    assert r.status_code == 200, r.content
    # on time, the locked client signs in with the right password
    locked_minutes_ago("grid4", ATTACKER, 5)
    assert api_login("grid4", PASSWORD, **ATTACKER).status_code == 200


def test_a_locked_username_on_the_web_page_is_told_the_cool_off_left(demo) -> None:
    browser = Client(**ATTACKER)
    codes = []
    for _ in range(5):
        r = browser.post("/login/", {"username": "grid4", "password": WRONG})
        codes.append(r.status_code)
    assert codes == [200, 200, 200, 200, 429], codes
    assert COOL_OFF - 5 <= int(r["Retry-After"]) <= COOL_OFF
    assert "请 15 分钟后再试" in r.content.decode()
    locked_minutes_ago("grid4", ATTACKER, 10)
    low, high = cool_off_left(10)
    r = browser.post("/login/", {"username": "grid4", "password": PASSWORD})
    assert r.status_code == 429 and low <= int(r["Retry-After"]) <= high
    page = r.content.decode()
    assert "该账号在此设备上登录失败次数过多，已暂时锁定，请 5 分钟后再试" in page
    assert 'id="login-form"' in page  # the page with its form, not axes' bare text
    assert "_auth_user_id" not in browser.session
    owner = Client(**OWNER)
    r = owner.post("/login/", {"username": "grid4", "password": PASSWORD})
    assert r.status_code == 302 and owner.session.get("_auth_user_id")


@pytest.mark.parametrize(
    "path", ["/ogc/collections", "/tiles/grids/12/3299/1624.mvt"], ids=["ogc", "tiles"]
)
def test_a_locked_username_on_basic_auth_is_told_the_cool_off_left(demo, path) -> None:
    stranger = APIClient(**ATTACKER)
    codes = []
    for _ in range(5):
        r = stranger.get(path, HTTP_AUTHORIZATION=basic("grid4", WRONG))
        codes.append(r.status_code)
    assert codes == [401, 401, 401, 401, 429], codes
    locked_minutes_ago("grid4", ATTACKER, 10)
    low, high = cool_off_left(10)
    r = stranger.get(path, HTTP_AUTHORIZATION=basic("grid4", PASSWORD))
    assert r.status_code == 429 and low <= int(r["Retry-After"]) <= high
    assert "locked" in r.json()["detail"]
    assert "WWW-Authenticate" not in r  # not a request for the password again
    owner = APIClient(**OWNER)
    r = owner.get(path, HTTP_AUTHORIZATION=basic("grid4", PASSWORD))
    assert r.status_code in (200, 204), r.content


# ------------------------------------------------------------------- the admin's login
@pytest.fixture
def clock() -> Iterator[Clock]:
    with throttle_clock() as c:  # from the next minute boundary
        yield c


def admin_login(browser: Client, password: str):  # type: ignore[no-untyped-def]
    return browser.post("/admin/login/?next=/admin/", {"username": "admin", "password": password})


@override_settings(LOGIN_FAILURE_RATE="3/min")
def test_the_admin_login_refuses_a_throttled_address_with_a_wait(demo, clock) -> None:
    boundary = clock.t
    browser = Client(**ATTACKER)
    clock.t = boundary + 1
    r = admin_login(browser, WRONG)  # below the limit: the admin's usual error
    assert r.status_code == 200 and "Retry-After" not in r
    for i, name in enumerate(["grid1", "grid2"]):
        clock.t = boundary + 2 + i
        assert api_login(name, WRONG, **ATTACKER).status_code == 401
    # the address has failed three times this minute: refused, right password or not, until
    # two boundaries later (this window then holds four)
    clock.t = boundary + 10
    r = admin_login(browser, ADMIN_PASSWORD)
    assert r.status_code == 429
    assert r["Retry-After"] == "110"
    page = r.content.decode()
    assert "登录失败次数过多，请 2 分钟后再试" in page
    assert 'id="login-form"' in page and "/admin/" in page  # the admin's own form
    assert "_auth_user_id" not in browser.session
    # another address signs in to the admin
    other = Client(**OWNER)
    assert admin_login(other, ADMIN_PASSWORD).status_code == 302
    # on time, this address too
    clock.t = boundary + 10 + 110
    r = admin_login(browser, ADMIN_PASSWORD)
    assert r.status_code == 302 and r["Location"] == "/admin/"
    assert browser.get("/admin/").status_code == 200


def test_the_admin_login_of_a_locked_client_says_when(demo) -> None:
    browser = Client(**ATTACKER)
    codes = [admin_login(browser, WRONG).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 200, 429], codes
    locked_minutes_ago("admin", ATTACKER, 10)
    low, high = cool_off_left(10)
    r = admin_login(browser, ADMIN_PASSWORD)
    assert r.status_code == 429 and low <= int(r["Retry-After"]) <= high
    page = r.content.decode()
    assert "已暂时锁定，请 5 分钟后再试" in page and 'id="login-form"' in page
    # the administrator from her own browser signs in
    assert admin_login(Client(**OWNER), ADMIN_PASSWORD).status_code == 302
