"""The change feeds' cursors: opaque, signed for the member they were given to, and the
keyset marks ``(updated_at, id)`` they carry per stream (see docs/sync.md).

One cursor format serves every feed: the visits' (:func:`gridsvc.visits.sync.changes_since`),
the community's (:func:`gridsvc.community.services.changes`) and the assistance's
(:mod:`gridsvc.assistance.sync`); each feed names itself inside the state it signs. This
module knows no feed and imports nothing of the house but the settings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

#: the cursor's format; a cursor of another version is refused (sync from the start)
CURSOR_VERSION = 2
#: why a cursor is refused
BAD_CURSOR = "not a cursor this feed gave you: drop it and sync from the start (no since)"


class BadCursor(ValueError):
    """A cursor this server did not give the member (altered, someone else's, another
    version, or naming what is gone): the phone drops it and syncs from the start."""


def _signature(raw: bytes, member_id: int) -> str:
    msg = b"sync-feed:%d:" % member_id + raw
    return hmac.new(settings.SECRET_KEY.encode(), msg, hashlib.sha256).hexdigest()[:32]


def encode_cursor(state: dict[str, Any], member_id: int) -> str:
    """The opaque cursor for ``state``, signed for ``member_id``."""
    raw = json.dumps({"v": CURSOR_VERSION, **state}, separators=(",", ":"), sort_keys=True)
    body = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    return f"{body}.{_signature(raw.encode(), member_id)}"


def cursor_again(cursor: str, state: dict[str, Any], member_id: int) -> str:
    """``encode_cursor(state, member_id)`` for a ``state`` decoded from ``cursor``
    (:func:`decode_cursor`, signature checked) and left unchanged — a quiet poll's answer:
    ``cursor`` itself when it is already that encoding, checked without the JSON encoder
    and the HMAC (issue 19). The state's JSON (sorted keys, compact, ASCII; its values
    strings and integers) written by orjson is byte for byte the standard library's; when
    ``cursor`` is not that (another spelling of the same bytes in base64, or a state orjson
    writes otherwise) it is encoded again."""
    body = cursor.partition(".")[0]
    try:
        raw = orjson.dumps({"v": CURSOR_VERSION, **state}, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        raw = b""
    # the signature was checked over the bytes ``body`` decodes to: when ``body`` is their
    # one spelling (and they are the encoder's), the signature is the encoder's too
    if raw and raw.isascii() and base64.urlsafe_b64encode(raw).rstrip(b"=") == body.encode():
        return cursor
    return encode_cursor(state, member_id)


def decode_cursor(cursor: str | None, member_id: int) -> dict[str, Any]:
    """Decode a cursor given to ``member_id``; raise :class:`BadCursor` otherwise."""
    if not cursor:
        return {}
    body, _, sig = cursor.partition(".")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, TypeError):
        raise BadCursor(BAD_CURSOR) from None
    if not sig or not hmac.compare_digest(sig, _signature(raw, member_id)):
        raise BadCursor(BAD_CURSOR)
    try:
        state = json.loads(raw)
    except ValueError:
        raise BadCursor(BAD_CURSOR) from None
    if not isinstance(state, dict) or state.get("v") != CURSOR_VERSION:
        raise BadCursor(BAD_CURSOR)
    state.pop("v")
    return state


def rows_after(qs: QuerySet, mark: list | None, ts_field: str = "updated_at") -> QuerySet:
    """The rows of ``qs`` after the keyset ``mark`` (``[timestamp, id]``, :func:`keyset_mark`)
    in ``(ts_field, id)`` order; all of them without a mark."""
    if not mark:
        return qs
    ts = parse_datetime(mark[0])
    return qs.filter(Q(**{f"{ts_field}__gt": ts}) | Q(**{ts_field: ts, "id__gt": mark[1]}))


def keyset_mark(ts: datetime, pk: int) -> list:
    """The keyset mark of the row ``(ts, pk)`` a stream's page ended at, as a cursor keeps
    it."""
    return [ts.isoformat(), pk]
