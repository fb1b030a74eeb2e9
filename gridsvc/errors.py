"""Domain errors: a rule of a domain app refused a request.

Every one carries what the API answers — an HTTP ``status_code``, a machine-readable ``code``,
the ``field`` at fault and a ``message`` — so :func:`api.errors.exception_handler` turns any of
them into a JSON answer in one place, and views let them through instead of catching them.
The apps raise subclasses (``CaseError`` in cases, ``HandOverError`` in chain, ``ParamError``
in layers); nothing here knows HTTP beyond the numbers.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A domain rule refused the request (400 naming ``field`` unless a subclass says other)."""

    status_code: int = 400
    code: str = "invalid"

    def __init__(
        self,
        message: str,
        field: str = "non_field_errors",
        *,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status_code = status
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        """The JSON answer: the message under the field at fault and as ``detail``."""
        return {self.field: [self.message], "detail": self.message}

    def headers(self) -> dict[str, str]:
        """Headers of the answer (an ETag for a stale version, say)."""
        return {}


__all__ = ["DomainError"]
