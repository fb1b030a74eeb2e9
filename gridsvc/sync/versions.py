"""App versions (客户端版本): a phone too old for the server gets 426 with the minimum.

The phone sends ``X-App-Version: 2.3.1`` (digits and dots; a suffix such as ``-beta`` or
``+build7`` is ignored, so ``2.3.1-beta`` counts as ``2.3.1``). ``GRIDSVC_MIN_APP_VERSION``
(setting or environment; default none) is the oldest version still served. Requests without
the header (the web page, GIS clients, scripts) are never refused for their version.
"""

from __future__ import annotations

import os
import re

from django.conf import settings

HEADER = "X-App-Version"
MIN_HEADER = "X-Min-App-Version"
_VERSION = re.compile(r"^\s*[vV]?(\d{1,9}(?:\.\d{1,9}){0,5})(?:[-+~_ ].*)?\s*$")


class BadVersion(ValueError):
    """Not a dotted version number."""


def parse_version(raw: str) -> tuple[int, ...]:
    """``"2.3.1-beta"`` → ``(2, 3, 1)``; trailing zeros do not count (2.3 == 2.3.0)."""
    match = _VERSION.match(raw or "")
    if not match:
        raise BadVersion(raw)
    parts = [int(p) for p in match.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def minimum_version() -> str | None:
    """The oldest app version served, or None (every version is)."""
    value = getattr(settings, "GRIDSVC_MIN_APP_VERSION", None)
    if value is None:
        value = os.environ.get("GRIDSVC_MIN_APP_VERSION") or None
    if not value:
        return None
    return str(value).strip() or None


def too_old(app_version: str, minimum: str) -> bool:
    """Whether ``app_version`` is older than ``minimum`` (raises :class:`BadVersion`)."""
    return parse_version(app_version) < parse_version(minimum)
