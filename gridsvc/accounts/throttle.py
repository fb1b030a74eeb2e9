"""Login protection that a stranger cannot turn against the owner (登录限流).

Two layers, both shared by every gunicorn worker (they count in the database cache,
``settings.CACHES["default"]``, table ``gridsvc_cache``, made by migration
``accounts.0003``):

- **Lockout per client** (django-axes, ``AXES_LOCKOUT_PARAMETERS``): 5 failed passwords for a
  username *from one client* (address + user agent) lock that username on that client for
  15 minutes. The owner signing in from her own phone or browser is not locked out by a
  stranger guessing her (predictable) username elsewhere.
- **Failure throttle per address** (:class:`LoginThrottleBackend`): at most
  ``LOGIN_FAILURE_RATE`` failed logins per client address in the last period ("30/min": any
  60 seconds, whatever the clock's minute boundaries); beyond it every password check from that
  address is refused without looking at the password. The count is the sum of two fixed
  windows, the current one and the one before (:func:`failures_from`), so failures on both
  sides of a window boundary add up: no period holds more than ``limit`` failed password
  checks from one address (but for attempts running at the same moment in several workers,
  each checked before the others are counted). This is conservative: an address is refused
  while the two windows together hold ``limit`` failures, which may last up to two periods
  (and a refused attempt counts as a failure too, so an address that keeps trying stays
  refused; the API's 429 says how long in ``Retry-After``, :func:`seconds_until_allowed`).
  It sits in
  ``AUTHENTICATION_BACKENDS``, so it covers every path that authenticates a password: the API
  login, the web login, the admin and HTTP Basic on ``/tiles`` and ``/ogc`` (only failures
  count, so a GIS client fetching hundreds of tiles with good credentials is not slowed).

The API login (``/api/v1/auth/token/``) is also rate limited per address, successes included
(DRF ``ScopedRateThrottle``, scope ``login``), in the same shared cache.

Client addresses come from :func:`client_ip`: ``REMOTE_ADDR``, or, behind
``GRIDSVC_TRUSTED_PROXIES`` reverse proxies, the address the nearest trusted proxy saw —
never a client-supplied ``X-Forwarded-For`` entry.
"""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

THROTTLED_ATTR = "gridsvc_login_throttled"
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


def failure_rate() -> tuple[int, int]:
    """``LOGIN_FAILURE_RATE`` ("30/min") as (failures, seconds)."""
    count, _, period = str(settings.LOGIN_FAILURE_RATE).partition("/")
    return int(count), _PERIODS[period.strip().lower()]


def _window(seconds: int) -> int:
    """The fixed window (of ``seconds``) the clock is in now."""
    return int(time.time() // seconds)


def _key(ip: str, window: int) -> str:
    return f"gridsvc:login-failures:{ip}:{window}"


def _counts(ip: str, window: int) -> tuple[int, int]:
    """Failed logins from ``ip`` in ``window`` and in the window before it."""
    current, previous = _key(ip, window), _key(ip, window - 1)
    counts = cache.get_many([current, previous])
    return int(counts.get(current, 0)), int(counts.get(previous, 0))


def failures_from(ip: str) -> int:
    """Failed logins from ``ip`` in the current and the previous window (shared by all
    workers): every failure of the last period is among them, whatever the boundaries."""
    _, seconds = failure_rate()
    return sum(_counts(ip, _window(seconds)))


def seconds_until_allowed(ip: str) -> int:
    """Seconds until a password check from ``ip`` is let through again if it makes no further
    attempt (the ``Retry-After`` of the API's 429); 0 when it is not refused now.

    The address is refused while the current and the previous window together hold
    ``limit`` failures. At the next boundary the current window becomes the previous one and
    the previous one is no longer counted: if the current window alone holds fewer than
    ``limit``, that boundary frees the address; otherwise the one after it does (up to two
    periods). Rounded up to whole seconds, at least 1 while refused."""
    limit, seconds = failure_rate()
    now = time.time()
    window = int(now // seconds)
    current, previous = _counts(ip, window)
    if current + previous < limit:
        return 0
    free_at = (window + (1 if current < limit else 2)) * seconds
    return max(1, math.ceil(free_at - now))


def record_failure(ip: str) -> int:
    """Count one failed login from ``ip``; returns the count in the current window.

    A window's counter must outlive the next window, where it is the previous one: it is kept
    for two periods after its last failure. ``cache.incr`` stores the new value with the
    cache's default timeout (300 s), which would forget an hourly window early: then the
    counter's timeout is set again."""
    _, seconds = failure_rate()
    key, keep = _key(ip, _window(seconds)), seconds * 2 + 1
    if cache.add(key, 1, timeout=keep):
        return 1
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=keep)
        return 1
    default = cache.default_timeout
    if default is not None and default < keep:
        cache.touch(key, timeout=keep)
    return int(count)


def is_throttled(ip: str) -> bool:
    """Whether ``ip`` has failed ``LOGIN_FAILURE_RATE`` times in the current and previous
    window."""
    limit, _ = failure_rate()
    return failures_from(ip) >= limit


def _mark(request) -> None:  # type: ignore[no-untyped-def]
    setattr(request, THROTTLED_ATTR, True)
    inner = getattr(request, "_request", None)  # a DRF Request wraps the HttpRequest
    if inner is not None:
        setattr(inner, THROTTLED_ATTR, True)


def was_throttled(request) -> bool:  # type: ignore[no-untyped-def]
    """Whether the failure throttle refused this request's login."""
    inner = getattr(request, "_request", None)
    return bool(getattr(request, THROTTLED_ATTR, False) or getattr(inner, THROTTLED_ATTR, False))


class LoginThrottleBackend:
    """First in ``AUTHENTICATION_BACKENDS``: refuses any password check from an address that
    has failed ``LOGIN_FAILURE_RATE`` times in the current and previous window (authenticates
    nobody)."""

    def authenticate(self, request, username=None, password=None, **kwargs):  # type: ignore[no-untyped-def]
        if request is None:
            return None
        if is_throttled(client_ip(request)):
            _mark(request)
            raise PermissionDenied("too many failed logins from this address")
        return None

    def get_user(self, user_id):  # type: ignore[no-untyped-def]
        return None


@receiver(user_login_failed, dispatch_uid="gridsvc-login-failure-throttle")
def _count_failure(sender, credentials, request=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
    if request is not None:
        record_failure(client_ip(request))
