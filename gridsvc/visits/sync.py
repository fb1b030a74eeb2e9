"""Offline sync for the phone: a per-member change feed and a size estimate.

Change feed (``changes_since``): what changed in the member's territory after an opaque
cursor — visit tasks (assigned to the member or in the territory; tasks of sensitive groups
only where the member's tier may know them, ``services.hide_sensitive_tasks``), households
(head's name, no resident attribute, no tenure for neighbours; from the
:class:`~gridsvc.visits.models.ChangeLog` this app keeps, since territory models carry no
``updated_at``), and cases once the cases app has them. Each stream is read by keyset
(``(updated_at, id) > cursor`` or ``id > cursor``), so a row changed once after the cursor
appears once, and the new cursor is the last row returned.

Estimate (``phone_estimate``): counts and approximate bytes of what a member's phone will
hold, before the phone is handed out.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime
from typing import Any

from django.contrib.gis.db.models import Extent
from django.db.models import Q
from django.utils.dateparse import parse_datetime

from gridsvc.chain import visibility
from gridsvc.territory.models import Building, Household, Resident

from .models import ChangeLog, VisitTask
from .services import hide_sensitive_tasks, visible_tasks

FEED_LIMIT = 500
CURSOR_VERSION = 1


class BadCursor(ValueError):
    pass


def encode_cursor(state: dict[str, Any]) -> str:
    raw = json.dumps({"v": CURSOR_VERSION, **state}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any]:
    """Decode an opaque cursor; raise :class:`BadCursor` if it is not one of ours."""
    if not cursor:
        return {}
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = json.loads(raw)
    except (ValueError, TypeError):
        raise BadCursor("not a cursor returned by this feed") from None
    if not isinstance(state, dict) or state.get("v") != CURSOR_VERSION:
        raise BadCursor("not a cursor returned by this feed")
    for key in ("t", "c"):
        if key in state:
            v = state[key]
            try:
                ok = (
                    isinstance(v, list)
                    and len(v) == 2
                    and isinstance(v[1], int)
                    and isinstance(v[0], str)
                    and parse_datetime(v[0]) is not None
                )
            except ValueError:
                ok = False
            if not ok:
                raise BadCursor("not a cursor returned by this feed")
    if any(k in state and not isinstance(state[k], int) for k in ("h", "i")):
        raise BadCursor("not a cursor returned by this feed")
    return state


def _after(qs, mark: list | None, ts_field: str = "updated_at"):  # type: ignore[no-untyped-def]
    if not mark:
        return qs
    ts = parse_datetime(mark[0])
    return qs.filter(Q(**{f"{ts_field}__gt": ts}) | Q(**{ts_field: ts, "id__gt": mark[1]}))


def _mark(ts: datetime, pk: int) -> list:
    return [ts.isoformat(), pk]


# The columns of a task the feed sends, read as plain rows (``.values(*TASK_COLUMNS)``): a feed
# page is up to 500 tasks, and building model instances for them cost more than the query.
TASK_COLUMNS = (
    "id",
    "rule__code",
    "rule__name",
    "household_id",
    "resident_id",
    "period",
    "period_start",
    "period_end",
    "due_on",
    "status",
    "assigned_member_id",
    "done_by_id",
    "updated_at",
)


def task_payload(t: dict[str, Any]) -> dict[str, Any]:
    """The feed's form of a task row from ``VisitTask.objects.values(*TASK_COLUMNS)``."""
    return {
        "id": t["id"],
        "rule": t["rule__code"],
        "rule_name": t["rule__name"],
        "household": t["household_id"],
        "resident": t["resident_id"],
        "period": t["period"],
        "period_start": t["period_start"].isoformat(),
        "period_end": t["period_end"].isoformat(),
        "due_on": t["due_on"].isoformat(),
        "status": t["status"],
        "assigned_member": t["assigned_member_id"],
        "done_by": t["done_by_id"],
        "updated_at": t["updated_at"].isoformat(),
    }


def household_payload(h: Household) -> dict[str, Any]:
    return {
        "id": h.id,
        "unit": h.unit_id,
        "unit_number": h.unit.number,
        "building": h.unit.building_id,
        "building_name": h.unit.building.name,
        "grid": h.unit.building.grid_id,
        "room": h.room,
        "floor": h.floor,
        "tenure": h.tenure,
        "head_name": h.head.name if h.head_id else None,
        "resident_count": h.resident_count,  # type: ignore[attr-defined]
    }


def changes_since(member, scope, cursor: str | None, limit: int = FEED_LIMIT) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Changes in ``member``'s territory after ``cursor`` (see module docstring)."""
    from django.db.models import Count

    state = decode_cursor(cursor)
    new_state = dict(state)
    new_state.pop("v", None)
    more = False

    # visit tasks: in the territory or assigned to the member. Each side is read by its own
    # index up to limit + 1 rows after the cursor and the two merged: the first limit + 1 of
    # the union are among them. (One "in territory OR assigned" filter walked the whole
    # updated_at index of the city, testing every task.)
    order = ("updated_at", "id")
    if scope.everything:
        tasks_qs = _after(VisitTask.objects.all(), state.get("t"))
    else:
        sides = [
            hide_sensitive_tasks(scope.filter(VisitTask.objects.all()), scope, member),
            VisitTask.objects.filter(assigned_member=member),
        ]
        first, second = (
            _after(qs, state.get("t")).order_by(*order).values("id")[: limit + 1] for qs in sides
        )
        tasks_qs = VisitTask.objects.filter(id__in=first.union(second))
    tasks = list(tasks_qs.order_by(*order).values(*TASK_COLUMNS)[: limit + 1])
    if len(tasks) > limit:
        more, tasks = True, tasks[:limit]
    if tasks:
        new_state["t"] = _mark(tasks[-1]["updated_at"], tasks[-1]["id"])

    # households (via the change log)
    log_qs = ChangeLog.objects.filter(id__gt=state.get("h", 0))
    if not scope.everything:
        in_scope = Q(building_id_ref__in=Building.objects.filter(scope.building_q()).values("id"))
        if scope.unit_ids:
            in_scope |= Q(unit_id_ref__in=scope.unit_ids)
        log_qs = log_qs.filter(in_scope)
    logs = list(log_qs.order_by("id").values_list("id", "household_id_ref")[: limit + 1])
    if len(logs) > limit:
        more, logs = True, logs[:limit]
    if logs:
        new_state["h"] = logs[-1][0]
    hh_ids = list(dict.fromkeys(h for _, h in logs))
    found = {
        h.id: h
        for h in scope.filter(Household.objects.filter(id__in=hh_ids))
        .select_related("unit__building", "head")
        # household_payload reads neither the building's geometries nor the head's
        # encrypted fields: not fetched, not decoded
        .defer(
            "unit__building__footprint",
            "unit__building__point",
            "head__id_number",
            "head__phone",
        )
        .annotate(resident_count=Count("residents"))
    }
    seen = visibility.Viewer(member, scope)
    seen.prime(Household, list(found))
    households = [
        visibility.present_household(household_payload(found[h]), seen.tier_of(found[h]))
        if h in found
        else {"id": h, "deleted": True}
        for h in hh_ids
    ]

    # cases (once the cases app has them)
    cases: list[dict[str, Any]] = []
    case_rows = _case_changes(scope, state.get("c"), limit)
    if case_rows is not None:
        if len(case_rows) > limit:
            more, case_rows = True, case_rows[:limit]
        cases = [_case_payload(c) for c in case_rows]
        if case_rows:
            new_state["c"] = _mark(case_rows[-1].updated_at, case_rows[-1].id)

    # the member's inbox (new cases, cards, escalations, decisions)
    from gridsvc.supervision.models import InboxMessage

    msgs = list(
        InboxMessage.objects.filter(member=member, id__gt=state.get("i", 0)).order_by("id")[
            : limit + 1
        ]
    )
    if len(msgs) > limit:
        more, msgs = True, msgs[:limit]
    if msgs:
        new_state["i"] = msgs[-1].id

    return {
        "cursor": encode_cursor(new_state),
        "has_more": more,
        "inbox": [
            {
                "id": m.id,
                "kind": m.kind,
                "title": m.title,
                "body": m.body,
                "object_type": m.object_type,
                "object_id": m.object_id,
                "created_at": m.created_at.isoformat(),
                "read": m.read_at is not None,
            }
            for m in msgs
        ],
        "tasks": [task_payload(t) for t in tasks],
        "households": households,
        "cases": cases,
        "cases_available": case_rows is not None,
    }


def _case_model():  # type: ignore[no-untyped-def]
    try:
        from gridsvc.cases.models import Case  # type: ignore[attr-defined]
    except ImportError:
        return None
    if not any(f.name == "updated_at" for f in Case._meta.get_fields()):
        return None
    return Case


def _case_changes(scope, mark, limit: int):  # type: ignore[no-untyped-def]
    Case = _case_model()
    if Case is None:
        return None
    try:
        qs = scope.filter(Case.objects.all())
    except TypeError:  # no scope rule for cases yet: send none rather than leak
        return None
    # only the columns _case_payload reads (a case row is wide: texts, JSON, encrypted parties)
    fields = {f.attname for f in Case._meta.concrete_fields}
    read = [
        n for n in ("id", "updated_at", *_CASE_FIELDS, *_CASE_REFS, *_CASE_POINTS) if n in fields
    ]
    return list(_after(qs, mark).only(*read).order_by("updated_at", "id")[: limit + 1])


_CASE_FIELDS = ("number", "code", "title", "category_id", "state", "status", "level")
_CASE_REFS = ("household_id", "building_id", "grid_id")
_CASE_POINTS = ("location", "point")


def _case_payload(c) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    out: dict[str, Any] = {"id": c.id, "updated_at": c.updated_at.isoformat()}
    for name in _CASE_FIELDS:
        if hasattr(c, name):
            value = getattr(c, name)
            out[name] = value if isinstance(value, str | int | None) else str(value)
    for name in _CASE_REFS:
        if hasattr(c, name):
            out[name.removesuffix("_id")] = getattr(c, name)
    loc = getattr(c, "location", None) or getattr(c, "point", None)
    if loc is not None and hasattr(loc, "x"):
        out["lon"], out["lat"] = round(loc.x, 6), round(loc.y, 6)
    return out


# ---------------------------------------------------------------- phone size estimate
# Approximate JSON size of one record on the phone (measured on the demo street's payloads).
BYTES_PER = {
    "households": 260,
    "residents": 420,
    "buildings": 900,  # incl. footprint
    "tasks": 380,
    "cases": 900,
}
TILE_ZOOMS = range(14, 19)
BYTES_PER_TILE = 12_000


def _tiles_for_bbox(bbox: tuple[float, float, float, float] | None) -> int:
    if bbox is None:
        return 0

    def tile(lon: float, lat: float, z: int) -> tuple[int, int]:
        n = 2**z
        x = int((lon + 180.0) / 360.0 * n)
        lat_r = math.radians(max(min(lat, 85.0511), -85.0511))
        y = int((1.0 - math.asinh(math.tan(lat_r)) / math.pi) / 2.0 * n)
        return min(x, n - 1), min(y, n - 1)

    total = 0
    for z in TILE_ZOOMS:
        x0, y1 = tile(bbox[0], bbox[1], z)
        x1, y0 = tile(bbox[2], bbox[3], z)
        total += (x1 - x0 + 1) * (y1 - y0 + 1)
    return total


def phone_estimate(member, scope) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Counts and approximate bytes of what ``member``'s phone will hold (their territory)."""
    buildings = scope.filter(Building.objects.all())
    counts = {
        "households": scope.filter(Household.objects.all()).count(),
        "residents": scope.filter(Resident.objects.all()).count(),
        "buildings": buildings.count(),
        "tasks": visible_tasks(scope, member)
        .filter(status__in=[VisitTask.Status.OPEN, VisitTask.Status.OVERDUE])
        .count(),
    }
    Case = _case_model()
    if Case is not None:
        try:
            counts["cases"] = scope.filter(Case.objects.all()).count()
        except TypeError:
            pass
    bbox = buildings.aggregate(e=Extent("footprint"))["e"]
    tiles = _tiles_for_bbox(bbox)
    by_kind = {k: n * BYTES_PER[k] for k, n in counts.items()}
    by_kind["tiles"] = tiles * BYTES_PER_TILE
    return {
        "member": member.id,
        "counts": {**counts, "tiles": tiles},
        "bytes": by_kind,
        "total_bytes": sum(by_kind.values()),
        "tile_zooms": [TILE_ZOOMS.start, TILE_ZOOMS.stop - 1],
        "bbox": list(bbox) if bbox else None,
        "note": "approximate: record sizes measured on the demo street; tiles at z14–18",
    }
