"""The 应保尽保 map layer for the street (issue 21 item 2): per building, how many households
look eligible for 低保 or housing assistance without an application, and how many are on
assistance with an overdue 复核 — counts only, never a household, a name or a room.

Registered in the layer registry (:data:`gridsvc.layers.services.LAYERS`) by this app's
``AppConfig.ready`` (:func:`gridsvc.layers.services.register_layer`), so tiles, GeoJSON, OGC
API and the layer list serve it like any other layer. Privacy
(docs/security.md): the counts reveal LOW_INCOME, so only the staff part of the caller's
scope is read (:func:`gridsvc.chain.visibility.staff_scope`: a neighbour's scope — building,
compound, unit — is empty there, so 楼长, 单元长, 物业, 业委会 get no feature at all), and a
count of 1–4 is ``null`` ("<5") except in the buildings of a street the caller holds a
street post over (the street tier sees exact counts of its own street, as in the work report). A building without any gap has no feature.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Case as When_
from django.db.models import Count, F, IntegerField, Q, Value
from django.db.models import When as WhenClause

from gridsvc.chain.scope import Scope
from gridsvc.chain.visibility import LOW_INCOME, SMALL_CELL_K, staff_scope
from gridsvc.layers.services import Built, Filter, LayerDef, LayerQuery, Prop
from gridsvc.territory.models import Building, Household

NAME = "assistance_gaps"
COUNTS = ("dibao", "public_housing", "recheck_overdue")


def exact_counts(scope: Scope) -> bool:
    """Whether the layer's counts are exact everywhere in ``scope``: everything (the
    operator); otherwise they are exact only in the buildings of the streets held through a
    street post (:func:`_suppressed`)."""
    return scope.everything


def _suppressed(name: str, street_ids: set[int]) -> Any:
    """A count of 1–4 as null, except in a building of ``street_ids`` (the street tier's
    own streets: a dispatcher who is a grid member in another street reads that grid's
    buildings as staff)."""
    small = Q(**{f"{name}__range": (1, SMALL_CELL_K - 1)})
    if street_ids:
        small &= ~Q(grid__community__street__in=street_ids)
    return When_(
        WhenClause(small, then=Value(None)),
        default=F(name),
        output_field=IntegerField(),
    )


def _build(scope: Scope, q: LayerQuery, zoom: int | None) -> Built:
    from . import services

    staff = staff_scope(scope)
    households = staff.filter(Household.objects.all())
    grid = q.filters.get("grid")
    if grid is not None:
        households = households.filter(unit__building__grid_id=grid)
    gaps = services.gap_households(households)
    annotations = {
        f"g_{key}": Count(
            "units__households",
            filter=Q(units__households__in=gaps[key].values("pk")),
            distinct=True,
        )
        for key in COUNTS
    }
    qs = (
        Building.objects.filter(pk__in=households.values("unit__building_id"))
        .annotate(**annotations)
        .annotate(g_total=sum((F(f"g_{k}") for k in COUNTS[1:]), F(f"g_{COUNTS[0]}")))
        .filter(g_total__gt=0)
        .order_by("code")
    )
    overrides = (
        {} if exact_counts(staff) else {k: _suppressed(f"g_{k}", staff.street_ids) for k in COUNTS}
    )
    return Built(qs, "point", overrides=overrides, filtered=True)


def gaps_layer() -> LayerDef:
    """The layer's declaration (properties and filters once, as every layer's)."""
    return LayerDef(
        NAME,
        "应保尽保 assistance gaps",
        "Per building: households whose records suggest 低保 or housing assistance but that "
        "have no application, and households whose 复核 is overdue. Counts only; a count of "
        "1–4 is null below the street; neighbours' roles get nothing.",
        "Point",
        12,
        (
            Prop("building", "string", "楼栋编码 building code", "code"),
            Prop("grid", "integer", "网格 id grid id", "grid_id"),
            Prop(
                "dibao",
                "integer",
                "疑似应保未保(低保) households without 低保",
                F("g_dibao"),
                sensitive=LOW_INCOME,
            ),
            Prop(
                "public_housing",
                "integer",
                "疑似应保未保(住房) households without housing assistance",
                F("g_public_housing"),
                sensitive=LOW_INCOME,
            ),
            Prop(
                "recheck_overdue",
                "integer",
                "复核逾期 households with an overdue re-check",
                F("g_recheck_overdue"),
                sensitive=LOW_INCOME,
                clock=True,
            ),
        ),
        _build,
        (Filter("grid", "id", "integer id of a grid in your territory", "grid_id"),),
        time_dependent=True,
    )
