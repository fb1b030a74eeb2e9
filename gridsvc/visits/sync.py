"""Offline sync for the phone: a per-member change feed and a size estimate.

Change feed (:func:`changes_since`), see docs/sync.md for the protocol:

- **First sync** (no cursor): everything the phone needs, read from the tables as they are
  (however the rows got there — bulk COPY, imports, the demo loader, the admin): households
  with their resident ids, residents (through the visibility matrix, never unmasked), visit
  tasks (open and overdue, plus those whose period ended in the last
  :data:`DONE_WINDOW_DAYS` days), cases in the territory or handled/reported by the member
  (open ones, plus those reported or closed in the last :data:`CASE_WINDOW_DAYS` days) with
  handler and due date, and the inbox. Each stream is paged by id; the cursor says where.
- **Incremental sync**: what changed after the cursor — tasks and cases by keyset
  (``(updated_at, id)``), households and their residents from the
  :class:`~gridsvc.visits.models.ChangeLog`, inbox messages by id and read-state changes by
  ``(read_at, id)``.
- **Territory changes**: the cursor names the :class:`~gridsvc.chain.models.TerritorySnapshot`
  the phone holds. When the member's territory now differs (hand-over, leaving a post, a new
  position, a building moved to another grid by a boundary re-import), the feed first runs a
  *territory job*: ``purge`` lists, by type and id, what the phone held and may no longer
  hold (as CHT purges), and the households, residents, tasks and cases newly in the territory
  are sent as in a first sync. Then the incremental streams go on from where they were.

Cursors are opaque, signed for the member they were given to (a cursor of someone else, or
one altered, is refused), and carry the job's progress, so a phone can resume paging after a
lost response by sending the last cursor again.

Estimate (``phone_estimate``): counts and approximate bytes of what a member's phone will
hold, before the phone is handed out.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
from django.contrib.gis.db.models import Extent
from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import Max, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from gridsvc.chain import visibility
from gridsvc.chain.models import TerritorySnapshot
from gridsvc.chain.scope import LOCATED_MODELS, Scope
from gridsvc.sync.cursor import (
    BAD_CURSOR,
    CURSOR_VERSION,
    BadCursor,
    cursor_again,
    decode_cursor,
    encode_cursor,
    keyset_mark,
    rows_after,
)
from gridsvc.territory.codes import ETHNICITIES, mask_id_number, mask_name, mask_phone
from gridsvc.territory.models import Building, Household, Resident

from .models import ChangeLog, VisitTask
from .services import hide_sensitive_tasks, visible_tasks

FEED_LIMIT = 500
#: done and missed tasks whose period ended within this many days come with a first sync
DONE_WINDOW_DAYS = 30
#: closed (resolved, rejected …) cases reported or closed within this many days come too
CASE_WINDOW_DAYS = 30


# ---------------------------------------------------------------- territory snapshots
_SCOPE_KEYS = ("street", "community", "grid", "compound", "building", "unit", "unit_building")


def territory_data(member, scope: Scope) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """What decides which records (and which of their facts) ``member``'s phone holds:
    the buildings whose households they see, with each building's grid (so a building moved
    to another grid counts as a change), the units (unit heads), the positions' territory
    ids (cases are placed by their own street/…/unit fields), the tier and where sensitive
    facts may be known (``staff``: "all", none, or the buildings of the staff part), and what
    the member holds only because it is theirs, outside their territory (``tasks_out``: open
    tasks assigned to them; ``cases_out``: open cases they handle — when one is handed to
    someone else the snapshot changes and the feed purges it). One query (:func:`_probe`)."""
    if scope.everything:
        return {"all": True}
    return _probe(member, scope, {})[0]


def _digest(data: dict[str, Any]) -> str:
    # orjson writes the standard library's sorted compact JSON byte for byte when it is
    # ASCII (the territory's data: integers and short ASCII strings); else the library's
    try:
        raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        raw = b""
    if not raw or not raw.isascii() or b"." in raw:
        raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()


def territory_snapshot(member, scope: Scope) -> TerritorySnapshot:  # type: ignore[no-untyped-def]
    """The (shared, immutable) snapshot row of ``member``'s territory now."""
    data = territory_data(member, scope)
    snap, _ = TerritorySnapshot.objects.get_or_create(digest=_digest(data), defaults={"data": data})
    return snap


# ---------------------------------------------------------------- the probe
# What a feed request needs to know before building anything, as ONE statement (prepared on
# the connection, :mod:`gridsvc.prepared`): the member's territory as
# :func:`territory_data` describes it (position types → tier, the buildings in scope with
# their grids, the staff part's buildings, open tasks and cases held outside the territory),
# the digest of the snapshot the cursor names, and whether anything may have changed after
# the cursor's marks (tasks, the households' change log, cases, inbox messages and their read
# state). "Nothing new" is answered from it alone (issue 19: it was 13 queries). The flags
# are a superset of what the streams send (a task hidden from a neighbour counts as a
# change): when one is set the streams are read as before and decide.
# It runs with its generic plan, planned once per connection (gridsvc.prepared.
# fetchone_generic: PostgreSQL re-planned it on every poll, 1.5 ms to run in 0.3), so every
# part is written to be read by an index whatever the arrays hold: ``= ANY(ARRAY(subquery))``
# rather than joins, and scalar subqueries rather than EXISTS (which became joins over every
# household, or every task, in the generic plan).
_PROBE: str | None = None


def _probe_sql() -> str:
    global _PROBE
    if _PROBE is None:
        from gridsvc.chain.models import Position
        from gridsvc.supervision.models import InboxMessage
        from gridsvc.territory.models import Community, Grid, Unit

        t = {
            "b": Building._meta.db_table,
            "g": Grid._meta.db_table,
            "c": Community._meta.db_table,
            "u": Unit._meta.db_table,
            "h": Household._meta.db_table,
            "p": Position._meta.db_table,
            "t": VisitTask._meta.db_table,
            "l": ChangeLog._meta.db_table,
            "i": InboxMessage._meta.db_table,
            "s": TerritorySnapshot._meta.db_table,
        }
        # a task's household in the territory: a scalar subquery per task (an EXISTS became an
        # anti/semi join over every household in the generic plan)
        in_scope_task = f"""COALESCE((SELECT true FROM {t["h"]} h JOIN {t["u"]} u ON u.id = h.unit_id
                      WHERE h.id = t.household_id
                        AND (u.building_id IN (SELECT id FROM b) OR u.id = ANY(%(units)s))
                      LIMIT 1), false)"""
        cases = out_cases = "NULL::jsonb"
        case_flag = "false"
        Case = _case_model()
        if Case is not None:
            located = """COALESCE(c.street_id = ANY(%(streets)s) OR c.community_id = ANY(%(communities)s)
                 OR c.grid_id = ANY(%(grids)s) OR c.compound_id = ANY(%(compounds)s)
                 OR c.building_id = ANY(%(buildings)s) OR c.unit_id = ANY(%(units)s), false)"""
            out_cases = f"""(SELECT COALESCE(jsonb_agg(c.id ORDER BY c.id), '[]') FROM {Case._meta.db_table} c
     WHERE c.handler_id = %(m)s AND c.status = ANY(%(case_open)s) AND NOT {located})"""
            case_flag = f"""(SELECT c.id FROM {Case._meta.db_table} c
     WHERE (c.updated_at, c.id) > (%(c_ts)s, %(c_id)s)
       AND (c.handler_id = %(m)s OR c.reported_by_id = %(m)s OR {located})
     ORDER BY c.updated_at LIMIT 1) IS NOT NULL"""
            cases = out_cases
        packages = "NULL::jsonb"
        try:
            from gridsvc.layers.models import GridChange, OfflinePackage
        except ImportError:  # pragma: no cover - no offline packages
            pass
        else:
            # the packages of the grids held whole (gridsvc.layers.services.whole_grid_ids),
            # as gridsvc.layers.offline.package_states reads them; built_at in microseconds
            packages = f"""(SELECT COALESCE(jsonb_agg(jsonb_build_array(
        o.grid_id, (SELECT g.code FROM {t["g"]} g WHERE g.id = o.grid_id), o.crs, o.etag, o.size,
        (extract(epoch FROM o.built_at) * 1000000)::bigint,
        EXISTS (SELECT 1 FROM {GridChange._meta.db_table} x WHERE x.grid_id = o.grid_id))
        ORDER BY o.grid_id, o.crs), '[]')
     FROM {OfflinePackage._meta.db_table} o
     WHERE o.etag <> '' AND o.grid_id = ANY(ARRAY(SELECT id FROM wg)))"""
        # wg: the grids held whole (the grids, the communities' and the streets' grids); every
        # part read by an index whatever the arrays hold (ARRAY(subquery) feeds "= ANY")
        _PROBE = f"""WITH wg AS MATERIALIZED (
  SELECT id FROM {t["g"]} WHERE id = ANY(%(grids)s)
  UNION SELECT id FROM {t["g"]} WHERE community_id = ANY(%(communities)s)
  UNION SELECT id FROM {t["g"]} WHERE community_id = ANY(ARRAY(
        SELECT id FROM {t["c"]} WHERE street_id = ANY(%(streets)s)))
), b AS MATERIALIZED (
  SELECT id, grid_id, true AS staff FROM {t["b"]} WHERE grid_id = ANY(ARRAY(SELECT id FROM wg))
  UNION SELECT id, grid_id, false FROM {t["b"]} WHERE compound_id = ANY(%(compounds)s)
  UNION SELECT id, grid_id, false FROM {t["b"]} WHERE id = ANY(%(buildings)s)
)
SELECT
  ARRAY(SELECT DISTINCT p.position_type FROM {t["p"]} p WHERE p.member_id = %(m)s
        AND p.valid_from <= %(now)s AND (p.valid_to IS NULL OR p.valid_to > %(now)s)),
  (SELECT COALESCE(jsonb_agg(jsonb_build_array(x.id, x.grid_id) ORDER BY x.id), '[]')
     FROM (SELECT DISTINCT id, grid_id FROM b) x),
  (SELECT COALESCE(jsonb_agg(x.id ORDER BY x.id), '[]') FROM (SELECT DISTINCT id FROM b WHERE staff) x),
  (SELECT COALESCE(jsonb_agg(t.id ORDER BY t.id), '[]') FROM {t["t"]} t
     WHERE t.assigned_member_id = %(m)s AND t.status = ANY(%(task_open)s)
       AND NOT {in_scope_task}),
  {cases},
  (SELECT s.digest FROM {t["s"]} s WHERE s.id = %(s)s),
  {packages},
  %(t_ts)s IS NOT NULL AND (
    EXISTS (SELECT 1 FROM {t["t"]} t WHERE (t.updated_at, t.id) > (%(t_ts)s, %(t_id)s)
            AND t.assigned_member_id = %(m)s)
    OR (SELECT t.id FROM {t["t"]} t WHERE (t.updated_at, t.id) > (%(t_ts)s, %(t_id)s)
        AND {in_scope_task} ORDER BY t.updated_at, t.id LIMIT 1) IS NOT NULL
    OR (SELECT l.id FROM {t["l"]} l WHERE l.id > %(h)s
        AND (l.building_id_ref IN (SELECT id FROM b) OR l.unit_id_ref = ANY(%(units)s))
        ORDER BY l.id LIMIT 1) IS NOT NULL
    OR {case_flag}
    OR EXISTS (SELECT 1 FROM {t["i"]} i WHERE i.member_id = %(m)s AND i.id > %(i)s)
    OR EXISTS (SELECT 1 FROM {t["i"]} i WHERE i.member_id = %(m)s AND i.id <= %(i)s
               AND i.read_at IS NOT NULL AND (i.read_at, i.id) > (%(r_ts)s, %(r_id)s))
  )"""
        for name, kind in _PROBE_TYPES.items():
            _PROBE = _PROBE.replace(f"%({name})s", f"%({name})s::{kind}")
    return _PROBE


_RIDER: str | None = None


def _probe_rider_sql() -> str:
    """The probe as a rider of the caller's query (:class:`gridsvc.accounts.authentication.
    Rider`): the member is the caller's row ``u`` and the territory's arrays are read from
    the positions ``u`` holds at the caller query's time — the positions the authentication
    reads for the request's scope, at the same instant, so the arrays are the scope's. No
    row for a superuser (their feed reads everything, not the probe)."""
    global _RIDER
    if _RIDER is None:
        from gridsvc.chain.models import Position

        # (the probe names units ``u`` too: the member is read from ``sc``, never as u.id)
        body = _probe_sql().replace("%(m)s::bigint", "(SELECT me FROM sc)")
        for name in _PROBE_ARRAYS:
            body = body.replace(f"%({name})s::bigint[]", f"(SELECT {name} FROM sc)::bigint[]")
        assert body.startswith("WITH wg AS MATERIALIZED (")
        arrays = ",\n  ".join(
            f"ARRAY(SELECT {key}_id FROM pos WHERE {key}_id IS NOT NULL) AS {name}"
            for name, key in _PROBE_ARRAYS.items()
        )
        _RIDER = f"""SELECT q.* FROM (WITH pos AS MATERIALIZED (
  SELECT p.street_id, p.community_id, p.grid_id, p.compound_id, p.building_id, p.unit_id
  FROM {Position._meta.db_table} p WHERE p.member_id = u.id AND p.valid_from <= %(now)s::timestamptz
    AND (p.valid_to IS NULL OR p.valid_to > %(now)s::timestamptz)
), sc AS MATERIALIZED (SELECT u.id AS me,
  {arrays}
), {body.removeprefix("WITH ")}) q WHERE NOT u.is_superuser"""
    return _RIDER


# ---------------------------------------------------------------- the probe as a function
# The probe is also installed as a PL/pgSQL function (``gridsvc_feed_probe_<hash>``, by
# :func:`install_probe_function` after every ``migrate``: gridsvc.sync.apps), declared with
# ``SET plan_cache_mode = force_generic_plan``: PL/pgSQL keeps each statement's plan per
# connection, the function's SET is undone when it returns (nothing of it stays in the
# session: fine behind PgBouncer in transaction mode too), and no SET/RESET is sent around
# the statement (issue 19: 0.8 → 0.6 ms for a quiet poll's statement on the demo street).
# Inside it the grids held whole and the buildings of the territory are read first, into
# arrays (the parts of the territory the member does not hold are not read at all), then
# the probe's row. Its body is built from :func:`_probe_sql` (one source: the same parts,
# the same answer, tests/test_probe_function.py); its name carries the hash of its text, so
# code and database never disagree: until ``migrate`` installs the current one, the feed
# sends the statement itself (:func:`probe_function`).
_FN_PREFIX = "gridsvc_feed_probe_"
#: the function's arguments, in order (types: _PROBE_TYPES)
_FN_ARGS = ("m", "now", "streets", "communities", "grids", "compounds", "buildings", "units",
            "task_open", "case_open", "s", "t_ts", "t_id", "c_ts", "c_id", "h", "i", "r_ts",
            "r_id")  # fmt: skip
_FUNCTION: tuple[str, str] | None = None
_FUNCTION_READY: dict[str, bool] = {}


def probe_function_sql() -> tuple[str, str]:
    """``(name, CREATE OR REPLACE FUNCTION …)`` of the probe as a function (built once per
    process): called with the member, the time and the territory's arrays (NULL arrays: the
    positions the member holds at that time), it answers the row of :func:`_probe_sql`."""
    global _FUNCTION
    if _FUNCTION is not None:
        return _FUNCTION
    from gridsvc.chain.models import Position
    from gridsvc.territory.models import Grid

    assert sorted(_FN_ARGS) == sorted(_PROBE_TYPES), "every parameter of the probe, once"
    body = _probe_sql()
    for name, kind in _PROBE_TYPES.items():
        body = body.replace(f"%({name})s::{kind}", f"p_{name}")
    assert "%(" not in body
    head, sel = body.split("\nSELECT\n", 1)
    wg, _, b = head.removeprefix("WITH wg AS MATERIALIZED (\n").partition(
        "\n), b AS MATERIALIZED (\n"
    )
    assert "grid_id = ANY(ARRAY(SELECT id FROM wg))" in b
    b = b.removesuffix("\n)").replace("ARRAY(SELECT id FROM wg)", "v_wg")
    wg_unions, b_unions = wg.split("\n  UNION "), b.split("\n  UNION ")
    assert len(wg_unions) == 3 and len(b_unions) == 3, head
    assert wg_unions[0].strip() == f"SELECT id FROM {Grid._meta.db_table} WHERE id = ANY(p_grids)"
    assert " true AS staff " in b_unions[0] and "grid_id = ANY(v_wg)" in b_unions[0]
    for old, new in (
        ("(SELECT DISTINCT id, grid_id FROM b) x", "unnest(v_bid, v_bgrid) x(id, grid_id)"),
        ("(SELECT DISTINCT id FROM b WHERE staff) x", "unnest(v_staff) x(id)"),
        ("IN (SELECT id FROM b)", "IN (SELECT unnest(v_bid))"),
        ("ARRAY(SELECT id FROM wg)", "v_wg"),
    ):
        assert old in sel, old
        sel = sel.replace(old, new)
    assert "FROM b" not in sel and "FROM wg" not in sel
    args = ", ".join(f"p_{n} {_PROBE_TYPES[n]}" for n in _FN_ARGS)
    held = ", ".join(f"p_{n}" for n in _PROBE_ARRAYS)
    from_positions = ",\n           ".join(
        f"COALESCE(array_agg(p.{key}_id) FILTER (WHERE p.{key}_id IS NOT NULL), '{{}}')"
        for key in _PROBE_ARRAYS.values()
    )
    text = f"""(
  {args}
) RETURNS TABLE (o_types text[], o_buildings jsonb, o_staff jsonb, o_tasks_out jsonb,
  o_cases_out jsonb, o_digest text, o_packages jsonb, o_changed boolean)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $probe$
DECLARE
  v_wg bigint[];
  v_bid bigint[];
  v_bgrid bigint[];
  v_staff bigint[];
BEGIN
  IF p_streets IS NULL THEN  -- the positions the member holds at p_now
    SELECT {from_positions}
      INTO {held}
      FROM {Position._meta.db_table} p WHERE p.member_id = p_m AND p.valid_from <= p_now
       AND (p.valid_to IS NULL OR p.valid_to > p_now);
  END IF;
  -- the grids held whole
  IF cardinality(p_streets) = 0 AND cardinality(p_communities) = 0 THEN
    v_wg := ARRAY({wg_unions[0].strip()});
  ELSE
    v_wg := ARRAY({wg});
  END IF;
  -- the buildings of the territory with their grids; staff: those of the grids held whole
  IF cardinality(p_compounds) = 0 AND cardinality(p_buildings) = 0 THEN
    SELECT array_agg(x.id ORDER BY x.id), array_agg(x.grid_id ORDER BY x.id),
           array_agg(x.id ORDER BY x.id)
      INTO v_bid, v_bgrid, v_staff
      FROM ({b_unions[0].strip()}) x;
  ELSE
    SELECT array_agg(x.id ORDER BY x.id), array_agg(x.grid_id ORDER BY x.id),
           array_agg(x.id ORDER BY x.id) FILTER (WHERE x.staff)
      INTO v_bid, v_bgrid, v_staff
      FROM (SELECT y.id, y.grid_id, bool_or(y.staff) AS staff
              FROM ({b}) y GROUP BY y.id, y.grid_id) x;
  END IF;
  v_bid := COALESCE(v_bid, '{{}}');
  v_bgrid := COALESCE(v_bgrid, '{{}}');
  v_staff := COALESCE(v_staff, '{{}}');
  RETURN QUERY SELECT q.a::text[], q.b, q.c, q.d, q.e, q.f::text, q.g, q.h FROM (SELECT
{sel}) q(a, b, c, d, e, f, g, h);
END
$probe$"""
    name = _FN_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:12]
    _FUNCTION = name, f"CREATE OR REPLACE FUNCTION {name}{text}"
    return _FUNCTION


def install_probe_function(using: str = "default") -> str:
    """Install the probe's function (:func:`probe_function_sql`) in database ``using``; its
    name. Run after every ``migrate`` (gridsvc.sync.apps): a changed probe gets a new name,
    the older functions stay for processes still running the older code."""
    from django.db import connections

    name, create = probe_function_sql()
    with connections[using].cursor() as cur:
        cur.execute(create)
    _FUNCTION_READY[using] = True
    return name


def probe_function(using: str = "default") -> str | None:
    """The name of the probe's function when database ``using`` has it (looked up once per
    process), else None: the probe is sent as a statement (:func:`_probe_sql`)."""
    ready = _FUNCTION_READY.get(using)
    if ready is None:
        from django.db import connections

        with connections[using].cursor() as cur:
            cur.execute("SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = %s)",
                        [probe_function_sql()[0]])  # fmt: skip
            ready = _FUNCTION_READY[using] = bool(cur.fetchone()[0])
    return probe_function_sql()[0] if ready else None


def _open_statuses_sql(values: list[str]) -> str:
    """A text array literal of status codes (code constants, not input)."""
    assert all(v.replace("_", "").isalnum() and v.isascii() for v in values), values
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]::text[]"


_FN_RIDER: str | None = None


def _probe_function_rider_sql() -> str:
    """The probe's function as a rider of the caller's query: the member is the caller's
    row ``u``, the territory the positions ``u`` holds at the caller query's time (as
    :func:`_probe_rider_sql`); the open statuses are constants of the statement."""
    global _FN_RIDER
    if _FN_RIDER is None:
        consts = _probe_params({})
        args = []
        for n in _FN_ARGS:
            if n == "m":
                args.append("u.id")
            elif n in _PROBE_ARRAYS:
                args.append("NULL::bigint[]")
            elif n in ("task_open", "case_open"):
                args.append(_open_statuses_sql(consts[n]))
            else:
                args.append(f"%({n})s::{_PROBE_TYPES[n]}")
        _FN_RIDER = (
            f"SELECT q.* FROM {probe_function_sql()[0]}({', '.join(args)}) q"
            " WHERE NOT u.is_superuser"
        )
    return _FN_RIDER


def cursor_state_unchecked(cursor: str) -> dict[str, Any] | None:
    """The state ``cursor`` names, its signature NOT checked (None: not a cursor): for the
    probe's parameters before the caller is known. The feed decodes and checks the cursor
    again after authentication and uses the probe's row only then."""
    body = cursor.partition(".")[0]
    try:
        state = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, TypeError):
        return None
    if not isinstance(state, dict) or state.pop("v", None) != CURSOR_VERSION:
        return None
    return state


def probe_rider_statement(cursor: str | None) -> tuple[str, dict[str, Any], bool] | None:
    """``(sql, params, generic)`` of the probe for a poll after ``cursor`` (None: a first
    sync), to ride with the caller's query (one round trip for a quiet poll, and one fewer
    for a first sync, issue 19; ``generic``: the statement must run with its generic plan,
    :class:`gridsvc.accounts.authentication.Rider`); None when ``cursor`` is not one. The
    probe's function when the database has it (:func:`probe_function`), else the probe's
    statement."""
    state = cursor_state_unchecked(cursor) if cursor is not None else {}
    if state is None:
        return None
    try:
        params = _probe_params(state)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError):
        return None
    del params["m"], params["now"]  # the caller's row and the caller query's time
    if probe_function() is not None:
        del params["task_open"], params["case_open"]  # constants of the statement
        return _probe_function_rider_sql(), params, False
    return _probe_rider_sql(), params, True


def _probe_params(state: dict[str, Any]) -> dict[str, Any]:
    """The probe's parameters for ``state`` but the member (``m``), the time (``now``) and
    the territory's arrays."""

    def mark(key: str) -> tuple[datetime | None, int]:
        m = state.get(key)
        return (parse_datetime(m[0]), int(m[1])) if m else (None, 0)

    (t_ts, t_id), (c_ts, c_id), (r_ts, r_id) = mark("t"), mark("c"), mark("r")
    open_cases: list[str] = []
    if _case_model() is not None:
        from gridsvc.cases.models import OPEN_STATUSES, Status

        open_cases = [str(s) for s in (*OPEN_STATUSES, Status.ON_HOLD)]
    return {
        "m": None,
        "now": None,
        "task_open": [str(VisitTask.Status.OPEN), str(VisitTask.Status.OVERDUE)],
        "case_open": open_cases,
        "s": state.get("s"),
        "t_ts": t_ts if state else None,
        "t_id": t_id,
        "c_ts": c_ts,
        "c_id": c_id,
        "h": int(state.get("h", 0)),
        "i": int(state.get("i", 0)),
        "r_ts": r_ts,
        "r_id": r_id,
    }


def _probe(
    member, scope: Scope, state: dict[str, Any], row: tuple | None = None
) -> tuple[dict[str, Any], str | None, bool, Any]:  # type: ignore[no-untyped-def]
    """``(territory data, digest of the cursor's snapshot or None, maybe changed since the
    cursor's marks, rows of the offline packages held)`` in one statement (see
    :func:`_probe_sql`); ``scope`` not everything. ``row``: the probe's row for ``state``
    and ``scope`` already read (it rode with the caller's query)."""
    from gridsvc.prepared import fetchone, fetchone_generic

    if row is None:
        params = _probe_params(state)
        params["m"] = member.pk
        params["now"] = timezone.now()
        params.update({k: sorted(getattr(scope, f"{key}_ids")) for k, key in _PROBE_ARRAYS.items()})
        function = probe_function()
        if function is not None:
            args = ", ".join(f"%({n})s::{_PROBE_TYPES[n]}" for n in _FN_ARGS)
            row = fetchone(f"SELECT * FROM {function}({args})", params)
        else:
            row = fetchone_generic(_probe_sql(), params)
    assert row is not None
    types, digest, changed = row[0], row[5], row[7]
    # jsonb comes back as text on Django's connection
    buildings, staff_ids, tasks_out, cases_out, packages = (
        json.loads(v) if isinstance(v, str) else v for v in (*row[1:5], row[6])
    )
    if getattr(member, "_gridsvc_tier", None) is None:
        # as visibility.tier_for finds and caches it (a tier already cached on the member
        # object is kept, as tier_for keeps it)
        types = set(types)
        tier = visibility.tier_of_positions(types, superuser=bool(member.is_superuser))
        member._gridsvc_tier = tier
        member._gridsvc_mixed = tier > visibility.Tier.NEIGHBOUR and bool(
            types & visibility.NEIGHBOUR_POSITIONS
        )
    tier = member._gridsvc_tier
    staff: str | list[int]
    if not visibility.knows_sensitive(tier):
        staff = []
    elif member._gridsvc_mixed:
        staff = staff_ids
    else:
        staff = "all"
    data = {
        "tier": int(tier),
        "scope": {k: sorted(getattr(scope, f"{k}_ids")) for k in _SCOPE_KEYS},
        "buildings": buildings,
        "units": sorted(scope.unit_ids),
        "staff": staff,
        "tasks_out": tasks_out,
    }
    if cases_out is not None:
        data["cases_out"] = cases_out
    return data, digest, bool(changed), packages


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _package_payloads(rows: list[list[Any]] | None) -> list[dict[str, Any]]:
    """The offline packages from the probe's rows, as
    :func:`gridsvc.layers.offline.package_states` writes them (tests/test_request_cost_feed.py
    holds the two equal)."""
    if not rows:
        return []
    from gridsvc.layers.offline import CRS

    out = []
    for grid, code, crs, etag, size, built_us, stale in sorted(
        rows, key=lambda r: (r[0], CRS.index(r[2]))
    ):
        query = "" if crs == "wgs84" else f"?crs={crs}"
        built = None if built_us is None else _EPOCH + timedelta(microseconds=built_us)
        out.append(
            {
                "grid": grid,
                "code": code,
                "crs": crs,
                "etag": etag,
                "size": size,
                "built_at": built.isoformat() if built else None,
                "stale": stale,
                "download": f"/api/v1/offline/grids/{grid}/package{query}",
            }
        )
    return out


_PROBE_ARRAYS = {
    "streets": "street",
    "communities": "community",
    "grids": "grid",
    "compounds": "compound",
    "buildings": "building",
    "units": "unit",
}
# the type of each parameter (a prepared statement's parameters are typed once)
_PROBE_TYPES = {
    **dict.fromkeys(_PROBE_ARRAYS, "bigint[]"),
    **dict.fromkeys(("task_open", "case_open"), "text[]"),
    **dict.fromkeys(("now", "t_ts", "c_ts", "r_ts"), "timestamptz"),
    **dict.fromkeys(("m", "s", "t_id", "c_id", "h", "i", "r_id"), "bigint"),
}


def _scope_of(data: dict[str, Any]) -> Scope:
    if data.get("all"):
        return Scope(everything=True)
    return Scope(**{f"{k}_ids": set(data["scope"][k]) for k in _SCOPE_KEYS})


def _held_q(data: dict[str, Any], prefix: str = "") -> Q:
    """Households (at ``prefix``, e.g. ``household__``) a snapshot's territory held."""
    if data.get("all"):
        return Q()
    q = Q(**{f"{prefix}unit__building__in": [b for b, _ in data["buildings"]]})
    if data["units"]:
        q |= Q(**{f"{prefix}unit__in": data["units"]})
    return q


def _held_tasks_q(data: dict[str, Any]) -> Q:
    """Tasks a snapshot's territory showed: of its households, sensitive groups only where
    its tier could know them (a neighbour never learns even the id of such a task)."""
    q = _held_q(data, "household__")
    if not data.get("all") and data["staff"] != "all":
        ok = ~Q(rule__target_group__in=visibility.SENSITIVE_TAGS)
        if data["staff"]:
            ok |= Q(household__unit__building__in=data["staff"])
        q &= ok
    if data.get("tasks_out"):
        q |= Q(id__in=data["tasks_out"])
    return q


def _held_cases_q(data: dict[str, Any]) -> Q:
    """Cases a snapshot's territory showed (by the case's place, or its building)."""
    if data.get("all"):
        return Q()
    q = _scope_of(data).located_q() | Q(building__in=[b for b, _ in data["buildings"]])
    if data.get("cases_out"):
        q |= Q(id__in=data["cases_out"])
    return q


def _gained_q(new: dict[str, Any], old: dict[str, Any], prefix: str = "") -> Q:
    """Households (at ``prefix``) in ``new``'s buildings or units that ``old`` did not hold
    as they are now (a building that changed grid is sent again)."""
    before = {tuple(p) for p in old["buildings"]}
    gained_b = [b for b, g in new["buildings"] if (b, g) not in before]
    q = Q(**{f"{prefix}unit__building__in": gained_b})
    gained_u = sorted(set(new["units"]) - set(old["units"]))
    if gained_u:
        q |= Q(**{f"{prefix}unit__in": gained_u})
    return q


def _needs_full(new: dict[str, Any], bases: list[dict[str, Any]]) -> bool:
    """Whether a territory job re-sends the whole territory (first sync, a change of tier or
    of where sensitive facts may be known, or a job interrupted by another change)."""
    if len(bases) != 1:
        return True
    old = bases[0]
    if old.get("all") or new.get("all"):
        return True
    return old["tier"] != new["tier"] or old["staff"] != new["staff"]


# ---------------------------------------------------------------- payloads
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


def task_payloads(rows: list[tuple]) -> list[dict[str, Any]]:
    """:func:`task_payload` of each row of ``values_list(*TASK_COLUMNS)`` (tuples in
    :data:`TASK_COLUMNS` order), no dict per row in between."""
    return [
        {
            "id": pk,
            "rule": rule,
            "rule_name": rule_name,
            "household": household,
            "resident": resident,
            "period": period,
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "due_on": due.isoformat(),
            "status": status,
            "assigned_member": assigned,
            "done_by": done_by,
            "updated_at": updated.isoformat(),
        }
        for (
            pk,
            rule,
            rule_name,
            household,
            resident,
            period,
            start,
            end,
            due,
            status,
            assigned,
            done_by,
            updated,
        ) in rows  # fmt: skip
    ]


# The columns of a household the feed sends, read as a plain row (with its resident ids).
HOUSEHOLD_COLUMNS = (
    "id",
    "unit_id",
    "unit__number",
    "unit__building_id",
    "unit__building__name",
    "unit__building__grid_id",
    "room",
    "floor",
    "tenure",
    "head_id",
    "head__name",
)


def household_payload(h: dict[str, Any]) -> dict[str, Any]:
    """The feed's form of a household row (:data:`HOUSEHOLD_COLUMNS` and ``resident_ids``)."""
    ids = sorted(i for i in (h["resident_ids"] or []) if i is not None)
    return {
        "id": h["id"],
        "unit": h["unit_id"],
        "unit_number": h["unit__number"],
        "building": h["unit__building_id"],
        "building_name": h["unit__building__name"],
        "grid": h["unit__building__grid_id"],
        "room": h["room"],
        "floor": h["floor"],
        "tenure": h["tenure"],
        "head_name": h["head__name"] if h["head_id"] else None,
        "resident_count": len(ids),
        "residents": ids,
    }


def household_rows(qs: QuerySet) -> QuerySet:
    """``qs``'s households as the rows :func:`household_payload` reads (with their resident
    ids), plain rows, not model instances (issue 19)."""
    return qs.values(*HOUSEHOLD_COLUMNS).annotate(
        resident_ids=ArrayAgg("residents__id", default=[])
    )


def _households(ids_q: Q, member, scope: Scope) -> list[tuple[int, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    """(id, payload) of the households ``ids_q`` selects in ``scope`` (with their resident
    ids), each through the visibility matrix."""
    rows = list(household_rows(scope.filter(Household.objects.filter(ids_q))).order_by("id"))
    return _present_households(rows, member, scope)


def _present_households(rows: list[dict[str, Any]], member, scope: Scope) -> list[tuple[int, dict[str, Any]]]:  # type: ignore[no-untyped-def]  # fmt: skip
    """(id, payload) of household rows (:func:`household_rows`) through the visibility
    matrix at the member's tier per record."""
    seen = visibility.Viewer(member, scope)
    seen.prime(Household, [h["id"] for h in rows])
    return [
        (
            h["id"],
            visibility.present_household(household_payload(h), seen.tier_of_pk(Household, h["id"])),
        )
        for h in rows
    ]


@functools.cache
def _household_hidden(tier: visibility.Tier) -> tuple[str, ...]:
    """The keys of a household's payload ``tier`` may not see, as
    :func:`visibility.present_household` drops them."""
    return tuple(
        key
        for attribute, keys in visibility.HOUSEHOLD_KEYS.items()
        if not visibility.may_know(attribute, tier)
        for key in keys
    )


def _household_payloads(rows: list[tuple], member, scope: Scope) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The payloads of household rows (tuples: :data:`HOUSEHOLD_COLUMNS` and
    ``resident_ids``, :func:`_full_sql` ``("sh")``) as :func:`household_payload` and
    :func:`visibility.present_household` at the member's tier per record write them, no
    dict per row in between."""
    seen = visibility.Viewer(member, scope)
    seen.prime(Household, [h[0] for h in rows])
    out = []
    for pk, unit, number, building, name, grid, room, floor, tenure, head, head_name, ids in rows:
        ids = sorted(i for i in (ids or []) if i is not None)
        d = {
            "id": pk,
            "unit": unit,
            "unit_number": number,
            "building": building,
            "building_name": name,
            "grid": grid,
            "room": room,
            "floor": floor,
            "tenure": tenure,
            "head_name": head_name if head else None,
            "resident_count": len(ids),
            "residents": ids,
        }
        for key in _household_hidden(seen.tier_of_pk(Household, pk)):
            d.pop(key, None)
        out.append(d)
    return out


RESIDENT_FIELDS = (
    "id",
    "household_id",
    "name",
    "gender",
    "birth_date",
    "ethnicity",
    "residency",
    "relation_to_head",
    "tags",
)
#: the encrypted columns of a resident the feed shows, with the stored masks beside them
#: (:class:`gridsvc.territory.models.MaskField`): a masked cell is read from the mask; the
#: stored value is read (and opened) only where no mask is stored, or a tier shows it clear
SEALED = {"id_number": visibility.ID_NUMBER, "phone": visibility.PHONE}
_MASKERS = {"id_number": mask_id_number, "phone": mask_phone}
#: whether some tier shows an encrypted column in clear (then its stored value is read)
_CLEAR_SOMEWHERE = {
    key: visibility.CLEAR in visibility.MATRIX[attribute].values()
    for key, attribute in SEALED.items()
}


def resident_rows(qs: QuerySet) -> QuerySet:
    """``qs``'s residents as the rows :func:`_residents` writes: the masks as stored
    (``id_number_mask``, ``phone_mask``) and, where no mask is stored, the encrypted value as
    stored (``sealed_id_number``, ``sealed_phone``; else None)."""
    from django.db.models import Case, ExpressionWrapper, F, TextField, When

    def sealed(key: str):  # type: ignore[no-untyped-def]
        stored = ExpressionWrapper(F(key), output_field=TextField())
        if _CLEAR_SOMEWHERE[key]:
            return stored
        return Case(When(**{f"{key}_mask__isnull": True}, then=stored), output_field=TextField())

    return qs.values(
        *RESIDENT_FIELDS,
        *(f"{k}_mask" for k in SEALED),
        **{f"sealed_{k}": sealed(k) for k in SEALED},
    )


def _opener():  # type: ignore[no-untyped-def]
    """``open(token)``: a stored value of an encrypted field in clear, as
    :class:`gridsvc.crypto.EncryptedTextField` reads it (the same keys and error)."""
    from cryptography.fernet import InvalidToken
    from django.core.exceptions import ImproperlyConfigured

    from gridsvc.crypto import fernet

    keys = fernet()

    def opened(token: str | None) -> str | None:
        if token is None or token == "":
            return token
        try:
            return keys.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:  # pragma: no cover - wrong key configuration
            raise ImproperlyConfigured("cannot decrypt a sensitive field: wrong key?") from exc

    return opened


_FIVE = (
    visibility.NAME,
    visibility.GENDER,
    visibility.ID_NUMBER,
    visibility.PHONE,
    visibility.ETHNICITY,
)


@functools.cache
def _resident_plan(tier: visibility.Tier) -> tuple[dict[str, str], tuple[str, ...], bool, frozenset[str]] | None:  # fmt: skip
    """What :func:`visibility.present_resident` does at ``tier`` without a grant (the feed
    never unmasks), once per tier: the matrix cells, the ``masked`` list (it depends on the
    tier alone), and the tags shown (``other_clear``: tags outside the matrix's are shown;
    ``exceptions``: the matrix's tags treated otherwise). None where a cell is one this
    plan does not write (a COARSE name …): such rows go through present_resident."""
    cells = {a: visibility.rule(a, tier) for a in (*_FIVE, visibility.BIRTH_DATE)}
    if any(cells[a] not in (visibility.CLEAR, visibility.MASKED, visibility.HIDDEN) for a in _FIVE):
        return None
    masked = [visibility.ATTRIBUTE_KEYS[a][0] for a in _FIVE if cells[a] == visibility.MASKED]
    if cells[visibility.BIRTH_DATE] not in (visibility.HIDDEN, visibility.CLEAR):
        masked.append("birth_date")
    if any(
        visibility.may_know(visibility.TAG_ATTRIBUTE[t], tier) for t in visibility.SENSITIVE_TAGS
    ):
        masked.append("sensitive_tags")
    other_clear = visibility.rule(visibility.OTHER_TAGS, tier) == visibility.CLEAR
    exceptions = frozenset(
        t
        for t, a in visibility.TAG_ATTRIBUTE.items()
        if (visibility.rule(a, tier) == visibility.CLEAR) != other_clear
    )
    return cells, tuple(masked), other_clear, exceptions


#: the columns of a resident row, in order: :data:`RESIDENT_FIELDS`, the stored masks and the
#: sealed values (:func:`resident_rows`, :func:`_full_sql` ``("sr")``)
RESIDENT_COLUMNS = (
    *RESIDENT_FIELDS,
    *(f"{k}_mask" for k in SEALED),
    *(f"sealed_{k}" for k in SEALED),
)
# (key, attribute, index of the stored mask, index of the sealed value) of each sealed column
_SEALED_AT = tuple(
    (key, attribute, RESIDENT_COLUMNS.index(f"{key}_mask"), RESIDENT_COLUMNS.index(f"sealed_{key}"))
    for key, attribute in SEALED.items()
)


def _residents(rows: list[dict[str, Any]], member, scope: Scope) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Residents (rows of :func:`resident_rows`) through the visibility matrix at the
    member's tier per record: :func:`resident_payloads` of the rows as tuples."""
    return resident_payloads(
        [tuple(row[c] for c in RESIDENT_COLUMNS) for row in rows], member, scope
    )


def resident_payloads(rows: list[tuple], member, scope: Scope) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Residents (tuples of :data:`RESIDENT_COLUMNS`) through the visibility matrix at the
    member's tier per record, as :func:`visibility.present_resident` shows them; the feed
    never sends clear values (no unmask grant on a phone). A masked ID number or phone is the
    stored mask; an encrypted value is opened only where no mask is stored (a row written
    around the model) or a tier shows it clear."""
    seen = visibility.Viewer(member, scope, unmasked=False)
    seen.prime(Resident, [r[0] for r in rows])
    opened = None
    out = []
    CLEAR, MASKED, HIDDEN = visibility.CLEAR, visibility.MASKED, visibility.HIDDEN
    # one tier for every row but for a member of several tiers (Viewer.tier_of_pk)
    same = seen.tier if not seen.mixed or seen.staff is None else None
    specs: dict[visibility.Tier, tuple | None] = {}  # the plan's cells per tier, as locals
    for row in rows:
        tier = same if same is not None else seen.tier_of_pk(Resident, row[0])
        if tier not in specs:
            plan = _resident_plan(tier)
            specs[tier] = plan and (
                plan[0][visibility.NAME],
                plan[0][visibility.GENDER],
                tuple((k, plan[0][a], m, v) for k, a, m, v in _SEALED_AT),
                plan[0][visibility.ETHNICITY],
                plan[0][visibility.BIRTH_DATE],
                *plan[1:],
            )
        spec = specs[tier]
        if spec is None:  # a cell this plan does not write: the matrix's own function
            if opened is None:
                opened = _opener()
            out.append(
                _resident_by_matrix(dict(zip(RESIDENT_COLUMNS, row, strict=True)), tier, opened)
            )
            continue
        name_cell, gender_cell, sealed, ethnicity_cell, born_cell, masked, other_clear, odd = spec
        pk, household, name, gender, born, e, residency, relation, tags = row[:9]
        d: dict[str, Any] = {"id": pk, "household": household}
        if name_cell != HIDDEN:
            d["name"] = name if name_cell == CLEAR else mask_name(name)
        if gender_cell != HIDDEN:
            d["gender"] = gender if gender_cell == CLEAR else None
        for key, cell, at_mask, at_sealed in sealed:
            if cell == CLEAR:
                if opened is None:
                    opened = _opener()
                d[key] = opened(row[at_sealed])
            elif cell == MASKED:
                stored = row[at_mask]
                if stored is None:
                    if opened is None:
                        opened = _opener()
                    stored = _MASKERS[key](opened(row[at_sealed]))
                d[key] = stored
        if ethnicity_cell != HIDDEN:
            if ethnicity_cell == CLEAR:
                d["ethnicity"], d["ethnicity_name"] = e, ETHNICITIES.get(e, ("", ""))[0] or None
            else:
                d["ethnicity"], d["ethnicity_name"] = (visibility.MASK if e else e), None
        d["residency"] = residency
        d["relation_to_head"] = relation
        d["tags"] = [t for t in tags if (t in odd) != other_clear] if tags else []
        if born_cell != HIDDEN:
            d["birth_year"] = born.year if born else None
            if born_cell == CLEAR:
                d["birth_date"] = born.isoformat() if born else None
        d["masked"] = list(masked)
        out.append(d)
    return out


def _resident_by_matrix(row: dict[str, Any], tier: visibility.Tier, opened) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A resident row (:data:`RESIDENT_COLUMNS`) as :func:`visibility.present_resident`
    shows it at ``tier`` without a grant: for a tier whose cells :func:`_resident_plan` does
    not write. A masked cell whose mask is stored is that mask (the row holds no sealed
    value then)."""
    clear: dict[str, str | None] = {}
    stored: dict[str, str] = {}
    for key, attribute in SEALED.items():
        cell = visibility.rule(attribute, tier)
        if cell == visibility.MASKED and row[f"{key}_mask"] is not None:
            stored[key] = row[f"{key}_mask"]
        elif cell != visibility.HIDDEN:
            clear[key] = opened(row[f"sealed_{key}"])
    r = SimpleNamespace(**row, **{k: clear.get(k) for k in SEALED})
    data = {
        "id": r.id,
        "household": r.household_id,
        "name": r.name,
        "gender": r.gender,
        "birth_date": r.birth_date,
        "id_number": r.id_number,
        "phone": r.phone,
        "ethnicity": r.ethnicity,
        "ethnicity_name": ETHNICITIES.get(r.ethnicity, ("", ""))[0] or None,
        "residency": r.residency,
        "relation_to_head": r.relation_to_head,
        "tags": list(r.tags),
    }
    shown = visibility.present_resident(data, r, tier, unmasked=False)
    for key, mask in stored.items():
        if key in shown:
            shown[key] = mask
    return shown


def _inbox_row_payload(m: tuple) -> dict[str, Any]:
    """:func:`_inbox_payload` of a row of :func:`_inbox_sql`."""
    pk, kind, title, body, object_type, object_id, created_at, read_at = m
    return {
        "id": pk,
        "kind": kind,
        "title": title,
        "body": body,
        "object_type": object_type,
        "object_id": object_id,
        "created_at": created_at.isoformat(),
        "read": read_at is not None,
        "read_at": read_at.isoformat() if read_at else None,
    }


def _inbox_payload(m) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {
        "id": m.id,
        "kind": m.kind,
        "title": m.title,
        "body": m.body,
        "object_type": m.object_type,
        "object_id": m.object_id,
        "created_at": m.created_at.isoformat(),
        "read": m.read_at is not None,
        "read_at": m.read_at.isoformat() if m.read_at else None,
    }


# ---------------------------------------------------------------- the feed
def _visible_cases(scope: Scope, member):  # type: ignore[no-untyped-def]
    """Cases the member's phone holds: in the territory, or handled or reported by them
    (as ``GET /api/v1/cases/``). None when the cases app has no feed support."""
    Case = _case_model()
    if Case is None:
        return None
    if scope.everything:
        return Case.objects.all()
    try:
        in_scope = scope.filter(Case.objects.all()).values("pk")
    except TypeError:  # no scope rule for cases yet: send none rather than leak
        return None
    # each side read by its own index and the ids merged: one "in scope OR handler OR reporter"
    # filter made PostgreSQL walk every case of the city testing each (0.8 s at 100,000 cases)
    mine = Case.objects.filter(handler=member).values("pk")
    reported = Case.objects.filter(reported_by=member).values("pk")
    return Case.objects.filter(pk__in=in_scope.union(mine, reported))


def _case_window_q(now: datetime) -> Q:
    from gridsvc.cases.models import OPEN_STATUSES, Status

    since = now - timedelta(days=CASE_WINDOW_DAYS)
    return (
        Q(status__in=[*OPEN_STATUSES, Status.ON_HOLD])
        | Q(reported_at__gte=since)
        | Q(closed_at__gte=since)
        | Q(resolved_at__gte=since)
    )


def _task_window_q(now: datetime) -> Q:
    today = timezone.localdate(now)
    return Q(status__in=[VisitTask.Status.OPEN, VisitTask.Status.OVERDUE]) | Q(
        period_end__gte=today - timedelta(days=DONE_WINDOW_DAYS)
    )


def _page(qs: QuerySet, job: dict[str, Any], key: str, limit: int) -> tuple[list, bool]:
    """The next page (by id) of a job's stream ``key``; records progress in ``job``."""
    if key in job["d"]:
        return [], False
    rows = list(qs.filter(id__gt=job["p"].get(key, 0)).order_by("id")[: limit + 1])
    if len(rows) > limit:
        rows = rows[:limit]
        job["p"][key] = rows[-1]["id"] if isinstance(rows[-1], dict) else rows[-1].id
        return rows, True
    job["d"].append(key)
    return rows, False


def _territory_units_sql() -> str:
    """The SQL condition "household ``h`` is in the snapshot's territory": its unit is one of
    the snapshot's buildings' (``%(buildings)s``) or one of its units (``%(units)s``)."""
    u = Household._meta.get_field("unit").related_model._meta.db_table
    return (
        f"h.unit_id = ANY(ARRAY(SELECT tu.id FROM {u} tu"
        " WHERE tu.building_id = ANY(%(buildings)s::bigint[])) || %(units)s::bigint[])"
    )


@functools.cache
def _full_sql(key: str) -> tuple[str, tuple[str, ...]]:
    """``(sql, column keys)`` of a page of the whole territory's households (``sh``, the
    rows of :func:`household_rows`) or residents (``sr``, the rows of :func:`resident_rows`):
    the households of the snapshot's buildings and units, by id after ``%(after)s``."""
    t = {
        "h": Household._meta.db_table,
        "u": Household._meta.get_field("unit").related_model._meta.db_table,
        "b": Building._meta.db_table,
        "r": Resident._meta.db_table,
    }
    # the territory's households by their unit (an index scan of household.unit_id): the
    # units of the snapshot's buildings and its own units. Not "u.building_id = ANY(…) OR
    # h.unit_id = ANY(…)": an OR over two tables made PostgreSQL hash-join every household
    # of the city with its unit (4 ms a statement at 21,500 households, 0.4 ms so)
    territory = _territory_units_sql()
    if key == "sh":
        # the territory's households found first (a fence: with "ORDER BY h.id LIMIT" in
        # sight the generic plan walked every household of the city by id, 3 ms)
        sql = f"""WITH hh AS MATERIALIZED (
  SELECT h.id, h.unit_id, h.room, h.floor, h.tenure, h.head_id FROM {t["h"]} h
  WHERE {territory} AND h.id > %(after)s::bigint
)
SELECT h.id, h.unit_id, u.number, u.building_id, b.name, b.grid_id, h.room,
  h.floor, h.tenure, h.head_id, hd.name, ARRAY(SELECT x.id FROM {t["r"]} x WHERE x.household_id = h.id)
FROM (SELECT * FROM hh ORDER BY hh.id LIMIT %(n)s::int) h
  JOIN {t["u"]} u ON u.id = h.unit_id JOIN {t["b"]} b ON b.id = u.building_id
  LEFT JOIN {t["r"]} hd ON hd.id = h.head_id
ORDER BY h.id"""
        return sql, (*HOUSEHOLD_COLUMNS, "resident_ids")
    sealed = [
        f"r.{k}" if _CLEAR_SOMEWHERE[k] else f"CASE WHEN r.{k}_mask IS NULL THEN r.{k} END"
        for k in SEALED
    ]
    sql = f"""SELECT {", ".join(f"r.{c}" for c in RESIDENT_FIELDS)},
  {", ".join(f"r.{k}_mask" for k in SEALED)}, {", ".join(sealed)}
FROM {t["r"]} r
WHERE r.household_id IN (SELECT h.id FROM {t["h"]} h WHERE {territory})
  AND r.id > %(after)s::bigint ORDER BY r.id LIMIT %(n)s::int"""
    return sql, RESIDENT_COLUMNS


def _staff_kind(data: dict[str, Any]) -> str:
    """How a snapshot's territory shows tasks of sensitive groups (as
    :func:`gridsvc.visits.services.hide_sensitive_tasks` for its member): ``all`` of them,
    only their own (``none``: the tier never learns them), or their own and those in the
    staff part's buildings (``staff``: a member holding positions of several tiers)."""
    staff = data["staff"]
    return "all" if staff == "all" else ("staff" if staff else "none")


@functools.cache
def _full_tasks_sql(staff: str) -> tuple[str, tuple[str, ...]]:
    """``(sql, TASK_COLUMNS)`` of a page of the tasks a first sync sends (the rows of
    ``VisitTask.objects.values(*TASK_COLUMNS)``): in the window (:func:`_task_window_q`), of
    the territory's households without the sensitive groups' tasks the member may not see
    (``staff``: :func:`_staff_kind`), or assigned to the member; each side read by its own
    index up to the page's end and the two merged, as the querysets did."""
    t = {
        "t": VisitTask._meta.db_table,
        "r": VisitTask._meta.get_field("rule").related_model._meta.db_table,
        "h": Household._meta.db_table,
        "u": Household._meta.get_field("unit").related_model._meta.db_table,
    }
    window = "(t.status = ANY(%(open)s::text[]) OR t.period_end >= %(since)s::date)"
    hidden = ""
    if staff != "all":
        # a task of a sensitive group, not the member's own (nor in the staff part)
        hidden = (
            "AND NOT (g.target_group = ANY(%(sensitive)s::text[])"
            " AND t.assigned_member_id IS DISTINCT FROM %(m)s::bigint"
        )
        if staff == "staff":
            hidden += " AND NOT u.building_id = ANY(%(staff)s::bigint[])"
        hidden += ")"
    rule_join = f"JOIN {t['r']} g ON g.id = t.rule_id" if hidden else ""
    # the unit only for the staff part's buildings (the territory is found by h.unit_id)
    unit_join = f"JOIN {t['u']} u ON u.id = h.unit_id" if staff == "staff" else ""
    sql = f"""WITH ids AS (
  (SELECT t.id FROM {t["t"]} t JOIN {t["h"]} h ON h.id = t.household_id
     {unit_join} {rule_join}
   WHERE {_territory_units_sql()}
     AND {window} AND t.id > %(after)s::bigint {hidden}
   ORDER BY t.id LIMIT %(n)s::int)
  UNION
  (SELECT t.id FROM {t["t"]} t WHERE t.assigned_member_id = %(m)s::bigint AND {window}
     AND t.id > %(after)s::bigint
   ORDER BY t.id LIMIT %(n)s::int)
)
SELECT t.id, g.code, g.name, t.household_id, t.resident_id, t.period, t.period_start,
  t.period_end, t.due_on, t.status, t.assigned_member_id, t.done_by_id, t.updated_at
FROM {t["t"]} t JOIN {t["r"]} g ON g.id = t.rule_id
WHERE t.id IN (SELECT id FROM ids) ORDER BY t.id LIMIT %(n)s::int"""
    return sql, TASK_COLUMNS


@functools.cache
def _full_cases_sql(levels: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """``(sql, columns)`` of a page of the cases a first sync sends (the rows of
    :func:`_case_rows`): placed in the territory by their own street … unit fields (as
    ``Scope.located_q``), handled or reported by the member — each read by its own index and
    merged (as :func:`_visible_cases`) — in the window (:func:`_case_window_q`). ``levels``:
    the scope's levels that hold ids (the others would only add planning: an empty
    ``= ANY('{}')`` finds nothing)."""
    Case = _case_model()
    c = Case._meta.db_table
    member_t = Case._meta.get_field("handler").related_model._meta.db_table
    dept_t = Case._meta.get_field("department").related_model._meta.db_table
    located = " OR ".join(f"c.{k}_id = ANY(%(s_{k})s::bigint[])" for k in levels) or "FALSE"
    sql = f"""WITH ids AS (
  SELECT c.id FROM {c} c WHERE {located}
  UNION SELECT c.id FROM {c} c WHERE c.handler_id = %(m)s::bigint
  UNION SELECT c.id FROM {c} c WHERE c.reported_by_id = %(m)s::bigint
)
SELECT c.id, c.updated_at, c.number, c.kind, c.title, c.category_id, c.priority, c.status,
  c.level, c.household_id, c.unit_id, c.building_id, c.compound_id, c.grid_id,
  c.community_id, c.street_id, c.handler_id, hm.username, hm.display_name, c.department_id,
  d.name, c.reported_at, c.due_at, c.due_stage, c.card, c.closed_at, c.reported_by_id,
  ST_X(c.location), ST_Y(c.location)
FROM {c} c LEFT JOIN {member_t} hm ON hm.id = c.handler_id
  LEFT JOIN {dept_t} d ON d.id = c.department_id
WHERE c.id = ANY(ARRAY(SELECT id FROM ids))
  AND (c.status = ANY(%(case_open)s::text[]) OR c.reported_at >= %(since)s::timestamptz
       OR c.closed_at >= %(since)s::timestamptz OR c.resolved_at >= %(since)s::timestamptz)
  AND c.id > %(after)s::bigint ORDER BY c.id LIMIT %(n)s::int"""
    return sql, (*_CASE_COLUMNS, "lon", "lat")


def _case_levels(data: dict[str, Any]) -> tuple[str, ...]:
    """The levels of snapshot ``data``'s scope, street … unit, that hold ids."""
    return tuple(
        k
        for k in ("street", "community", "grid", "compound", "building", "unit")
        if data["scope"][k]
    )


def _case_params(data: dict[str, Any], member, now: datetime) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The parameters of :func:`_full_cases_sql` but the page's."""
    from gridsvc.cases.models import OPEN_STATUSES, Status

    return {
        **{f"s_{k}": list(data["scope"][k]) for k in _SCOPE_KEYS if k != "unit_building"},
        "m": member.pk,
        "case_open": [str(s) for s in (*OPEN_STATUSES, Status.ON_HOLD)],
        "since": now - timedelta(days=CASE_WINDOW_DAYS),
    }


def _task_params(data: dict[str, Any], member, now: datetime) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The parameters of :func:`_full_tasks_sql` but the page's and the territory's."""
    return {
        "open": [str(VisitTask.Status.OPEN), str(VisitTask.Status.OVERDUE)],
        "since": timezone.localdate(now) - timedelta(days=DONE_WINDOW_DAYS),
        "m": member.pk,
        "sensitive": sorted(visibility.SENSITIVE_TAGS),
        "staff": data["staff"] if isinstance(data["staff"], list) else [],
    }


def _cases_placed() -> bool:
    """Whether the feed's cases are placed by their own street … unit fields (the cases app
    supports the feed and scopes cases by place): the whole territory's are read in plain
    SQL (:func:`_full_cases_sql`)."""
    Case = _case_model()
    return Case is not None and Case in LOCATED_MODELS


def _territory_statements(
    new: dict[str, Any],
    job: dict[str, Any],
    member,
    limit: int,
    now: datetime,  # type: ignore[no-untyped-def]
) -> list[tuple[str, str, dict[str, Any]]]:
    """``(key, sql, params)`` of the next page (by id) of each stream of the whole territory
    of snapshot ``new`` that ``job`` has not finished: households (``sh``,
    :func:`_full_sql`), residents (``sr``), tasks (``st``, :func:`_full_tasks_sql`) and,
    when placed by their own fields, cases (``sc``, :func:`_full_cases_sql`). Fixed texts
    (one per staff kind, one per set of scope levels), the territory as array parameters:
    prepared once per connection."""
    base = {
        "buildings": [b for b, _ in new["buildings"]],
        "units": list(new["units"]),
        "n": limit + 1,
    }
    streams: list[tuple[str, str, dict[str, Any] | None]] = [
        ("sh", _full_sql("sh")[0], None),
        ("sr", _full_sql("sr")[0], None),
        ("st", _full_tasks_sql(_staff_kind(new))[0], _task_params(new, member, now)),
    ]
    if _cases_placed():
        streams.append(
            ("sc", _full_cases_sql(_case_levels(new))[0], _case_params(new, member, now))
        )
    return [
        (key, sql, {**base, "after": job["p"].get(key, 0), **(extra or {})})
        for key, sql, extra in streams
        if key not in job["d"]
    ]


def _take(rows: list[tuple], job: dict[str, Any], key: str, limit: int) -> tuple[list[tuple], bool]:
    """The page of stream ``key`` from the ``limit + 1`` rows (tuples, the id first) read
    after its mark; records progress in ``job`` as :func:`_page` does."""
    if len(rows) > limit:
        rows = rows[:limit]
        job["p"][key] = rows[-1][0]
        return rows, True
    job["d"].append(key)
    return rows, False


def _send_territory(
    new: dict[str, Any],
    job: dict[str, Any],
    member,  # type: ignore[no-untyped-def]
    scope: Scope,
    out: dict[str, Any],
    limit: int,
    now: datetime,
    along: dict[str, tuple[str, dict[str, Any]]] | None = None,
) -> tuple[bool, dict[str, list[tuple]]]:
    """One page of the whole territory of snapshot ``new`` (households, residents, tasks and,
    when placed by their own fields, cases), its statements sent prepared, with their
    generic plans, in ONE round trip (:func:`gridsvc.prepared.fetchall_pipelined`; issue 19:
    planning them was half of their SQL time) together with the statements ``along``
    (name → ``(sql, params)``) whose rows come back by name. Returns ``(more, along's rows)``."""
    from gridsvc.prepared import fetchall_pipelined

    statements = _territory_statements(new, job, member, limit, now)
    extra = list((along or {}).items())
    found = fetchall_pipelined(
        [(sql, params) for _, sql, params in statements] + [st for _, st in extra], generic=True
    )
    rows_of = dict(zip([key for key, _, _ in statements], found, strict=False))
    more = False
    rows, m = _take(rows_of.get("sh", []), job, "sh", limit) if "sh" in rows_of else ([], False)
    more |= m
    out["households"] += _household_payloads(rows, member, scope)
    rows, m = _take(rows_of["sr"], job, "sr", limit) if "sr" in rows_of else ([], False)
    more |= m
    out["residents"] += resident_payloads(rows, member, scope)
    rows, m = _take(rows_of["st"], job, "st", limit) if "st" in rows_of else ([], False)
    more |= m
    out["tasks"] += task_payloads(rows)
    if "sc" in rows_of:
        rows, m = _take(rows_of["sc"], job, "sc", limit)
        more |= m
        columns = _full_cases_sql(_case_levels(new))[1]
        out["cases"] += [_case_payload(dict(zip(columns, c, strict=True)), member) for c in rows]
    return more, {
        name: rows for (name, _), rows in zip(extra, found[len(statements) :], strict=True)
    }


def _ids(qs: QuerySet) -> QuerySet:
    return qs.values("id")


def _send_gained(
    new: dict[str, Any],
    bases: list[dict[str, Any]],
    job: dict[str, Any],
    member,  # type: ignore[no-untyped-def]
    scope: Scope,
    out: dict[str, Any],
    limit: int,
    now: datetime,
    full: bool,
) -> bool:
    """One page of the households, residents and tasks a territory job sends through the
    ORM: those newly in the territory (``full`` False: of the buildings and units ``new``
    gained over ``bases[0]``), or everything a member who sees everything holds."""
    more = False
    hh_q = Q() if full else _gained_q(new, bases[0])
    hh_qs = scope.filter(Household.objects.filter(hh_q))
    # the page's households with their resident ids, read at once (one statement)
    rows, m = _page(household_rows(hh_qs), job, "sh", limit)
    more |= m
    out["households"] += [p for _, p in _present_households(rows, member, scope)]
    res_qs = resident_rows(Resident.objects.filter(household__in=_ids(hh_qs)))
    rows, m = _page(res_qs, job, "sr", limit)
    more |= m
    out["residents"] += _residents(rows, member, scope)
    wanted = _task_window_q(now)
    if not full:
        wanted &= _gained_q(new, bases[0], "household__")
    if scope.everything:
        task_qs = VisitTask.objects.filter(wanted)
    else:
        # in the territory or assigned to the member: each side read by its own index up to
        # the page's end and the two merged (one OR filter would test every task of the city)
        after = job["p"].get("st", 0)
        sides = [
            hide_sensitive_tasks(scope.filter(VisitTask.objects.all()), scope, member),
            VisitTask.objects.filter(assigned_member=member),
        ]
        first, second = (
            qs.filter(wanted, id__gt=after).order_by("id").values("id")[: limit + 1] for qs in sides
        )
        task_qs = VisitTask.objects.filter(id__in=first.union(second))
    rows, m = _page(task_qs.values(*TASK_COLUMNS), job, "st", limit)
    more |= m
    out["tasks"] += [task_payload(t) for t in rows]
    return more


def _run_job(
    job: dict[str, Any],
    member,  # type: ignore[no-untyped-def]
    scope: Scope,
    out: dict[str, Any],
    limit: int,
    known: dict[int, dict[str, Any]] | None = None,
) -> bool:
    """One page of a territory job (first sync, or a change of territory): purge what the
    phone may no longer hold, send what is new. Returns whether the job has more."""
    snaps = dict(known or {})  # ``known``: snapshots' data at hand (id → data)
    wanted = [i for i in (job["s"], *job["b"]) if i not in snaps]
    if wanted:
        snaps.update(TerritorySnapshot.objects.filter(id__in=wanted).values_list("id", "data"))
    new = snaps[job["s"]]
    bases = [snaps[b] for b in job["b"]]
    now = parse_datetime(job["t"])
    more = False

    # --- purge: held before, not visible now
    if bases:
        held_hh = Q()
        for i, base in enumerate(bases):
            held_hh = _held_q(base) if i == 0 else held_hh | _held_q(base)
        visible_hh = scope.filter(Household.objects.all())
        gone_hh = Household.objects.filter(held_hh).exclude(id__in=_ids(visible_hh))
        rows, m = _page(gone_hh.values("id"), job, "ph", limit)
        out["purge"]["households"] += [r["id"] for r in rows]
        more |= m
        rows, m = _page(
            Resident.objects.filter(household__in=_ids(gone_hh)).values("id"), job, "pr", limit
        )
        out["purge"]["residents"] += [r["id"] for r in rows]
        more |= m
        held_t = Q()
        for i, base in enumerate(bases):
            held_t = _held_tasks_q(base) if i == 0 else held_t | _held_tasks_q(base)
        gone_t = VisitTask.objects.filter(held_t).exclude(id__in=_ids(visible_tasks(scope, member)))
        rows, m = _page(gone_t.values("id"), job, "pt", limit)
        out["purge"]["tasks"] += [r["id"] for r in rows]
        more |= m
        cases = _visible_cases(scope, member)
        if cases is not None:
            Case = cases.model
            held_c = Q()
            for i, base in enumerate(bases):
                held_c = _held_cases_q(base) if i == 0 else held_c | _held_cases_q(base)
            gone_c = Case.objects.filter(held_c).exclude(id__in=_ids(cases))
            rows, m = _page(gone_c.values("id"), job, "pc", limit)
            out["purge"]["cases"] += [r["id"] for r in rows]
            more |= m

    # --- send: what is new in the territory (all of it on a first sync)
    full = bool(job.get("f")) or _needs_full(new, bases)
    if full and not new.get("all"):
        # the whole territory: its households, residents, tasks (and cases) read by the
        # snapshot's buildings and units (the scope's, as the probe read them), in plain SQL,
        # prepared, one round trip (issue 19: building the ORM's queries cost as much as
        # running them, and planning the statements as much again)
        m, _ = _send_territory(new, job, member, scope, out, limit, now)
        more |= m
        if _cases_placed():
            return more
    else:
        more |= _send_gained(new, bases, job, member, scope, out, limit, now, full)
    cases = _visible_cases(scope, member)
    if cases is not None:
        case_qs = cases.filter(_case_window_q(now))
        if not full:
            held_c = Q()
            for i, base in enumerate(bases):
                held_c = _held_cases_q(base) if i == 0 else held_c | _held_cases_q(base)
            before = {tuple(p) for p in bases[0]["buildings"]}
            gained_b = [b for b, g in new["buildings"] if (b, g) not in before]
            case_qs = case_qs.filter(~held_c | Q(building__in=gained_b))
        rows, m = _page(_case_rows(case_qs), job, "sc", limit)
        more |= m
        out["cases"] += [_case_payload(c, member) for c in rows]
    return more


def _marks_sql() -> str:
    """The snapshot row's id of ``%(digest)s`` (NULL: none yet) and the change log's last id."""
    return (
        f"SELECT (SELECT id FROM {TerritorySnapshot._meta.db_table} WHERE digest = %(digest)s),"
        f" (SELECT max(id) FROM {ChangeLog._meta.db_table})"
    )


def _inbox_sql() -> str:
    """The member's (``%(m)s``) inbox messages after id ``%(i)s``, by id, at most
    ``%(n)s``: the columns :func:`_inbox_payload` reads, in its order."""
    from gridsvc.supervision.models import InboxMessage

    return (
        "SELECT id, kind, title, body, object_type, object_id, created_at, read_at"
        f" FROM {InboxMessage._meta.db_table} WHERE member_id = %(m)s::bigint"
        " AND id > %(i)s::bigint ORDER BY id LIMIT %(n)s::int"
    )


def _snapshot_of(snap_id: int | None, digest: str, data: dict[str, Any]) -> Any:
    """The snapshot row of ``digest`` (``snap_id``: its id; its data is ``data``), made when
    there is none yet."""
    if snap_id is None:
        snap, _ = TerritorySnapshot.objects.get_or_create(digest=digest, defaults={"data": data})
        return snap
    return SimpleNamespace(id=snap_id, digest=digest, data=data)


def _first_sync_marks(digest: str, data: dict[str, Any]) -> tuple[Any, int]:
    """``(snapshot, the change log's last id)`` for a first sync, in one statement: the
    snapshot row of ``digest`` (its id; its data is ``data``), made when there is none yet."""
    from gridsvc.prepared import fetchone

    snap_id, head = fetchone(_marks_sql(), {"digest": digest}) or (None, None)
    return _snapshot_of(snap_id, digest, data), head or 0


def _first_sync(
    member,  # type: ignore[no-untyped-def]
    scope: Scope,
    digest: str,
    data: dict[str, Any],
    now: datetime,
    limit: int,
    out: dict[str, Any],
) -> tuple[dict[str, Any], bool]:
    """The first page of a first sync of the territory ``data`` (``digest``): its
    households, residents, tasks and cases, the snapshot's id, the change log's head and the
    inbox read in ONE round trip (:func:`_send_territory`), prepared (issue 19). Returns
    ``(the cursor's state, more)``, as the general path (:func:`_run_job`, :func:`_inbox`)
    writes them."""
    job: dict[str, Any] = {"s": None, "b": [], "t": now.isoformat(), "p": {}, "d": []}
    along = {
        "marks": (_marks_sql(), {"digest": digest}),
        "inbox": (_inbox_sql(), {"m": member.pk, "i": 0, "n": limit + 1}),
    }
    more, got = _send_territory(data, job, member, scope, out, limit, now, along)
    snap_id, head = got["marks"][0]
    job["s"] = _snapshot_of(snap_id, digest, data).id
    state = {
        "t": keyset_mark(now, 0),
        "c": keyset_mark(now, 0),
        "h": head or 0,
        "i": 0,
        "r": keyset_mark(now, 0),
        "s": job["s"],
    }
    if more:
        state["k"] = job
    msgs = got["inbox"]
    if len(msgs) > limit:
        more, msgs = True, msgs[:limit]
    if msgs:
        state["i"] = msgs[-1][0]
    out["inbox"] += [_inbox_row_payload(m) for m in msgs]
    return state, more


def changes_since(member, scope, cursor: str | None, limit: int = FEED_LIMIT,
                  probe_row: tuple | None = None) -> dict[str, Any]:  # type: ignore[no-untyped-def]  # fmt: skip
    """One page of ``member``'s feed after ``cursor`` (see the module docstring).
    ``probe_row``: the probe's row for this cursor and ``member``'s scope, when it rode with
    the caller's query (:func:`probe_rider_statement`); read only after ``cursor`` is found
    to be ``member``'s."""
    state = decode_cursor(cursor, member.pk)
    now = timezone.now()
    packages = None
    log_head: int | None = None  # the change log's last id, when already read
    snap: Any  # the snapshot row, or the cursor's (id, digest, data) when unchanged
    if scope.everything:
        snap = territory_snapshot(member, scope)
        quiet = False
    else:
        data, held, changed, packages = _probe(member, scope, state, probe_row)
        digest = _digest(data)
        # nothing new: the territory is the cursor's, and nothing after its marks
        quiet = bool(state) and "k" not in state and held == digest and not changed
        if held == digest:  # the cursor's snapshot: its id and data, no row read or built
            snap = SimpleNamespace(id=state["s"], digest=digest, data=data)
        elif not state and (_case_model() is None or _cases_placed()):
            snap = None  # a first sync: its first page read at once (_first_sync)
        elif not state:  # a first sync: the snapshot's id and the change log's head at once
            snap, log_head = _first_sync_marks(digest, data)
        else:
            snap, _ = TerritorySnapshot.objects.get_or_create(
                digest=digest, defaults={"data": data}
            )
    out: dict[str, Any] = {
        "tasks": [],
        "households": [],
        "residents": [],
        "cases": [],
        "inbox": [],
        "purge": {"households": [], "residents": [], "tasks": [], "cases": []},
    }
    first = not state
    more = False
    if quiet:
        pass
    elif snap is None:
        state, more = _first_sync(member, scope, digest, data, now, limit, out)
        out["territory_changed"] = False
    elif first:
        state = {
            "t": keyset_mark(now, 0),
            "c": keyset_mark(now, 0),
            "h": (ChangeLog.objects.aggregate(m=Max("id"))["m"] if log_head is None else log_head)
            or 0,
            "i": 0,
            "r": keyset_mark(now, 0),
            "s": snap.id,
            "k": {"s": snap.id, "b": [], "t": now.isoformat(), "p": {}, "d": []},
        }
    else:
        named = {state.get("s"), *(state.get("k") or {}).get("b", [])}
        if TerritorySnapshot.objects.filter(id__in=named).count() < len(named):
            raise BadCursor(BAD_CURSOR)  # a snapshot removed since: start again
        if state["s"] != snap.id:
            # the territory changed since the cursor (or during a running job)
            job = state.get("k")
            state["k"] = {"s": snap.id, "b": [state["s"]], "t": now.isoformat(), "p": {}, "d": []}
            if job is not None:
                # a job cut short (a first sync too): the phone holds part of it, and maybe
                # still some of the territory before it — purge against all, send all
                state["k"]["b"] = list(dict.fromkeys([*job["b"], job["s"]]))
                state["k"]["f"] = True
            state["s"] = snap.id
    if snap is not None:
        job = state.get("k")
        out["territory_changed"] = bool(job and job["b"])
        if job is not None:
            more = _run_job(job, member, scope, out, limit, known={snap.id: snap.data})
            if not more:
                state.pop("k")
    if not quiet and snap is not None:
        # the page that starts a first sync has no incremental streams to read: its marks
        # are this request's start, so they hold only what changed while it ran — what the
        # next poll sends (the probe sees it); reading them cost a fifth of a first sync
        if not more and not first:
            more = _incremental(state, member, scope, out, limit)
        more |= _inbox(state, member, out, limit)

    # a page never sends a row twice (the first page of a first sync reads each stream in
    # one statement: no row twice)
    if snap is not None:
        for key in ("tasks", "households", "residents", "cases"):
            out[key] = list({row["id"]: row for row in out[key]}.values())
    out["cases_available"] = _case_model() is not None
    out["offline_packages"] = (
        _package_states(scope) if scope.everything else _package_payloads(packages)
    )
    # a quiet poll's state is the cursor's: the same cursor back, not encoded again
    new = cursor_again(cursor, state, member.pk) if quiet and cursor else None
    return {"cursor": new or encode_cursor(state, member.pk), "has_more": more, **out}


def _package_states(scope: Scope) -> list[dict[str, Any]]:
    """The offline packages of the grids the member holds whole: etag and staleness, on
    every answer (a few rows), so the phone knows when to fetch its base map again."""
    if not (scope.everything or scope.grid_ids or scope.community_ids or scope.street_ids):
        return []  # holds no grid whole (a building or unit head): no package, no query
    try:
        from gridsvc.layers.offline import package_states
    except ImportError:
        return []
    return package_states(scope)


def _incremental(
    state: dict[str, Any], member, scope: Scope, out: dict[str, Any], limit: int
) -> bool:  # type: ignore[no-untyped-def]
    """What changed after the cursor's marks (tasks, households with residents, cases)."""
    more = False
    # visit tasks: in the territory or assigned to the member. Each side is read by its own
    # index up to limit + 1 rows after the cursor and the two merged: the first limit + 1 of
    # the union are among them. (One "in territory OR assigned" filter walked the whole
    # updated_at index of the city, testing every task.)
    order = ("updated_at", "id")
    if scope.everything:
        tasks_qs = rows_after(VisitTask.objects.all(), state.get("t"))
    else:
        sides = [
            hide_sensitive_tasks(scope.filter(VisitTask.objects.all()), scope, member),
            VisitTask.objects.filter(assigned_member=member),
        ]
        first, second = (
            rows_after(qs, state.get("t")).order_by(*order).values("id")[: limit + 1]
            for qs in sides
        )
        tasks_qs = VisitTask.objects.filter(id__in=first.union(second))
    tasks = list(tasks_qs.order_by(*order).values(*TASK_COLUMNS)[: limit + 1])
    if len(tasks) > limit:
        more, tasks = True, tasks[:limit]
    if tasks:
        state["t"] = keyset_mark(tasks[-1]["updated_at"], tasks[-1]["id"])
    out["tasks"] += [task_payload(t) for t in tasks]

    # households and their residents (via the change log)
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
        state["h"] = logs[-1][0]
    hh_ids = list(dict.fromkeys(h for _, h in logs))
    found = dict(_households(Q(id__in=hh_ids), member, scope))
    out["households"] += [found[h] for h in hh_ids if h in found]
    out["purge"]["households"] += [h for h in hh_ids if h not in found]
    if found:
        residents = list(
            resident_rows(Resident.objects.filter(household__in=list(found))).order_by("id")
        )
        out["residents"] += _residents(residents, member, scope)

    # cases: in the territory, handled or reported by the member
    cases = _visible_cases(scope, member)
    if cases is not None:
        rows = list(_case_rows(rows_after(cases, state.get("c"))).order_by(*order)[: limit + 1])
        if len(rows) > limit:
            more, rows = True, rows[:limit]
        if rows:
            state["c"] = keyset_mark(rows[-1]["updated_at"], rows[-1]["id"])
        out["cases"] += [_case_payload(c, member) for c in rows]
    return more


def _inbox(state: dict[str, Any], member, out: dict[str, Any], limit: int) -> bool:  # type: ignore[no-untyped-def]
    """The member's inbox: new messages by id, and messages sent before whose read state
    changed since (read on another device of the member) by ``(read_at, id)``."""
    from gridsvc.supervision.models import InboxMessage

    more = False
    mine = InboxMessage.objects.filter(member=member)
    sent_up_to = state.get("i", 0)
    msgs = list(mine.filter(id__gt=sent_up_to).order_by("id")[: limit + 1])
    if len(msgs) > limit:
        more, msgs = True, msgs[:limit]
    if msgs:
        state["i"] = msgs[-1].id
    # (none sent before — a first sync: no read state to follow, no query)
    read = (
        list(
            rows_after(
                mine.filter(id__lte=sent_up_to, read_at__isnull=False), state.get("r"), "read_at"
            ).order_by("read_at", "id")[: limit + 1]
        )
        if sent_up_to
        else []
    )
    if len(read) > limit:
        more, read = True, read[:limit]
    if read:
        state["r"] = keyset_mark(read[-1].read_at, read[-1].id)
    out["inbox"] += [_inbox_payload(m) for m in read + msgs]
    return more


@functools.cache
def _case_model():  # type: ignore[no-untyped-def]
    """The Case model when the cases app supports the feed (once per process)."""
    try:
        from gridsvc.cases.models import Case  # type: ignore[attr-defined]
    except ImportError:
        return None
    if not any(f.name == "updated_at" for f in Case._meta.get_fields()):
        return None
    return Case


# only the columns _case_payload reads (a case row is wide: texts, JSON, encrypted parties),
# as a plain row; the point as two numbers (no GEOS object per case)
_CASE_COLUMNS = (
    "id",
    "updated_at",
    "number",
    "kind",
    "title",
    "category_id",
    "priority",
    "status",
    "level",
    "household_id",
    "unit_id",
    "building_id",
    "compound_id",
    "grid_id",
    "community_id",
    "street_id",
    "handler_id",
    "handler__username",
    "handler__display_name",
    "department_id",
    "department__name",
    "reported_at",
    "due_at",
    "due_stage",
    "card",
    "closed_at",
    "reported_by_id",  # whether the member reads the title in clear (gridsvc.cases.textmask)
)


def _case_rows(qs: QuerySet) -> QuerySet:
    from django.db.models import FloatField, Func

    return qs.values(*_CASE_COLUMNS).annotate(
        lon=Func("location", function="ST_X", output_field=FloatField()),
        lat=Func("location", function="ST_Y", output_field=FloatField()),
    )


def _case_payload(c: dict[str, Any], member) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from gridsvc.cases.models import RUNNING_STATUSES
    from gridsvc.cases.textmask import case_text_is_clear, masked_case_title

    handler = c["handler_id"]
    title = c["title"]
    if not case_text_is_clear(member, handler, c["reported_by_id"]):
        title = masked_case_title(title)  # as the API writes it to this member
    return {
        "id": c["id"],
        "number": c["number"],
        "kind": c["kind"],
        "title": title,
        "category": c["category_id"],
        "priority": c["priority"],
        "status": c["status"],
        "level": c["level"],
        "household": c["household_id"],
        "unit": c["unit_id"],
        "building": c["building_id"],
        "compound": c["compound_id"],
        "grid": c["grid_id"],
        "community": c["community_id"],
        "street": c["street_id"],
        "lon": round(c["lon"], 7),
        "lat": round(c["lat"], 7),
        "handler": handler,
        # str(Member): the display name, else the username
        "handler_name": (c["handler__display_name"] or c["handler__username"]) if handler else None,
        "mine": handler == member.pk,
        "department": c["department_id"],
        "department_name": c["department__name"] if c["department_id"] else None,
        "reported_at": c["reported_at"].isoformat(),
        "due_at": c["due_at"].isoformat() if c["due_at"] else None,
        "due_stage": c["due_stage"],
        "overdue": bool(
            c["due_at"] and c["status"] in RUNNING_STATUSES and c["due_at"] < timezone.now()
        ),
        "card": c["card"],
        "closed_at": c["closed_at"].isoformat() if c["closed_at"] else None,
        "updated_at": c["updated_at"].isoformat(),
    }


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
