"""Which cases a caller may see, and ids in a request body resolved through the caller's
scope (an id outside it reads exactly like one that does not exist)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError

from api.scoping import request_scope
from gridsvc.cases.models import (
    Case,
    Department,
)
from gridsvc.cases.services.reporting import SEEN_BY
from gridsvc.chain.scope import LOCATED_MODELS


def case_queryset(request) -> QuerySet[Case]:  # type: ignore[no-untyped-def]
    """Cases the caller may see: their territory's, plus those they handle or reported."""
    base = Case.objects.select_related("category__parent", "handler", "department")
    scope = request_scope(request)
    if scope.everything:
        return base
    user = request.user
    mine = Q(handler=user) | Q(reported_by=user)
    return base.filter(Q(pk__in=scope.filter(Case.objects.all()).values("pk")) | mine)


def _may_see(scope, user, case: Case) -> bool:  # type: ignore[no-untyped-def]
    """:func:`case_queryset`'s rule for one case, from its own columns (no query)."""
    return (
        case.handler_id == user.pk
        or case.reported_by_id == user.pk
        or case.street_id in scope.street_ids
        or case.community_id in scope.community_ids
        or case.grid_id in scope.grid_ids
        or case.compound_id in scope.compound_ids
        or case.building_id in scope.building_ids
        or case.unit_id in scope.unit_ids
    )


def visible_among(request, cases) -> list[Case]:  # type: ignore[no-untyped-def]
    """Those of ``cases`` the caller may see (same order): from the cases' own columns when
    they were read (:data:`SEEN_BY`; a case's territory rule is its own street … unit, see
    :meth:`Scope.located_q`), else by a query."""
    cases = list(cases)
    scope = request_scope(request)
    if not cases or scope.everything:
        return cases
    if Case in LOCATED_MODELS and all(
        isinstance(c, Case) and not (c.get_deferred_fields() & _SEEN) for c in cases
    ):
        return [c for c in cases if _may_see(scope, request.user, c)]
    ids = set(
        case_queryset(request).filter(pk__in=[c.pk for c in cases]).values_list("pk", flat=True)
    )
    return [c for c in cases if c.pk in ids]


_SEEN = frozenset(SEEN_BY)


def in_scope(request, model, pk: Any, field_name: str):  # type: ignore[no-untyped-def]
    if pk in (None, ""):
        return None
    pk = _as_id(pk, field_name)
    obj = request_scope(request).filter(model.objects.all()).filter(pk=pk).first()
    if obj is None:  # outside the territory reads exactly like nonexistent
        raise ValidationError({field_name: [NOT_FOUND]})
    return obj


NOT_FOUND = "not found"


def _as_id(value: Any, field_name: str) -> int:
    if isinstance(value, bool):
        raise ValidationError({field_name: ["must be an id"]})
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError({field_name: ["must be an id"]}) from None


def resolve_action_ids(request, case: Case, data: dict) -> None:  # type: ignore[no-untyped-def]
    """Every id in an action's body is looked up through the caller's scope before the action
    runs; an id outside it is answered exactly like one that does not exist (400 naming the
    field, "not found") and is never acted on:

    - ``into`` (merge): a case the caller may see;
    - ``member`` (assign/reassign): an active member holding a position over the case's place
      now (the case's territory) or a 调处员 of its community for a dispute, whatever the
      caller could otherwise see;
    - ``grid`` (assign a case outside every grid): a grid of the caller's territory;
    - ``department`` (transfer): a department of the case's street, or one without a street.
    """
    from gridsvc.accounts.models import Member
    from gridsvc.cases.services.unity import is_case_mediator
    from gridsvc.chain.scope import scope_for
    from gridsvc.territory.models import Grid

    if data.get("into") not in (None, ""):
        pk = _as_id(data["into"], "into")
        if not case_queryset(request).filter(pk=pk).exists():
            raise ValidationError({"into": [NOT_FOUND]})
        data["into"] = pk
    place = case
    if data.get("grid") not in (None, ""):
        grid = in_scope(request, Grid, data["grid"], "grid")
        data["grid"] = grid.pk
        if case.grid_id is None:  # assign places the case in this grid first
            place = Case(
                street_id=grid.community.street_id,
                community_id=grid.community_id,
                grid_id=grid.pk,
                compound_id=case.compound_id,
                building_id=case.building_id,
                unit_id=case.unit_id,
            )
    if data.get("member") not in (None, ""):
        pk = _as_id(data["member"], "member")
        member = Member.objects.filter(pk=pk, is_active=True).first()
        if member is None or not (
            _covers(scope_for(member), place) or is_case_mediator(member, place)
        ):  # a 五员 调处员 of the community takes its disputes anywhere in it
            raise ValidationError({"member": [NOT_FOUND]})
        data["member"] = pk
    if data.get("department") not in (None, ""):
        pk = _as_id(data["department"], "department")
        if not Department.objects.filter(
            Q(street__isnull=True) | Q(street_id=case.street_id), pk=pk
        ).exists():
            raise ValidationError({"department": [NOT_FOUND]})
        data["department"] = pk


def _covers(scope, case: Case) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``scope`` holds a position over the case's place (the rule of
    :meth:`Scope.located_q`, on a case that may not be saved yet)."""
    return scope.everything or any(
        ref is not None and ref in ids
        for ref, ids in (
            (case.street_id, scope.street_ids),
            (case.community_id, scope.community_ids),
            (case.grid_id, scope.grid_ids),
            (case.compound_id, scope.compound_ids),
            (case.building_id, scope.building_ids),
            (case.unit_id, scope.unit_ids),
        )
    )
