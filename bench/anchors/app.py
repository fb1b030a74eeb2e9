"""The anchor: a minimal Starlette + asyncpg service doing what ``GET /api/v1/chain/`` does.

    uvicorn bench.anchors.app:app --workers 3 --no-access-log --port N

Per request: the bearer token checked as gridsvc checks it (HS256 with the same secret key,
signature, expiry, ``token_type`` access, the user id and device claims), then the same one
query gridsvc's authentication runs (user row, revoked device, held positions → scope), the
user active, then the same chain statement (:mod:`gridsvc.chain.answer`), the same territory
rule on the resolved ids and the same answer dictionary, as JSON. What is left out is Django,
DRF and their middleware: the difference is what the framework costs.

Django is set up once at start-up only to take the SQL text and the scope rules from gridsvc
(so both sides run the same statements); no ORM is used per request.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import benchenv  # noqa: E402

benchenv.apply()

import django  # noqa: E402

django.setup()

import asyncpg  # noqa: E402
import jwt  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from gridsvc.accounts.authentication import _user_scope_sql  # noqa: E402
from gridsvc.chain import answer as chain  # noqa: E402
from gridsvc.chain.scope import Scope, _scope_from_rows  # noqa: E402

Member = get_user_model()


def _nodelay_everywhere() -> None:
    """uvicorn ``--workers`` hands each worker the listening socket by file descriptor, whose
    ``proto`` reads 0, so asyncio does not set TCP_NODELAY on the accepted connections; an
    answer written as headers then body then waits for the client's delayed ACK (40 ms).
    Set it on every accepted connection."""
    import asyncio.selector_events as se
    import socket

    init = se._SelectorSocketTransport.__init__

    def __init__(self, loop, sock, *args, **kwargs):  # type: ignore[no-untyped-def]
        init(self, loop, sock, *args, **kwargs)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not TCP (a Unix socket)
            pass

    se._SelectorSocketTransport.__init__ = __init__  # type: ignore[method-assign]


_nodelay_everywhere()


def _numbered(sql: str) -> tuple[str, list[str]]:
    """``%(name)s`` placeholders → asyncpg's ``$n`` (one number per name)."""
    names: list[str] = []

    def sub(m: re.Match) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return re.sub(r"%\((\w+)\)s", sub, sql), names


_USER_SQL, _FIELDS = _user_scope_sql(Member)
USER_SQL, USER_ARGS = _numbered(_USER_SQL)
POINT_SQL, POINT_ARGS = _numbered(chain.SQL_POINT)
REF_SQL = {name: _numbered(sql) for name, sql in chain.SQL_REF.items()}
SECRET = settings.SECRET_KEY
ACTIVE = _FIELDS.index("is_active")
SUPER = _FIELDS.index("is_superuser")
TOL = float(settings.GRIDSVC["NEAREST_BUILDING_TOLERANCE_M"])
DSN = settings.DATABASES["default"]
pool: asyncpg.Pool | None = None


def _args(names: list[str], values: dict) -> list:
    return [values[n] for n in names]


class Unauthorized(Exception):
    pass


async def _caller(con: asyncpg.Connection, request: Request) -> Scope:
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):
        raise Unauthorized
    try:
        claims = jwt.decode(header[7:], SECRET, algorithms=["HS256"])
    except jwt.PyJWTError:
        raise Unauthorized from None
    if claims.get("token_type") != "access" or "jti" not in claims:
        raise Unauthorized
    dev = claims.get("dev")
    values = {"uid": int(claims["user_id"]), "dev": dev and int(dev), "now": datetime.now(UTC)}
    row = await con.fetchrow(USER_SQL, *_args(USER_ARGS, values))
    n = len(_FIELDS)
    if row is None or row[n] or not row[ACTIVE]:
        raise Unauthorized
    if row[SUPER]:
        return Scope(everything=True)
    return _scope_from_rows(row[n + 1] or [])


async def chain_view(request: Request) -> JSONResponse:
    q = request.query_params
    when = datetime.now(UTC)
    assert pool is not None
    async with pool.acquire() as con:
        try:
            scope = await _caller(con, request)
        except Unauthorized:
            return JSONResponse({"detail": "not authenticated"}, status_code=401)
        ref = next((name for name in ("household", "unit", "building") if name in q), None)
        if ref is not None:
            sql, names = REF_SQL[ref]
            row = await con.fetchrow(sql, *_args(names, {"ref": int(q[ref]), "now": when}))
            res = None if row is None else chain.Resolved(tuple(row))
            ok = res is not None and scope.allows_building_level(
                ref,
                building_id=res.building_id,
                unit_id=res.unit_id,
                compound_id=res.compound_id,
                grid_id=res.grid_id,
                community_id=res.community_id,
                street_id=res.street_id,
            )
        else:
            lon, lat = float(q["lon"]), float(q["lat"])
            deg = TOL / (111_320.0 * max(math.cos(math.radians(lat)), 0.01))
            values = {"lon": lon, "lat": lat, "deg": deg, "tol": TOL, "now": when}
            row = await con.fetchrow(POINT_SQL, *_args(POINT_ARGS, values))
            res = chain.Resolved(tuple(row))
            if res.grid_id is None:
                res.method = "outside"
            # a building head's grid (the one query gridsvc may run) is not needed by the bench
            ok = (
                scope.everything
                or res.grid_id in scope.grid_ids
                or res.community_id in scope.community_ids
                or res.street_id in scope.street_ids
            )
        if not ok:
            return JSONResponse({"detail": "not found in your territory"}, status_code=404)
    return JSONResponse(chain.answer(res, when))


async def floor(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def floor_auth(request: Request) -> JSONResponse:
    """The JWT check and the caller's query only (gridsvc's ``/bench/floor-auth/``)."""
    assert pool is not None
    async with pool.acquire() as con:
        try:
            await _caller(con, request)
        except Unauthorized:
            return JSONResponse({"detail": "not authenticated"}, status_code=401)
    return JSONResponse({"ok": True})


@contextlib.asynccontextmanager
async def lifespan(_app: Starlette):  # type: ignore[no-untyped-def]
    global pool
    pool = await asyncpg.create_pool(
        host=DSN["HOST"] or "127.0.0.1",
        port=int(DSN["PORT"] or 5432),
        user=DSN["USER"],
        password=DSN["PASSWORD"],
        database=DSN["NAME"],
        min_size=2,
        max_size=int(os.environ.get("BENCH_ANCHOR_POOL", "4")),
    )
    yield
    await pool.close()


app = Starlette(
    routes=[Route("/chain", chain_view), Route("/floor", floor), Route("/floor-auth", floor_auth)],
    lifespan=lifespan,
)
