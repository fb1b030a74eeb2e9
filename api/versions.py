"""Optimistic concurrency for phone and web edits: the version the caller last saw.

Cases and daily reports answer an ``ETag`` of the form ``"<kind>-<id>-v<version>"``; an edit
names it in ``If-Match`` (or sends ``version`` in the body). ``If-Match: *`` (or neither)
means "no check".
"""

from __future__ import annotations

from rest_framework.exceptions import ValidationError


def expected_version(request, what: str) -> int | None:  # type: ignore[no-untyped-def]
    """The version the caller last saw, from ``If-Match`` (an ETag of ``what``, e.g. "a
    case") or ``version`` in the body; None when neither says one."""
    raw = request.headers.get("If-Match")
    if raw:
        raw = raw.strip().removeprefix("W/")
        if raw == "*":
            return None
        try:
            return int(raw.strip('"').rsplit("-v", 1)[1])
        except (IndexError, ValueError):
            raise ValidationError({"If-Match": f"not an ETag of {what}"}) from None
    body = request.data if isinstance(request.data, dict) else {}
    if body.get("version") not in (None, ""):
        try:
            return int(body["version"])
        except (TypeError, ValueError):
            raise ValidationError({"version": "must be an integer"}) from None
    return None
