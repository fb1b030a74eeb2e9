"""While the database is down, answer 503 with ``Retry-After`` instead of a 500.

A phone (docs/sync.md) tells an outage (503: keep the data, try again after ``Retry-After``
seconds) from a bug (500). :class:`DatabaseOutageMiddleware` sits first in ``MIDDLEWARE`` and
turns any ``OperationalError``/``InterfaceError`` from Django's database layer — the server
cannot be reached, it is restarting, the connection dropped — into::

    HTTP/1.1 503 Service Unavailable
    Retry-After: 10
    {"detail": "the database is unavailable; try again shortly", "code": "database_unavailable"}

Errors raised in views reach :meth:`process_exception`; errors in another middleware (e.g. the
session middleware saving the session) are seen through the ``got_request_exception`` signal.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger("gridsvc.outage")
DB_ERRORS = (OperationalError, InterfaceError)


def retry_after_seconds() -> int:
    return int(os.environ.get("GRIDSVC_RETRY_AFTER", "10"))


def outage_response() -> JsonResponse:
    response = JsonResponse(
        {
            "detail": "the database is unavailable; try again shortly",
            "code": "database_unavailable",
        },
        status=503,
    )
    response["Retry-After"] = str(retry_after_seconds())
    response["Cache-Control"] = "no-store"
    return response


def _mark_outage(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    exc = sys.exc_info()[1]
    if request is not None and isinstance(exc, DB_ERRORS):
        request._gridsvc_db_outage = True  # type: ignore[attr-defined]


got_request_exception.connect(_mark_outage, dispatch_uid="gridsvc.outage")


class DatabaseOutageMiddleware:
    """503 + Retry-After for a request that failed because the database is unavailable."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            response = self.get_response(request)
        except DB_ERRORS as exc:
            return self._outage(request, exc)
        if getattr(request, "_gridsvc_db_outage", False):
            return self._outage(request, None)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DB_ERRORS):
            return self._outage(request, exception)
        return None

    def _outage(self, request: HttpRequest, exc: BaseException | None) -> HttpResponse:
        log.error("database unavailable for %s %s: %s", request.method, request.path, exc or "")
        return outage_response()
