"""Safe retries of unsafe requests (幂等重试): the ``Idempotency-Key`` header.

A phone that timed out does not know whether its POST arrived. It sends every unsafe request
(POST, PUT, PATCH, DELETE under ``/api/v1/``) with an ``Idempotency-Key`` it keeps until it
has an answer; a retry with the same key then gets the first answer instead of running the
request again. Keys are per member: two members using the same key never see each other's
response.

- The first request inserts its record before the view runs (insert-first on a unique
  ``(member, key)``), **in the same transaction as the request's work**
  (:class:`~gridsvc.sync.middleware.IdempotencyMiddleware` wraps both): the record and what
  the request wrote commit together or not at all. A concurrent duplicate waits on the
  unique index for up to :data:`WAIT` — then replays the first answer if it committed, runs
  if the first died (PostgreSQL rolls back the dead process's transaction, record and work
  alike), or gets 409 ``idempotency_in_progress`` if the first is still running. So a worker
  or PgBouncer killed mid-request leaves neither a half-done write nor a key stuck "in
  progress", and its retry cannot store a case twice.
- When the view answered 2xx or 4xx the answer (status, body, headers) is stored and
  replayed for :data:`TTL`; a 5xx, 401, 403 or 429 is not stored (the record is dropped, so
  a retry runs the request again).
- The same key with another method, path or body → 422 ``idempotency_key_reused``.
- A record still running after :data:`STALE_AFTER` (a crashed worker) is taken over.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from gridsvc.prepared import fetchone, fetchone_then_commit

from .models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Token answers are never stored (a replay would hand out tokens from the database).
EXCLUDED_PREFIXES = ("/api/v1/auth/token/", "/api/v1/auth/logout/")
STALE_AFTER = timedelta(minutes=10)
# How long a duplicate waits for the first request's transaction before answering 409.
WAIT = timedelta(seconds=3)
LOCK_NOT_AVAILABLE = "55P03"
NOT_STORED = frozenset({401, 403, 429})
# Headers of the first response that are not replayed: per-response or per-connection ones.
SKIPPED_HEADERS = frozenset(
    {
        "date",
        "set-cookie",
        "x-server-time",
        "x-clock-offset-ms",
        "content-length",
        "content-encoding",
        "vary",
        "connection",
        "keep-alive",
        "transfer-encoding",
    }
)


def ttl() -> timedelta:
    """How long a key's answer is kept (``GRIDSVC_IDEMPOTENCY_TTL_HOURS``, default 24 h)."""
    return timedelta(hours=float(getattr(settings, "GRIDSVC_IDEMPOTENCY_TTL_HOURS", 24)))


class KeyRefused(Exception):
    """The request cannot go ahead under this key: ``status`` and machine-readable ``code``."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def valid_key(key: str) -> bool:
    """1–255 printable ASCII characters (a UUID is the usual choice)."""
    return 0 < len(key) <= MAX_KEY_LENGTH and all(32 < ord(c) < 127 for c in key)


class BodyHasher:
    """SHA-256 of a request body as the view will understand it, fed in chunks.

    A retry need not be byte-identical: a multipart body's boundary (random per request in
    most HTTP clients) is replaced by a constant, and :func:`body_hash` reads JSON bodies as
    JSON (key order and white space do not count)."""

    BOUNDARY = b"--gridsvc-boundary"

    def __init__(self, content_type: str):
        media, _, params = content_type.partition(";")
        self.media = media.strip().lower()
        self.marker = b""
        if self.media == "multipart/form-data":
            for param in params.split(";"):
                name, _, value = param.strip().partition("=")
                if name.strip().lower() == "boundary" and value.strip().strip('"'):
                    self.marker = b"--" + value.strip().strip('"').encode("latin-1")
        self.sha = hashlib.sha256(self.media.encode() + b"\0")
        self.pending = b""

    def update(self, chunk: bytes) -> None:
        if not self.marker:
            self.sha.update(chunk)
            return
        buf = (self.pending + chunk).replace(self.marker, self.BOUNDARY)
        keep = len(self.marker) - 1  # a marker may straddle two chunks
        self.sha.update(buf[:-keep] if keep else buf)
        self.pending = buf[-keep:] if keep else b""

    def hexdigest(self) -> str:
        if self.pending:
            self.sha.update(self.pending.replace(self.marker, self.BOUNDARY))
            self.pending = b""
        return self.sha.hexdigest()


def body_hash(content_type: str, body: bytes) -> str:
    """Hash of a whole body (see :class:`BodyHasher`)."""
    hasher = BodyHasher(content_type)
    if hasher.media == "application/json" or hasher.media.endswith("+json"):
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            pass
        else:
            body = json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    hasher.update(body)
    return hasher.hexdigest()


@dataclass
class Claim:
    """Outcome of :func:`claim`: either a stored answer to replay, or a record to complete."""

    record: IdempotencyRecord
    replay: bool


_CLAIM: str | None = None


def _claim_sql() -> str:
    """Insert-first as ONE statement (issue 19: it was a savepoint, a SET, the INSERT, a SET
    back and the savepoint's release — five round trips): ``lock_timeout`` set to
    :data:`WAIT` for this statement's wait on a first request's row only (``set_config``
    local to the transaction, read before and put back in the same statement), the row
    inserted ``ON CONFLICT DO NOTHING`` (no error, so no savepoint: a duplicate gives no
    id). A first request still running holds its uncommitted row: the insert waits for its
    transaction, then does nothing (it committed: replay) or inserts (it died)."""
    global _CLAIM
    if _CLAIM is None:
        t = IdempotencyRecord._meta.db_table
        _CLAIM = f"""WITH s AS (
  SELECT current_setting('lock_timeout') AS prev, set_config('lock_timeout', %(wait)s, true)
), ins AS (
  INSERT INTO {t} (member_id, key, method, path, body_hash, status, response_body,
                   response_headers, created_at, completed_at)
  SELECT %(member)s, %(key)s, %(method)s, %(path)s, %(digest)s, NULL, NULL, '{{}}'::jsonb,
         %(now)s, NULL FROM s
  ON CONFLICT (member_id, key) DO NOTHING RETURNING id
)
SELECT ins.id, set_config('lock_timeout', s.prev, true) FROM s LEFT JOIN ins ON true"""
    return _CLAIM


def claim(member_id: int, key: str, method: str, path: str, digest: str) -> Claim:
    """Insert the key's record (this request runs) or find the first answer (replay).

    Raises :class:`KeyRefused` for a key reused with another request (422) or still running
    (409). Inside a transaction (the middleware's), a 409 for a first request still running
    marks that transaction for rollback: the statement that waited failed in it."""
    now = timezone.now()
    params: dict[str, Any] = {
        "wait": f"{int(WAIT.total_seconds() * 1000)}ms",
        "member": member_id,
        "key": key,
        "method": method,
        "path": path,
        "digest": digest,
        "now": now,
    }
    for _ in range(3):
        try:
            # prepared on the connection (gridsvc.prepared): every unsafe request claims one
            row = fetchone(_claim_sql(), params)
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            if connection.in_atomic_block:
                transaction.set_rollback(True)
            raise KeyRefused(
                409,
                "idempotency_in_progress",
                "the first request with this key is still being processed; retry shortly",
            ) from None
        if row is not None and row[0] is not None:
            new = IdempotencyRecord(
                id=row[0],
                member_id=member_id,
                key=key,
                method=method,
                path=path,
                body_hash=digest,
                status=None,
                response_body=None,
                response_headers={},
                created_at=now,
                completed_at=None,
            )
            new._state.adding = False
            new._state.db = connection.alias
            return Claim(new, replay=False)
        record = IdempotencyRecord.objects.filter(member_id=member_id, key=key).first()
        if record is None:  # completed with 5xx and dropped meanwhile: try again
            continue
        expired = record.created_at < now - ttl()
        abandoned = record.status is None and record.created_at < now - STALE_AFTER
        if expired or abandoned:
            IdempotencyRecord.objects.filter(pk=record.pk, created_at=record.created_at).delete()
            continue
        if (record.method, record.path, record.body_hash) != (method, path, digest):
            raise KeyRefused(
                422,
                "idempotency_key_reused",
                f"this {HEADER} was used for another request "
                f"({record.method} {record.path}); use a new key for a new request",
            )
        if record.status is None:
            raise KeyRefused(
                409,
                "idempotency_in_progress",
                "the first request with this key is still being processed; retry shortly",
            )
        return Claim(record, replay=True)
    raise KeyRefused(409, "idempotency_in_progress", "this key is being used concurrently")


def stored_headers(headers: Any) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in SKIPPED_HEADERS}


def complete(
    record: IdempotencyRecord,
    status: int,
    body: bytes | None,
    headers: Any,
    last: bool = False,
) -> bool:
    """Store the answer (2xx/4xx, except 401/403/429) or drop the record so a retry runs
    again. Returns whether it was stored. ``last``: nothing else runs in the transaction
    after it, so the answer may travel with the COMMIT (:func:`gridsvc.prepared.
    fetchone_then_commit`)."""
    keep = (
        body is not None
        and (200 <= status < 300 or (400 <= status < 500))
        and (status not in NOT_STORED)
    )
    if not keep:
        release(record)
        return False
    # one prepared statement, no queryset built (issue 19: every write request completes one)
    (fetchone_then_commit if last else fetchone)(
        _complete_sql(),
        {
            "status": status,
            "body": bytes(body),  # type: ignore[arg-type]
            "headers": json.dumps(stored_headers(headers)),
            "now": timezone.now(),
            "id": record.pk,
        },
    )
    return True


_COMPLETE: str | None = None


def _complete_sql() -> str:
    """The UPDATE that stores a key's answer (:func:`complete`)."""
    global _COMPLETE
    if _COMPLETE is None:
        _COMPLETE = (
            f"UPDATE {IdempotencyRecord._meta.db_table} SET status = %(status)s, "
            "response_body = %(body)s, response_headers = %(headers)s::jsonb, "
            "completed_at = %(now)s WHERE id = %(id)s RETURNING id"
        )
    return _COMPLETE


def release(record: IdempotencyRecord) -> None:
    """Forget a running record (the request failed): a retry will run it again."""
    IdempotencyRecord.objects.filter(pk=record.pk, status__isnull=True).delete()


def purge_expired() -> int:
    """Delete answers older than :func:`ttl`; returns how many."""
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - ttl()).delete()
    return deleted
