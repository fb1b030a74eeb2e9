"""Editing the rules deadlines depend on: the working-day calendar (CalendarDay, CalendarYear),
office hours (WorkingHours), time limits (TimeLimit) and category / flag rules (规则维护).

Who may edit: superusers, and the street office (a street dispatcher 街道调度 position).
Calendar rows and office hours are per street: a dispatcher edits the rows of their own
street(s); the all-street rows (street empty) are the superuser's. Time limits and category
rules are one set for the deployment and are edited by the street office.

Every change is kept in the audit log (审计日志: who, when, before and after) with
``object_type`` ``rules.<model>``; a change to the calendar, office hours or a time limit
queues the worker's recompute of open deadlines (signals in :mod:`gridsvc.cases.signals`;
a deadline set by a person is kept).
"""

from __future__ import annotations

from datetime import date, time
from typing import Any

from django.db import models, transaction
from django.forms.models import model_to_dict

from gridsvc.chain.models import Position, PositionType


class RuleEditDenied(Exception):
    """The member may not make this change (another street's rows, or all-street rows)."""


def dispatcher_street_ids(member: Any) -> set[int]:
    """The streets where ``member`` holds a street dispatcher position now."""
    if member is None or not getattr(member, "is_authenticated", False):
        return set()
    return set(
        Position.objects.held_at(None)
        .filter(member=member, position_type=PositionType.STREET_DISPATCHER)
        .values_list("street_id", flat=True)
    )


def may_edit_rules(member: Any) -> bool:
    """Superusers and street dispatchers may read and edit the rules."""
    if member is None or not getattr(member, "is_authenticated", False):
        return False
    return bool(member.is_superuser or dispatcher_street_ids(member))


def check_street(member: Any, street_id: int | None) -> None:
    """Refuse a per-street row outside the member's streets (all-street rows: superuser)."""
    if member.is_superuser:
        return
    if street_id is None:
        raise RuleEditDenied("rows for every street (street empty) are edited by an administrator")
    if street_id not in dispatcher_street_ids(member):
        raise RuleEditDenied("this row belongs to another street")


def client_ip(request: Any) -> str | None:
    """The request's address for the history, or None when it is not an IP address."""
    import ipaddress

    addr = request.META.get("REMOTE_ADDR") if request is not None else None
    try:
        return str(ipaddress.ip_address(addr)) if addr else None
    except ValueError:
        return None


def snapshot(instance: models.Model | None) -> dict[str, Any] | None:
    """The row's fields as JSON-ready values (for the history)."""
    if instance is None:
        return None
    out: dict[str, Any] = {}
    for k, v in model_to_dict(instance).items():
        out[k] = v.isoformat() if isinstance(v, (date, time)) else v
    out["id"] = instance.pk
    return out


def record_change(
    actor: Any,
    instance: models.Model,
    change: str,
    before: dict[str, Any] | None,
    ip: str | None = None,
) -> None:
    """Append one history entry: ``change`` is create, update or delete."""
    from gridsvc.audit.models import AuditEntry
    from gridsvc.audit.services import record

    after = None if change == "delete" else snapshot(instance)
    changed = sorted(
        k
        for k in set(before or {}) | set(after or {})
        if (before or {}).get(k) != (after or {}).get(k)
    )
    record(
        actor,
        AuditEntry.Action.OTHER,
        object_type=f"rules.{instance._meta.model_name}",
        object_id=before["id"] if before else instance.pk,
        fields=changed,
        reason=f"rule {change}",
        ip=ip,
        detail={"change": change, "before": before, "after": after, "row": str(instance)},
    )


def save_rule(actor: Any, instance: models.Model, ip: str | None = None) -> models.Model:
    """Save a rule row and record who changed what (the worker then recomputes deadlines)."""
    with transaction.atomic():
        before = None
        if instance.pk:
            old = type(instance)._default_manager.filter(pk=instance.pk).first()
            before = snapshot(old)
        instance.save()
        record_change(actor, instance, "update" if before else "create", before, ip)
    return instance


def delete_rule(actor: Any, instance: models.Model, ip: str | None = None) -> None:
    """Delete a rule row, keeping its last state in the history."""
    with transaction.atomic():
        before = snapshot(instance)
        instance.delete()
        record_change(actor, instance, "delete", before, ip)
