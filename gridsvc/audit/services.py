"""Audit services: record audited actions, grant and check break-the-glass unmasking.

Who may unmask: holders of the positions in ``settings.UNMASK_POSITION_TYPES`` (by default
the street's dispatchers and ethnic-affairs desk, community cadres and the community
mediation committee) and superusers — and only with a stated reason, for at most
``settings.UNMASK_MAX_MINUTES``. Every unmasked read is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone

from gridsvc.chain.models import Position
from gridsvc.chain.scope import Scope

from .models import AuditEntry, UnmaskGrant


def record(
    actor,
    action: str,
    *,
    object_type: str = "",
    object_id: str | int = "",
    fields: Iterable[str] = (),
    reason: str = "",
    grant: UnmaskGrant | None = None,
    ip: str | None = None,
    detail: dict | None = None,
) -> AuditEntry:
    """Append one entry to the audit log (``actor`` may be None for system actions)."""
    return AuditEntry.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        fields=list(fields),
        reason=reason,
        grant=grant,
        ip=ip,
        detail=detail or {},
    )


def record_unmasked_reads(
    actor,
    object_type: str,
    object_ids: Iterable[int],
    fields: Iterable[str],
    grant: UnmaskGrant,
    ip: str | None = None,
) -> int:
    """One audit entry per object read in clear (bulk insert)."""
    fields = list(fields)
    rows = [
        AuditEntry(
            actor=actor,
            action=AuditEntry.Action.UNMASKED_READ,
            object_type=object_type,
            object_id=str(pk),
            fields=fields,
            reason=grant.reason,
            grant=grant,
            ip=ip,
        )
        for pk in object_ids
    ]
    AuditEntry.objects.bulk_create(rows)
    return len(rows)


def may_hold_unmask_grant(member) -> bool:
    """Whether ``member``'s positions allow unmasking at all."""
    if member.is_superuser:
        return True
    return (
        Position.objects.active_at()
        .filter(member=member, position_type__in=settings.UNMASK_POSITION_TYPES)
        .exists()
    )


def grant_unmask(member, reason: str, minutes: int = 30) -> UnmaskGrant:
    """Open a break-the-glass grant; refused for roles that may not unmask."""
    reason = (reason or "").strip()
    if len(reason) < 4:
        raise ValidationError({"reason": "state why you need to see sensitive data (≥ 4 chars)"})
    max_minutes = settings.UNMASK_MAX_MINUTES
    if not (1 <= minutes <= max_minutes):
        raise ValidationError({"minutes": f"must be between 1 and {max_minutes}"})
    if not may_hold_unmask_grant(member):
        raise PermissionDenied("your positions do not allow unmasking sensitive data")
    now = timezone.now()
    grant = UnmaskGrant.objects.create(
        member=member, reason=reason, created_at=now, expires_at=now + timedelta(minutes=minutes)
    )
    record(
        member,
        AuditEntry.Action.GRANT,
        object_type="unmask_grant",
        object_id=grant.pk,
        reason=reason,
        grant=grant,
        detail={"minutes": minutes},
    )
    return grant


def active_grant(member) -> UnmaskGrant | None:
    """The member's current unmask grant, if any (still a permitted role)."""
    if member is None or not getattr(member, "is_authenticated", False):
        return None
    now = timezone.now()
    grant = (
        UnmaskGrant.objects.filter(member=member, revoked_at__isnull=True, expires_at__gt=now)
        .order_by("-expires_at")
        .first()
    )
    if grant is None or not may_hold_unmask_grant(member):
        return None
    return grant


# Audited object types that belong to a territory: ``object_type`` → model (``app.Model``).
# An entry about such an object belongs to the street the object lies in.
AUDITED_TERRITORY_OBJECTS: dict[str, str] = {
    "resident": "territory.Resident",
    "household": "territory.Household",
    "case": "cases.Case",
}


def audit_entries_visible(scope: Scope, qs: QuerySet | None = None) -> QuerySet:
    """The audit log (审计日志) a street-level caller may read: entries by members who hold or
    held a position in the caller's street(s), and entries about residents, households and
    cases there. ``scope.everything`` (superusers) sees all; anyone without a street sees
    nothing."""
    qs = AuditEntry.objects.all() if qs is None else qs
    if scope.everything:
        return qs
    if not scope.street_ids:
        return qs.none()
    street = Scope(street_ids=set(scope.street_ids))  # the street part only
    actors = street.filter(Position.objects.all()).values("member_id")
    visible = Q(actor__in=actors)
    for object_type, label in AUDITED_TERRITORY_OBJECTS.items():
        model = apps.get_model(label)
        ids = (
            street.filter(model._default_manager.all())
            .annotate(_pk_text=Cast("pk", CharField()))
            .values("_pk_text")
        )
        visible |= Q(object_type=object_type, object_id__in=ids)
    return qs.filter(visible)
