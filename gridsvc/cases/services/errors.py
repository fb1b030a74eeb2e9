"""The errors of the case rules (the API answers each with its status and the field)."""

from __future__ import annotations

from typing import Any

from gridsvc.errors import DomainError

from ..models import (
    Case,
)


class CaseError(DomainError):
    """A rule refused the request (the API answers 400 naming ``field``)."""

    code = "case_refused"


class IllegalTransition(CaseError):
    """The action is not allowed in the case's state (409, with the allowed actions)."""

    status_code = 409
    code = "illegal_transition"

    def __init__(self, action: str, status: str, allowed: list[str]) -> None:
        super().__init__(
            f"cannot {action} a case that is {status}; allowed: {', '.join(allowed) or 'none'}",
            "action",
        )
        self.action = action
        self.status = status
        self.allowed = allowed

    def body(self) -> dict[str, Any]:
        return {**super().body(), "allowed": self.allowed, "status": self.status}


class StaleVersion(CaseError):
    """The caller's version (If-Match) is not the case's (412, with the current ETag)."""

    status_code = 412
    code = "stale_version"

    def __init__(self, current: Case) -> None:
        super().__init__(
            f"the case has changed (now version {current.version}); reload it and try again",
            "If-Match",
        )
        self.current = current

    def body(self) -> dict[str, Any]:
        return {**super().body(), "current_version": self.current.version}

    def headers(self) -> dict[str, str]:
        return {"ETag": self.current.etag}


class NotAllowed(CaseError):
    status_code = 403
    code = "not_allowed"


class SignOffMissing(CaseError):
    """The case's closing rule asks for the street ethnic-affairs desk's sign-off
    (民族宗教工作站确认) and it is missing or says 尚未稳定 (409, field ``ethnic_sign_off``)."""

    status_code = 409
    code = "ethnic_sign_off_missing"
