"""Hot read statements as server-side prepared statements (psycopg 3).

Django sends every query as text with its parameters merged in (client-side binding), so
PostgreSQL parses and plans it again on every request. For the few statements every request
runs — the caller with their scope (:mod:`gridsvc.accounts.authentication`) and the chain for
a place (:mod:`gridsvc.chain.answer`), each a dozen joins and PostGIS calls — parsing and
planning cost several times the execution (1 ms of PostgreSQL CPU against 0.2 ms on a quiet
machine). :func:`fetchone` runs them through the same connection and transaction as Django,
prepared: psycopg prepares a statement the first time a connection runs it and reuses it;
after five runs PostgreSQL keeps a generic plan when it is as good, and stops planning.

Not behind PgBouncer in transaction mode (``GRIDSVC_PGBOUNCER``: a prepared statement lives in
one server session) nor when ``GRIDSVC_PREPARED=0``: then Django's cursor runs the statement.
Errors are Django's (``OperationalError`` → the 503 of DatabaseOutageMiddleware), and the
query is logged like Django's (``connection.queries``, ``CaptureQueriesContext``).

A statement's placeholders (``%(name)s`` or ``%s``) are turned into PostgreSQL's ``$n`` once
per process (:func:`numbered`) and it is sent by a ``RawCursor`` (issue 19): psycopg caches
that conversion only for statements under 4 kB and 50 parameters, and parsed the case's one
INSERT (107 parameters) again on every report, 0.16 ms.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from django.db import connections

T = TypeVar("T")
#: a statement's parameters: named (``%(name)s`` placeholders) or positional (``%s``)
Params = dict[str, Any] | Sequence[Any]


def _enabled(alias: str) -> bool:
    conn = connections[alias]
    if conn.vendor != "postgresql" or conn.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
        return False
    if os.environ.get("GRIDSVC_PREPARED", "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    try:
        import psycopg  # noqa: F401  - Django runs on psycopg 3 when it is installed
    except ImportError:  # pragma: no cover
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3


def _prepared_connection(alias: str) -> Any:
    """The psycopg connection under Django's, ready to prepare when asked (``prepare=True``)."""
    conn = connections[alias]
    conn.ensure_connection()
    raw = conn.connection
    if raw.prepare_threshold is None:
        # Django turns psycopg's preparing off (None: not even when asked); a threshold no
        # query reaches keeps Django's own queries unprepared and honours prepare=True here
        raw.prepare_threshold = 1_000_000_000
    return raw


_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)s|%s|%")


@lru_cache(maxsize=512)
def numbered(sql: str) -> tuple[str, tuple[str, ...] | int]:
    """``sql`` with psycopg's placeholders as PostgreSQL's ``$1, $2 …`` (``%%`` as ``%``),
    and what fills them: the parameter names in order (a name used twice is one ``$n``), or
    the number of positional ``%s``. Once per statement and process."""
    names: dict[str, int] = {}
    positional = 0

    def one(m: re.Match[str]) -> str:
        nonlocal positional
        if m.group(0) == "%%":
            return "%"
        if m.group(1) is not None:
            return f"${names.setdefault(m.group(1), len(names) + 1)}"
        if m.group(0) == "%s":
            positional += 1
            return f"${positional}"
        raise ValueError(f"a lone % in a statement (write %%): {sql[m.start() : m.start() + 40]!r}")

    query = _PLACEHOLDER.sub(one, sql)
    if names and positional:
        raise ValueError("a statement's placeholders are all named or all positional")
    return query, (tuple(names) if names else positional)


def _bound(sql: str, params: Params) -> tuple[str, list[Any]]:
    """The numbered statement of ``sql`` (:func:`numbered`) and its parameters in order."""
    query, order = numbered(sql)
    if order == 0:  # no placeholders: nothing to send, whatever ``params`` holds
        return query, []
    if isinstance(order, int):
        args = list(params.values() if isinstance(params, dict) else params)
        if len(args) != order:
            raise TypeError(f"the statement has {order} placeholders, {len(args)} parameters")
        return query, args
    if not isinstance(params, dict):
        raise TypeError("a statement with named placeholders takes a dict of parameters")
    try:
        return query, [params[name] for name in order]
    except KeyError as exc:
        raise TypeError(f"parameter {exc.args[0]!r} missing") from None


def _log(alias: str, label: str, sql: str, start: float) -> None:
    """Log the statement as Django logs its own (``connection.queries``)."""
    conn = connections[alias]
    if conn.queries_logged:
        conn.queries_log.append(
            {"sql": f"/* {label} */ {sql}", "time": f"{time.monotonic() - start:.3f}"}
        )


def _run(sql: str, params: Params, alias: str, fetch: Callable[[Any], T]) -> T:
    """Run ``sql`` prepared on this connection and ``fetch`` its rows from the cursor."""
    conn = connections[alias]
    if not _enabled(alias):
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return fetch(cur)
    raw = _prepared_connection(alias)
    import psycopg

    query, args = _bound(sql, params)
    start = time.monotonic()
    # a server-binding cursor: Django's connection makes ClientCursors (parameters merged into
    # the text), which are never prepared
    with conn.wrap_database_errors, psycopg.RawCursor(raw) as cur:
        cur.execute(query, args, prepare=True)
        found = fetch(cur)
    _log(alias, "prepared", sql, start)
    return found


def fetchone(sql: str, params: dict[str, Any], alias: str = "default") -> tuple | None:
    """The first row of ``sql`` (``%(name)s`` placeholders), prepared on this connection."""
    return _run(sql, params, alias, lambda cur: cur.fetchone())


def fetchall(sql: str, params: dict[str, Any], alias: str = "default") -> list[tuple]:
    """Every row of ``sql`` (``%(name)s`` placeholders), prepared on this connection, as
    :func:`fetchone` runs it (the same fallbacks, errors and query log) — for the page
    statements of the read paths (api.pagination.PreparedPage)."""
    return _run(sql, params, alias, lambda cur: cur.fetchall())


def fetchall_named(
    sql: str, params: Params, alias: str = "default"
) -> tuple[list[str], list[tuple]]:
    """The column names of ``sql`` and every row, prepared on this connection as
    :func:`fetchall` runs it; ``params`` named (``%(name)s``) or positional (``%s``). For a
    statement whose columns the caller reads by name (a model's row:
    :mod:`gridsvc.cases.services.reporting`'s nearby cases)."""
    return _run(
        sql, params, alias, lambda cur: ([col[0] for col in cur.description], cur.fetchall())
    )


def _ends_the_transaction(alias: str) -> bool:
    """Whether the connection's transaction is one atomic block's own and may be committed
    now: the outermost block (no savepoint, nothing around it — a test's transaction is
    around a request's), not marked for rollback, and begun on the server."""
    conn = connections[alias]
    if not (conn.in_atomic_block and conn.commit_on_exit) or conn.needs_rollback:
        return False
    if len(conn.atomic_blocks) != 1 or conn.savepoint_ids or conn.closed_in_transaction:
        return False
    from psycopg.pq import TransactionStatus

    raw = conn.connection
    return raw is not None and raw.info.transaction_status == TransactionStatus.INTRANS


def fetchone_then_commit(sql: str, params: dict[str, Any], alias: str = "default") -> tuple | None:
    """As :func:`fetchone`, for the last statement of a transaction that its atomic block is
    about to commit: the statement and the ``COMMIT`` sent in ONE round trip (a pipeline),
    when the block is the connection's only one (:func:`_ends_the_transaction`). The block's
    own commit then finds nothing to commit (psycopg sends no COMMIT for a connection that is
    not in a transaction) and runs its on-commit hooks as always; a COMMIT that fails raises
    here, inside the block, which rolls back as for any error. Otherwise (nested in another
    block, a test's transaction, PgBouncer) the statement runs as :func:`fetchone` and the
    block commits it. For the Idempotency-Key's answer, stored last by every write (issue 19:
    one round trip fewer per write)."""
    conn = connections[alias]
    if not _enabled(alias) or not _ends_the_transaction(alias):
        return fetchone(sql, params, alias)
    import psycopg

    if not psycopg.Pipeline.is_supported():  # pragma: no cover - libpq < 14
        return fetchone(sql, params, alias)
    raw = _prepared_connection(alias)
    query, args = _bound(sql, params)
    start = time.monotonic()
    with conn.wrap_database_errors, psycopg.RawCursor(raw) as cur, psycopg.RawCursor(raw) as end:
        with raw.pipeline():  # one Sync for both, at the pipeline's end (raw.commit() syncs)
            cur.execute(query, args, prepare=True)
            end.execute("COMMIT")
        found = cur.fetchone()
    _log(alias, "prepared, with COMMIT", sql, start)
    return found


def fetchone_generic(sql: str, params: dict[str, Any], alias: str = "default") -> tuple | None:
    """As :func:`fetchone`, and planned once: PostgreSQL's generic plan of the statement
    (``plan_cache_mode = force_generic_plan`` set for this statement alone: SET, the
    statement and RESET sent together in one round trip, one implicit transaction — an
    error rolls the SET back). For a statement PostgreSQL would otherwise plan again on every
    run (array parameters make its generic plan look dearer than it is: the change feed's
    probe spent 1.5 ms planning to run in 0.3). The statement must be written so that its
    generic plan is good whatever the parameters (tests/test_request_cost_reads.py)."""
    rows = fetchall_pipelined([(sql, params)], alias, generic=True)[0]
    return rows[0] if rows else None


def fetchall_pipelined(
    statements: list[tuple[str, dict[str, Any]]], alias: str = "default", generic: bool = False
) -> list[list[tuple]]:
    """Every row of each of ``statements`` (``(sql, params)``), in order, as :func:`fetchall`
    reads them, all sent in ONE round trip (a psycopg pipeline; one implicit transaction: an
    error in one aborts the others), each prepared. ``generic``: each planned once, with its
    generic plan (``plan_cache_mode`` set around them, as :func:`fetchone_generic`); every
    statement must then be written so that its generic plan is good. For a request that
    runs several independent statements (the change feed's first sync, issue 19)."""
    conn = connections[alias]
    if not _enabled(alias):
        return [fetchall(sql, params, alias) for sql, params in statements]
    import psycopg

    if not psycopg.Pipeline.is_supported():  # pragma: no cover - libpq < 14
        return [fetchall(sql, params, alias) for sql, params in statements]
    raw = _prepared_connection(alias)
    bound = [_bound(sql, params) for sql, params in statements]
    start = time.monotonic()
    cursors = [psycopg.RawCursor(raw) for _ in statements]
    try:
        with conn.wrap_database_errors:
            with raw.pipeline():
                if generic:
                    raw.execute("SET plan_cache_mode = force_generic_plan")
                for cur, (query, args) in zip(cursors, bound, strict=True):
                    cur.execute(query, args, prepare=True)
                if generic:
                    raw.execute("RESET plan_cache_mode")
            found = [cur.fetchall() for cur in cursors]
    finally:
        for cur in cursors:
            cur.close()
    label = "prepared, pipelined" + (", generic" if generic else "")
    for sql, _ in statements:
        _log(alias, label, sql, start)
    return found
