"""How every login path refuses an attempt, and says when to come back (登录锁定, 登录限流).

Two refusals (:mod:`gridsvc.accounts.throttle` has the rules):

- **the per-client lockout** (django-axes, 登录锁定): ``AXES_FAILURE_LIMIT`` failures for a
  username from one client (address + user agent) lock that username on that client until
  ``AXES_COOLOFF_TIME`` after the failure that reached the limit. The end is read from axes'
  own record of the lockout (:func:`lockout_ends_at`: its ``AccessAttempt`` rows for the
  username + client), so ``Retry-After`` counts down; an attempt refused during the lockout
  does not prolong it (``AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False``), though it
  still counts for the address throttle.
- **the failure throttle per address** (登录限流): ``seconds_until_allowed``.

:func:`login_refusal` tells a login view whether its attempt was refused and for how long;
the API login, HTTP Basic on ``/tiles`` and ``/ogc``, the web login page and the admin's
login answer it with status 429 and ``Retry-After``. :func:`lockout_response` is axes'
``AXES_LOCKOUT_CALLABLE`` (its middleware replaces the answer of any request it marked as
locked out): it keeps a view's own refusal and gives anything else the same 429.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off, get_failure_limit
from django.db import DEFAULT_DB_ALIAS
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from .throttle import client_ip, seconds_until_allowed, was_throttled

ADDRESS = "address"  # the failure throttle refused the client's address (登录限流)
CLIENT = "client"  # axes locked this username on this client (登录锁定)


def _attr(request: Any, name: str) -> Any:
    """An attribute axes set on ``request`` (a DRF Request's own, or its HttpRequest's)."""
    return getattr(request, name, None) or getattr(getattr(request, "_request", None), name, None)


def was_locked_out(request: Any) -> bool:
    """Whether axes refused (or, with this failure, locked) this request's login."""
    return bool(_attr(request, "axes_locked_out"))


def lockout_ends_at(request: Any, credentials: dict | None = None) -> datetime | None:
    """When axes lets this request's username + client sign in again, from its
    ``AccessAttempt`` rows (read on the primary): a lockout parameter group is locked while
    its rows younger than the cool-off hold ``AXES_FAILURE_LIMIT`` failures, so it ends when
    the row that brings the newest rows' sum to the limit is a cool-off old. None when not
    locked (or no cool-off is configured: a lock that never ends by itself)."""
    if credentials is None:
        credentials = _attr(request, "axes_credentials")
    AxesProxyHandler.update_request(request)
    cool_off = get_cool_off(request)
    handler = AxesProxyHandler.get_implementation()
    if cool_off is None or not hasattr(handler, "get_user_attempts"):
        return None
    limit = get_failure_limit(request, credentials)
    ends: datetime | None = None
    for attempts in handler.get_user_attempts(request, credentials):
        total = 0
        rows = attempts.using(DEFAULT_DB_ALIAS).order_by("-attempt_time")
        for attempt_time, failures in rows.values_list("attempt_time", "failures_since_start"):
            total += failures
            if total >= limit:
                group_ends = attempt_time + cool_off
                ends = group_ends if ends is None else max(ends, group_ends)
                break
    return ends


def seconds_until_unlocked(request: Any, credentials: dict | None = None) -> int:
    """Seconds until axes' lockout of this request's username + client ends (rounded up, at
    least 1); the whole cool-off when its end cannot be read; 0 with no cool-off."""
    ends = lockout_ends_at(request, credentials)
    if ends is None:
        cool_off = get_cool_off(request)
        return math.ceil(cool_off.total_seconds()) if cool_off else 0
    return max(1, math.ceil((ends - timezone.now()).total_seconds()))


@dataclass(frozen=True)
class LoginRefusal:
    """A login refused (or the failure that just locked its client): by whom, for how long."""

    reason: str  # ADDRESS or CLIENT
    retry_after: int  # seconds (0: no end known, no Retry-After)

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else {}

    @property
    def message(self) -> str:
        """For people (the web page, the admin)."""
        if self.reason == CLIENT:
            return (
                f"该账号在此设备上登录失败次数过多，已暂时锁定，请 {self.minutes} 分钟后再试 / "
                "Too many failed logins: this account is locked on this device, try again in "
                f"{self.minutes} minute{'s' if self.minutes != 1 else ''}"
            )
        return (
            f"登录失败次数过多，请 {self.minutes} 分钟后再试 / Too many failed logins from this "
            f"address: try again in {self.minutes} minute{'s' if self.minutes != 1 else ''}"
        )

    @property
    def detail(self) -> str:
        """For programs (the API's ``detail``; the wait is in ``Retry-After``)."""
        if self.reason == CLIENT:
            return "too many failed logins: this account is locked on this device, try again later"
        return "too many failed logins from this address: try again later"


def login_refusal(request: Any) -> LoginRefusal | None:
    """Whether this request's login was refused (or its failure just locked the client), and
    the wait: the longer one when both the lockout and the throttle refuse."""
    throttled, locked = was_throttled(request), was_locked_out(request)
    if not (throttled or locked):
        return None
    waits = []
    if throttled:
        waits.append(max(1, seconds_until_allowed(client_ip(request))))
    if locked:
        waits.append(seconds_until_unlocked(request))
    return LoginRefusal(CLIENT if locked else ADDRESS, max(waits))


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict | None = None,
) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: axes' middleware calls it for every request it marked as
    locked out. A view that already refused with 429 and ``Retry-After`` (the web login page,
    the admin's login) keeps its answer; anything else gets a plain 429 saying when."""
    if (
        original_response is not None
        and original_response.status_code == 429
        and original_response.has_header("Retry-After")
    ):
        return original_response
    refusal = LoginRefusal(CLIENT, seconds_until_unlocked(request, credentials))
    response = HttpResponse(refusal.message, status=429, content_type="text/plain; charset=utf-8")
    for name, value in refusal.headers.items():
        response[name] = value
    return response
