"""Who may import, whether an export may unmask, and the audit hook of every export."""

from __future__ import annotations

from typing import Any

from gridsvc.chain.scope import Scope, scope_for


def is_data_manager(member) -> bool:  # type: ignore[no-untyped-def]
    """Data managers (数据管理员) import boundaries and rosters through the API: superusers and
    street-level positions (street dispatcher, ethnic-affairs desk)."""
    if member is None or not getattr(member, "is_authenticated", False):
        return False
    if member.is_superuser:
        return True
    return bool(scope_for(member).street_ids)


def member_scope(member) -> Scope:  # type: ignore[no-untyped-def]
    """The member's territory; ``None`` (a command run by the operator) sees everything."""
    return Scope(everything=True) if member is None else scope_for(member)


def may_unmask_export(member, fields: tuple[str, ...] = ()) -> bool:  # type: ignore[no-untyped-def]
    """Hook: may ``member`` export ``fields`` (ID numbers, phones) in clear?

    There is no permission for unmasked exports yet, so exports are always masked. When one
    exists (e.g. an unmask grant that covers exports), decide it here; every caller already
    audits the export with the ``unmasked`` flag this returns.
    """
    return False


def audit_export(member, what: str, *, detail: dict[str, Any] | None = None) -> None:  # type: ignore[no-untyped-def]
    """Record an export (layer, ledger, report, error workbook) in the audit log (审计日志)."""
    from gridsvc.audit.models import AuditEntry
    from gridsvc.audit.services import record

    record(member, AuditEntry.Action.EXPORT, object_type=what, detail=detail or {})
