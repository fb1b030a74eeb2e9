"""Middleware of the phone sync protocol (see docs/sync.md).

- :class:`ServerTimeMiddleware`: ``X-Server-Time`` on every response; the request's receive
  time and the phone's ``X-Device-Time`` for visit ingestion (:mod:`gridsvc.sync.clock`).
- :class:`RequestGzipMiddleware`: ``Content-Encoding: gzip`` request bodies are inflated,
  at most ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes (413 above: no zip bombs).
- :class:`AppVersionMiddleware`: 426 for an ``X-App-Version`` older than
  ``GRIDSVC_MIN_APP_VERSION`` (:mod:`gridsvc.sync.versions`).
- :class:`IdempotencyMiddleware`: ``Idempotency-Key`` on unsafe ``/api/v1/`` requests
  (:mod:`gridsvc.sync.idempotency`).

Errors are JSON ``{"detail": ..., "code": ...}`` with a machine-readable ``code``.
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Callable
from io import BytesIO

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from . import clock, idempotency, versions

API_PREFIX = "/api/"
IDEMPOTENT_PREFIX = "/api/v1/"
GZIP_ENCODINGS = frozenset({"gzip", "x-gzip"})

Handler = Callable[[HttpRequest], HttpResponse]


def error(status: int, code: str, detail: str, **extra: object) -> JsonResponse:
    """A JSON error answered by a middleware (the views' errors look the same)."""
    return JsonResponse({"detail": detail, "code": code, **extra}, status=status)


class ServerTimeMiddleware:
    """The server's clock on every response; the phone's clock for the request."""

    def __init__(self, get_response: Handler):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        received = timezone.now()
        device_time = None
        raw = request.headers.get(clock.DEVICE_TIME_HEADER)
        if raw:
            try:
                device_time = clock.parse_device_time(raw)
            except clock.BadDeviceTime:
                response: HttpResponse = error(
                    400,
                    "bad_device_time",
                    f"{clock.DEVICE_TIME_HEADER} must be ISO 8601 with an offset "
                    "(2026-12-01T14:30:05.120+08:00) or epoch milliseconds, "
                    "from 1970-01-01 to 2099-12-31 (UTC)",
                )
                response[clock.SERVER_TIME_HEADER] = clock.format_server_time(timezone.now())
                return response
        request_clock = clock.RequestClock(received_at=received, device_time=device_time)
        with clock.request_clock(request_clock):
            response = self.get_response(request)
        response[clock.SERVER_TIME_HEADER] = clock.format_server_time(timezone.now())
        if request_clock.offset_ms is not None:
            response[clock.OFFSET_HEADER] = str(request_clock.offset_ms)
        return response


class RequestGzipMiddleware:
    """Inflate ``Content-Encoding: gzip`` request bodies (batches from the phone)."""

    def __init__(self, get_response: Handler):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding and encoding != "identity":
            if encoding not in GZIP_ENCODINGS:
                return error(
                    415,
                    "unsupported_content_encoding",
                    "request bodies may be sent as gzip or uncompressed",
                )
            refused = self.inflate(request)
            if refused is not None:
                return refused
        return self.get_response(request)

    @staticmethod
    def limit() -> int:
        return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 16 * 1024 * 1024)

    def inflate(self, request: HttpRequest) -> HttpResponse | None:
        limit = self.limit()
        too_big = error(
            413,
            "body_too_large",
            f"the request body is larger than {limit} bytes when inflated",
            max_bytes=limit,
        )
        try:
            compressed = request.body
        except RequestDataTooBig:
            return too_big
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(compressed, limit + 1)
            if len(data) > limit or inflater.unconsumed_tail:
                return too_big
            data += inflater.flush()
        except zlib.error:
            return error(400, "bad_gzip", "the request body is not valid gzip")
        if len(data) > limit:
            return too_big
        if not inflater.eof:
            return error(400, "bad_gzip", "the gzip request body is truncated")
        request._body = data  # type: ignore[attr-defined]
        request._stream = BytesIO(data)  # type: ignore[attr-defined]
        request.META["CONTENT_LENGTH"] = str(len(data))
        request.META.pop("HTTP_CONTENT_ENCODING", None)
        return None


class AppVersionMiddleware:
    """426 Upgrade Required for a phone app older than the minimum version."""

    def __init__(self, get_response: Handler):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        minimum = versions.minimum_version()
        on_api = request.path.startswith(API_PREFIX)
        sent = request.headers.get(versions.HEADER)
        if on_api and sent:
            try:
                old = minimum is not None and versions.too_old(sent, minimum)
            except versions.BadVersion:
                return error(
                    400,
                    "bad_app_version",
                    f"{versions.HEADER} must be a dotted version number such as 2.3.1",
                )
            if old:
                response: HttpResponse = error(
                    426,
                    "app_too_old",
                    f"this app version ({sent}) is no longer supported; "
                    f"update to {minimum} or later",
                    min_version=minimum,
                    app_version=sent,
                )
                response[versions.MIN_HEADER] = minimum
                return response
        response = self.get_response(request)
        if on_api and minimum:
            response[versions.MIN_HEADER] = minimum
        return response


def authenticated_member(request: HttpRequest):  # type: ignore[no-untyped-def]
    """The member making the request, as the API will see it, or None.

    A bearer token is checked with the API's own class (device revocation included); a
    session user comes from Django's AuthenticationMiddleware; DRF's test client marks its
    forced user on the request (DRF's own ``Request`` honours the same attribute)."""
    forced = getattr(request, "_force_auth_user", None)
    if forced is not None:
        return forced
    if request.META.get("HTTP_AUTHORIZATION"):
        from rest_framework.exceptions import APIException

        from gridsvc.accounts.authentication import DeviceJWTAuthentication

        try:
            found = DeviceJWTAuthentication().authenticate(request)  # type: ignore[arg-type]
        except APIException:
            return None
        return found[0] if found else None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user
    return None


class IdempotencyMiddleware:
    """``Idempotency-Key`` for every unsafe request under /api/v1/ (see
    :mod:`gridsvc.sync.idempotency`). Requests without the header are untouched."""

    def __init__(self, get_response: Handler):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = request.headers.get(idempotency.HEADER)
        if (
            key is None
            or request.method not in idempotency.UNSAFE_METHODS
            or not request.path.startswith(IDEMPOTENT_PREFIX)
            or request.path.startswith(idempotency.EXCLUDED_PREFIXES)
        ):
            return self.get_response(request)
        key = key.strip()
        if not idempotency.valid_key(key):
            return error(
                400,
                "idempotency_key_invalid",
                f"{idempotency.HEADER} must be 1–{idempotency.MAX_KEY_LENGTH} printable "
                "ASCII characters (a UUID is best)",
            )
        member = authenticated_member(request)
        if member is None:  # the view answers 401; nothing to remember
            return self.get_response(request)
        try:
            digest = self.digest(request)
        except RequestDataTooBig:
            return self.get_response(request)  # Django's own 400 for this request
        path = request.get_full_path()
        # The key's record and the request's work in one transaction: they commit together,
        # and a process killed mid-request takes both with it (a retry then simply runs).
        with transaction.atomic():
            try:
                claimed = idempotency.claim(member.pk, key, request.method or "", path, digest)
            except idempotency.KeyRefused as exc:
                response: HttpResponse = error(exc.status, exc.code, exc.detail)
                if exc.status == 409:
                    response["Retry-After"] = "1"
                return response
            record = claimed.record
            if claimed.replay:
                return self.replay(record)
            response = self.get_response(request)
            user = getattr(request, "user", None)
            if response.status_code >= 500:
                transaction.set_rollback(True)  # nothing half-done; the retry runs again
            elif response.streaming or getattr(user, "pk", member.pk) != member.pk:
                idempotency.release(record)
            else:  # the last statement of the request's transaction: it goes with the COMMIT
                idempotency.complete(
                    record, response.status_code, response.content, response, last=True
                )
            return response

    @staticmethod
    def digest(request: HttpRequest) -> str:
        """Hash of the body, read once and put back for the view. Bodies above
        DATA_UPLOAD_MAX_MEMORY_SIZE (multipart uploads) are spooled to a temporary file."""
        content_type = request.META.get("CONTENT_TYPE", "")
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if hasattr(request, "_body") or limit is None or length <= limit:
            return idempotency.body_hash(content_type, request.body)
        h = idempotency.BodyHasher(content_type)
        spool = tempfile.SpooledTemporaryFile(max_size=limit)  # noqa: SIM115 - the view reads it
        stream = request._stream  # type: ignore[attr-defined]
        while chunk := stream.read(64 * 1024):
            h.update(chunk)
            spool.write(chunk)
        spool.seek(0)
        request._stream = spool  # type: ignore[attr-defined]
        return h.hexdigest()

    @staticmethod
    def replay(record: idempotency.IdempotencyRecord) -> HttpResponse:
        response = HttpResponse(bytes(record.response_body or b""), status=record.status or 200)
        for name, value in (record.response_headers or {}).items():
            response[name] = value
        response[idempotency.REPLAYED_HEADER] = "true"
        return response
