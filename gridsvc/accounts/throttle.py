"""Login protection that a stranger cannot turn against the owner (登录限流).

Two layers, both shared by every gunicorn worker:

- **Lockout per client** (django-axes, ``AXES_LOCKOUT_PARAMETERS``): 5 failed passwords for a
  username *from one client* (address + user agent) lock that username on that client for
  15 minutes from the failure that reached the limit. The owner signing in from her own phone
  or browser is not locked out by a stranger guessing her (predictable) username elsewhere.
  Its refusals say when it ends (:mod:`gridsvc.accounts.lockout`).
- **Failure throttle per address** (:class:`LoginThrottleBackend`): at most
  ``LOGIN_FAILURE_RATE`` failed logins per client address in the last period ("30/min": any
  60 seconds, whatever the clock's minute boundaries); beyond it every password check from that
  address is refused without looking at the password. The count is the sum of two fixed
  windows, the current one and the one before (:func:`failures_from`), so failures on both
  sides of a window boundary add up: no period holds more than ``limit`` password checks that
  failed from one address. This is conservative: an address is refused while the two windows
  together hold ``limit`` failures, which may last up to two periods (and a refused attempt
  counts as a failure too, so an address that keeps trying stays refused). Every refusal
  says when to come back: 429 with ``Retry-After`` (:func:`seconds_until_allowed`) on the
  API login, the web login page, the admin's login form and HTTP Basic on ``/tiles`` and
  ``/ogc`` (:func:`gridsvc.accounts.lockout.login_refusal`).
  It sits in ``AUTHENTICATION_BACKENDS`` and is the backend that checks passwords, so it
  covers every path that authenticates one: the API login, the web login, the admin and
  HTTP Basic (only failures count, so a GIS client fetching hundreds of tiles with good
  credentials is not slowed).

**Racing workers.** The counts are rows of :class:`~gridsvc.accounts.models.LoginThrottleCount`
in PostgreSQL, each changed by one ``INSERT … ON CONFLICT … DO UPDATE … RETURNING`` (or one
``UPDATE``) under the row's lock: two workers counting a failure for the same address at the
same moment make it 9, never 8 (the database cache's ``incr`` read, then wrote). And a
password check is counted *before* the password is looked at, as a failure
(:func:`start_password_check`): the count it returns already holds every attempt that
started before it, in any worker, so of N attempts fired at the same moment from one address
at most ``limit`` reach the password hasher; the rest are refused. **A success takes its
count back** (:func:`take_back`): only failed and refused attempts stay counted. While a
right password is being checked it holds one of the address's ``limit`` places (as long as
the hasher takes; a GIS client's parallel tile requests hold one each), so an address at its
limit is refused even with a right password, as before.

The API login (``/api/v1/auth/token/``) is also rate limited per address, successes included
(:class:`LoginRateThrottle`, DRF rate ``login``), counted the same way. DRF's own
``ScopedRateThrottle`` keeps each address's request times as one list in the cache, read by
a worker and written back whole: two workers reading the same list both let their request
through and the second write drops the first one's entry.

Client addresses come from :func:`client_ip`: ``REMOTE_ADDR``, or, behind
``GRIDSVC_TRUSTED_PROXIES`` reverse proxies, the address the nearest trusted proxy saw —
never a client-supplied ``X-Forwarded-For`` entry.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS, connections
from django.dispatch import receiver
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from .backends import UsernameOrPhoneBackend
from .models import LoginThrottleCount, Member

THROTTLED_ATTR = "gridsvc_login_throttled"
PENDING_ATTR = "gridsvc_login_check"
FAILURES = "failure"  # password checks that failed or are under way (LOGIN_FAILURE_RATE)
API_LOGINS = "api-login"  # requests to the API login, successes included (DRF rate "login")
ADDRESS_MAX = LoginThrottleCount._meta.get_field("address").max_length or 100
_PERIODS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


def client_ip(request) -> str:  # type: ignore[no-untyped-def]
    """The client's address as the outermost trusted hop saw it (one rule for axes, DRF and
    the failure throttle)."""
    meta = request.META
    proxies = int(getattr(settings, "GRIDSVC_TRUSTED_PROXIES", 0) or 0)
    if proxies > 0:
        hops = [h.strip() for h in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return meta.get("REMOTE_ADDR", "") or "unknown"


def parse_rate(rate: str) -> tuple[int, int]:
    """A rate such as "30/min" as (count, seconds)."""
    count, _, period = str(rate).partition("/")
    return int(count), _PERIODS[period.strip().lower()]


def failure_rate() -> tuple[int, int]:
    """``LOGIN_FAILURE_RATE`` ("30/min") as (failures, seconds)."""
    return parse_rate(settings.LOGIN_FAILURE_RATE)


@dataclass(frozen=True)
class Counted:
    """One attempt counted for ``address``: the counts of its row right after it was added
    (``window_number`` is the window the row is in, the one the attempt was counted in)."""

    scope: str
    address: str
    period: int
    window_number: int
    current: int
    previous: int

    @property
    def total(self) -> int:
        """Attempts in the current and the previous window, this one included."""
        return self.current + self.previous


def _db() -> str:
    # the primary, never a standby; not the router's db_for_write, which would move the rest
    # of a Basic-auth tile request's reads off the standby
    return DEFAULT_DB_ALIAS


def _address(ip: str) -> str:
    return ip[:ADDRESS_MAX]


_COUNT_ONE = """
INSERT INTO {table} AS t
    (scope, address, period, window_number, current, previous, stale_after)
VALUES (%(scope)s, %(address)s, %(period)s, %(window)s, 1, 0, %(stale_after)s)
ON CONFLICT (scope, address, period) DO UPDATE SET
    previous = CASE
        WHEN EXCLUDED.window_number <= t.window_number THEN t.previous
        WHEN EXCLUDED.window_number = t.window_number + 1 THEN t.current
        ELSE 0 END,
    current = CASE
        WHEN EXCLUDED.window_number <= t.window_number THEN t.current + 1
        ELSE 1 END,
    window_number = GREATEST(t.window_number, EXCLUDED.window_number),
    stale_after = GREATEST(t.stale_after, EXCLUDED.stale_after)
RETURNING window_number, current, previous
"""

# rows that count nothing any more; a row another worker holds is left for the next time
_PRUNE = """
DELETE FROM {table} WHERE id IN (
    SELECT id FROM {table} WHERE stale_after <= %s LIMIT 1000 FOR UPDATE SKIP LOCKED
)
"""

_TAKE_BACK = """
UPDATE {table} SET
    current = CASE WHEN window_number = %(window)s THEN GREATEST(current - 1, 0)
                   ELSE current END,
    previous = CASE WHEN window_number = %(window)s + 1 THEN GREATEST(previous - 1, 0)
                    ELSE previous END
WHERE scope = %(scope)s AND address = %(address)s AND period = %(period)s
  AND window_number IN (%(window)s, %(window)s + 1)
"""


def count_one(scope: str, ip: str, period: int) -> Counted:
    """Add one attempt from ``ip`` to the current window of ``period`` seconds, atomically:
    one statement that also rolls the row over to the current window (the current count
    becomes the previous one, or both are forgotten), under the row's lock. Rows that count
    nothing any more (two windows old) are pruned first.

    A worker whose clock reads a window that another worker has already left counts in the
    row's (newer) window: kept longer, never lost."""
    now = time.time()
    window = int(now // period)
    table = connections[_db()].ops.quote_name(LoginThrottleCount._meta.db_table)
    with connections[_db()].cursor() as cur:
        cur.execute(_PRUNE.format(table=table), [int(now)])
        cur.execute(
            _COUNT_ONE.format(table=table),
            {
                "scope": scope,
                "address": _address(ip),
                "period": period,
                "window": window,
                "stale_after": (window + 2) * period,
            },
        )
        row_window, current, previous = cur.fetchone()
    return Counted(scope, _address(ip), period, row_window, current, previous)


def take_back(counted: Counted) -> None:
    """Undo one :func:`count_one` (a right password): from the window it was counted in,
    which may have become the previous one meanwhile."""
    table = connections[_db()].ops.quote_name(LoginThrottleCount._meta.db_table)
    with connections[_db()].cursor() as cur:
        cur.execute(
            _TAKE_BACK.format(table=table),
            {
                "scope": counted.scope,
                "address": counted.address,
                "period": counted.period,
                "window": counted.window_number,
            },
        )


def _counts(scope: str, ip: str, period: int, window: int) -> tuple[int, int]:
    """Attempts from ``ip`` in ``window`` and in the window before it."""
    row = (
        LoginThrottleCount.objects.using(_db())
        .filter(scope=scope, address=_address(ip), period=period)
        .values_list("window_number", "current", "previous")
        .first()
    )
    if row is None:
        return 0, 0
    row_window, current, previous = row
    if row_window >= window:
        return current, previous
    if row_window == window - 1:
        return 0, current
    return 0, 0


def _seconds_until_allowed(scope: str, ip: str, limit: int, period: int) -> int:
    now = time.time()
    window = int(now // period)
    current, previous = _counts(scope, ip, period, window)
    if current + previous < limit:
        return 0
    free_at = (window + (1 if current < limit else 2)) * period
    return max(1, math.ceil(free_at - now))


def failures_from(ip: str) -> int:
    """Failed logins from ``ip`` in the current and the previous window (shared by all
    workers; password checks under way included): every failure of the last period is
    among them, whatever the boundaries."""
    _, seconds = failure_rate()
    return sum(_counts(FAILURES, ip, seconds, int(time.time() // seconds)))


def seconds_until_allowed(ip: str) -> int:
    """Seconds until a password check from ``ip`` is let through again if it makes no further
    attempt (the ``Retry-After`` of every refusal); 0 when it is not refused now.

    The address is refused while the current and the previous window together hold
    ``limit`` failures. At the next boundary the current window becomes the previous one and
    the previous one is no longer counted: if the current window alone holds fewer than
    ``limit``, that boundary frees the address; otherwise the one after it does (up to two
    periods). Rounded up to whole seconds, at least 1 while refused."""
    limit, seconds = failure_rate()
    return _seconds_until_allowed(FAILURES, ip, limit, seconds)


def record_failure(ip: str) -> int:
    """Count one failed login from ``ip`` that no password check counted (a lockout's
    refusal, a login without a username); returns the count in the current window."""
    _, seconds = failure_rate()
    return count_one(FAILURES, ip, seconds).current


def start_password_check(ip: str) -> tuple[Counted, bool]:
    """Count a password check from ``ip`` as a failure before it starts; whether it may run
    (``limit`` or fewer in the two windows, itself included). A refused one stays counted."""
    limit, seconds = failure_rate()
    counted = count_one(FAILURES, ip, seconds)
    return counted, counted.total <= limit


def _mark(request) -> None:  # type: ignore[no-untyped-def]
    setattr(request, THROTTLED_ATTR, True)
    inner = getattr(request, "_request", None)  # a DRF Request wraps the HttpRequest
    if inner is not None:
        setattr(inner, THROTTLED_ATTR, True)


def was_throttled(request) -> bool:  # type: ignore[no-untyped-def]
    """Whether the failure throttle refused this request's login."""
    inner = getattr(request, "_request", None)
    return bool(getattr(request, THROTTLED_ATTR, False) or getattr(inner, THROTTLED_ATTR, False))


class LoginThrottleBackend(UsernameOrPhoneBackend):
    """The password check of :class:`~gridsvc.accounts.backends.UsernameOrPhoneBackend`,
    counted per client address (after axes' lockout in ``AUTHENTICATION_BACKENDS``).

    Each check is counted as a failure before it starts; beyond ``LOGIN_FAILURE_RATE`` it is
    refused without looking at the password. A right password takes its count back. A wrong
    one raises ``PermissionDenied``: Django stops there (no later backend checks the password
    again, uncounted) and sends ``user_login_failed`` (axes counts it; this module does not
    count it twice)."""

    def authenticate(self, request, username=None, password=None, **kwargs):  # type: ignore[no-untyped-def]
        if username is None:
            username = kwargs.get(Member.USERNAME_FIELD)
        if not username or password is None:
            return None  # not a password check (if nothing signs in, the signal counts it)
        if request is None:  # no client address (a script): the bare check
            user = super().authenticate(None, username, password, **kwargs)
            if user is None:
                raise PermissionDenied("wrong username or password")
            return user
        counted, allowed = start_password_check(client_ip(request))
        setattr(request, PENDING_ATTR, counted)
        if not allowed:
            _mark(request)  # stays counted
            raise PermissionDenied("too many failed logins from this address")
        user = super().authenticate(request, username, password, **kwargs)
        if user is None:
            raise PermissionDenied("wrong username or password")  # stays counted
        setattr(request, PENDING_ATTR, None)
        take_back(counted)
        return user


@receiver(user_login_failed, dispatch_uid="gridsvc-login-failure-throttle")
def _count_failure(sender, credentials, request=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
    if request is None:
        return
    if getattr(request, PENDING_ATTR, None) is not None:
        setattr(request, PENDING_ATTR, None)  # counted when its password check started
        return
    record_failure(client_ip(request))


class LoginRateThrottle(BaseThrottle):
    """Requests to the API login per client address, successes included (DRF rate
    ``login``): counted atomically like the failures (DRF's ``ScopedRateThrottle`` reads the
    address's list of request times from the cache and writes it back, so racing workers
    lose each other's requests). A refused request is not counted (as DRF's)."""

    rate_name = "login"

    def __init__(self) -> None:
        self.limit, self.period = parse_rate(api_settings.DEFAULT_THROTTLE_RATES[self.rate_name])
        self.retry_after: int | None = None

    def allow_request(self, request, view) -> bool:  # type: ignore[no-untyped-def]
        ip = client_ip(request)
        counted = count_one(API_LOGINS, ip, self.period)
        if counted.total <= self.limit:
            return True
        take_back(counted)
        self.retry_after = _seconds_until_allowed(API_LOGINS, ip, self.limit, self.period) or 1
        return False

    def wait(self) -> float | None:
        return self.retry_after
