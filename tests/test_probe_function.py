"""The change feed's probe as a PL/pgSQL function (issue 19, gridsvc.visits.sync.probe_function):
installed by ``migrate``, it answers what the probe's statement answers, for every kind of
member and cursor; a quiet poll is still one statement; no setting of it stays in the session
(behind PgBouncer in transaction mode the next client gets the connection); without the
function (a database not migrated since the code changed) the feed answers the same bytes."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from gridsvc.accounts.models import Member
from gridsvc.chain.scope import scope_for
from gridsvc.prepared import fetchone_generic
from gridsvc.territory.models import Household
from gridsvc.visits import sync
from gridsvc.visits.models import VisitTask

from .test_request_cost import jwt_client

FEED = "/api/v1/sync/changes/"
WHO = ["grid1", "cadre1", "street", "mediator", "bh-001", "uh-001-1", "pm-C01", "cadre4"]


def _drain(client, cursor: str | None = None) -> str:  # type: ignore[no-untyped-def]
    body: dict = {"cursor": cursor}
    for _ in range(100):
        r = client.get(FEED + (f"?since={body['cursor']}" if body["cursor"] else ""))
        assert r.status_code == 200, r.content[:300]
        body = r.json()
        if not body["has_more"]:
            return body["cursor"]
    raise AssertionError("the feed did not end")


def _statement_row(member: Member, state: dict) -> tuple:
    """The probe's row as its statement answers it (the code before the function)."""
    params = sync._probe_params(state)
    params["m"] = member.pk
    params["now"] = timezone.now()
    scope = scope_for(member)
    params.update(
        {k: sorted(getattr(scope, f"{key}_ids")) for k, key in sync._PROBE_ARRAYS.items()}
    )
    return fetchone_generic(sync._probe_sql(), params)


def _function_row(member: Member, state: dict, from_positions: bool = False) -> tuple:
    name = sync.probe_function()
    assert name is not None, "migrate installed the probe's function"
    params = sync._probe_params(state)
    params["m"] = member.pk
    params["now"] = timezone.now()
    scope = scope_for(member)
    for k, key in sync._PROBE_ARRAYS.items():
        params[k] = None if from_positions else sorted(getattr(scope, f"{key}_ids"))
    args = ", ".join(f"%({n})s::{sync._PROBE_TYPES[n]}" for n in sync._FN_ARGS)
    with connection.cursor() as cur:
        cur.execute(f"SELECT * FROM {name}({args})", params)
        return cur.fetchone()


def test_migrate_installs_the_function_of_this_code(demo) -> None:
    name, _ = sync.probe_function_sql()
    with connection.cursor() as cur:
        cur.execute("SELECT prosrc, proconfig FROM pg_proc WHERE proname = %s", [name])
        rows = cur.fetchall()
    assert len(rows) == 1
    src, config = rows[0]
    assert config == ["plan_cache_mode=force_generic_plan"]
    assert "visits_visittask" in src and "supervision_inboxmessage" in src
    assert sync.probe_function() == name


@pytest.mark.parametrize("who", WHO)
def test_the_function_answers_what_the_statement_answers(demo, who) -> None:
    member = Member.objects.get(username=who)
    client = jwt_client(who)
    cursor = _drain(client)
    state = sync.decode_cursor(cursor, member.pk)
    for st in ({}, state):
        old = _statement_row(member, st)
        assert _function_row(member, st) == old
        assert _function_row(member, st, from_positions=True) == old
    assert _statement_row(member, state)[7] is False, "nothing new after the drain"
    # something changes in the territory: both say so, and the territory is the same
    hh = scope_for(member).filter(Household.objects.all()).order_by("id").first()
    if hh is not None:
        hh.room = (hh.room or "") + "F"
        hh.save()
        old = _statement_row(member, state)
        assert old[7] is True
        assert _function_row(member, state) == old
        assert _function_row(member, state, from_positions=True) == old


def test_tasks_and_cases_held_outside_the_territory_are_the_same(demo) -> None:
    """A grid member's open task in another grid (handed over) and a case they handle
    elsewhere: the snapshot's tasks_out and cases_out, as the statement finds them."""
    from gridsvc.cases.models import Case, Status

    grid1 = Member.objects.get(username="grid1")
    scope = scope_for(grid1)
    outside = (
        VisitTask.objects.exclude(id__in=scope.filter(VisitTask.objects.all()))
        .filter(status__in=[VisitTask.Status.OPEN, VisitTask.Status.OVERDUE])
        .order_by("id")
        .first()
    )
    assert outside is not None
    VisitTask.objects.filter(pk=outside.pk).update(assigned_member=grid1)
    case = Case.objects.exclude(id__in=scope.filter(Case.objects.all())).order_by("id").first()
    assert case is not None
    Case.objects.filter(pk=case.pk).update(handler=grid1, status=Status.ASSIGNED)
    old = _statement_row(grid1, {})
    assert outside.id in json.loads(old[3])
    assert _function_row(grid1, {}) == old
    assert _function_row(grid1, {}, from_positions=True) == old


@pytest.mark.parametrize("who", ["grid1", "street", "bh-001"])
def test_a_quiet_poll_is_one_statement_through_the_function(demo, who) -> None:
    client = jwt_client(who)
    cursor = _drain(client)
    client.get(f"{FEED}?since={cursor}")
    with CaptureQueriesContext(connection) as ctx:
        r = client.get(f"{FEED}?since={cursor}")
    assert r.status_code == 200 and r.json()["cursor"] == cursor
    sqls = [q["sql"] for q in ctx.captured_queries]
    assert len(sqls) == 1, sqls
    assert sync.probe_function() in sqls[0] and "accounts_device" in sqls[0]
    assert "plan_cache_mode" not in sqls[0]


def _show_plan_mode() -> str:
    with connection.cursor() as cur:
        cur.execute("SHOW plan_cache_mode")
        return cur.fetchone()[0]


@pytest.mark.parametrize("prepared", ["1", "0"])
def test_no_setting_of_the_probe_stays_in_the_session(demo, monkeypatch, prepared) -> None:
    """GRIDSVC_PREPARED=0 is how the feed runs behind PgBouncer in transaction mode: the
    next statement on the server connection may be another client's."""
    monkeypatch.setenv("GRIDSVC_PREPARED", prepared)
    client = jwt_client("grid1")
    cursor = _drain(client)
    quiet = client.get(f"{FEED}?since={cursor}")
    assert quiet.status_code == 200 and quiet.json()["cursor"] == cursor
    assert _show_plan_mode() == "auto"
    # a direct probe (no rider: the estimate, a territory snapshot) leaves none either
    member = Member.objects.get(username="grid1")
    sync.territory_data(member, scope_for(member))
    assert _show_plan_mode() == "auto"


def test_without_the_function_the_feed_answers_the_same_bytes(demo, monkeypatch) -> None:
    client = jwt_client("cadre1")
    cursor = _drain(client)
    with_fn = client.get(f"{FEED}?since={cursor}")
    monkeypatch.setitem(sync._FUNCTION_READY, "default", False)
    assert sync.probe_function() is None
    with CaptureQueriesContext(connection) as ctx:
        without = client.get(f"{FEED}?since={cursor}")
    assert without.content == with_fn.content
    assert without["Content-Type"] == with_fn["Content-Type"]
    assert not any(sync._FN_PREFIX in q["sql"] for q in ctx.captured_queries)
    assert any("WITH pos AS MATERIALIZED" in q["sql"] for q in ctx.captured_queries)


# ---------------------------------------------------------------- a cached tile rides too
# (gridsvc.layers.services.guessed_variant: the cache row of the variant a client's last tile
# of the layer had is read with the caller's query; used only when it is the caller's)
HEADERS = ("ETag", "Last-Modified", "Cache-Control", "Vary", "X-Tile-Features", "Content-Type")


def _tile(client, path: str, **headers: str):  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        r = client.get(path, **headers)
    return r, [q["sql"] for q in ctx.captured_queries]


def _same(r, plain) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == plain.status_code and r.content == plain.content
    for h in HEADERS:
        assert r.get(h) == plain.get(h), h


@pytest.mark.parametrize("gzip", [True, False])
def test_a_cached_tile_is_one_statement_with_the_same_bytes(demo, gzip) -> None:
    from .test_layers_tiles import tile_of
    from .test_request_cost_fixed import _forced, _login

    accept = {"HTTP_ACCEPT_ENCODING": "gzip"} if gzip else {}
    client, _ = _login("grid1", device="tile-phone")
    z, x, y = tile_of(demo.grids[0], 16)
    path = f"/tiles/buildings/{z}/{x}/{y}.mvt"
    first = client.get(path, **accept)  # built (or cached): its variant is remembered
    assert first.status_code == 200
    r, sqls = _tile(client, path, **accept)
    assert len(sqls) == 1 and "accounts_device" in sqls[0] and "layers_tilecache" in sqls[0]
    assert r["X-Tile-Cache"] == "hit" and r.content
    _same(r, _forced("grid1").get(path, **accept))
    # revalidated: 304, one statement, as a forced caller gets it
    inm = {"HTTP_IF_NONE_MATCH": f'"stale", {r["ETag"]}'}
    r304, sqls = _tile(client, path, **inm)
    assert r304.status_code == 304 and r304.content == b"" and len(sqls) == 1, sqls
    _same(r304, _forced("grid1").get(path, **inm))
    # an ETag not held: the whole tile, one statement
    stale, sqls = _tile(client, path, HTTP_IF_NONE_MATCH='"stale"', **accept)
    assert stale.status_code == 200 and len(sqls) == 1
    _same(stale, r)
    # another tile of the same layer: the variant is the caller's, one statement once cached
    other = f"/tiles/buildings/{z}/{x + 1}/{y}.mvt"
    client.get(other, **accept)
    r2, sqls = _tile(client, other, **accept)
    assert r2.status_code == 200 and len(sqls) == 1
    _same(r2, _forced("grid1").get(other, **accept))


def test_a_wrong_guess_is_never_answered(demo) -> None:
    """The credentials' remembered variant is only a guess: when it is not the caller's (the
    scope changed, or a guess left by someone else), the caller's own tile comes."""
    from gridsvc.layers import services as S

    from .test_layers_tiles import fetch, tile_of
    from .test_request_cost_fixed import _forced, _login

    z, x, y = tile_of(demo.grids[0], 16)
    c1, t1 = _login("grid1", device="tile-1")
    c2, t2 = _login("grid2", device="tile-2")
    r1, d1 = fetch(c1, "households", z, x, y)
    r2, d2 = fetch(c2, "households", z, x, y)
    assert d1 != d2 and r1["ETag"] != r2["ETag"]
    # grid2's credentials guess grid1's variant: the row read with them is grid1's tile
    S._GUESSES[(f"Bearer {t2['access']}", "households")] = S.guessed_variant(
        f"Bearer {t1['access']}", "households"
    )
    r, sqls = _tile(c2, f"/tiles/households/{z}/{x}/{y}.mvt")
    assert r["ETag"] == r2["ETag"] and len(sqls) == 2, "looked up again, grid2's own"
    _same(r, _forced("grid2").get(f"/tiles/households/{z}/{x}/{y}.mvt"))
    # and grid1's ETag from grid2 is not "not modified"
    r, d = fetch(c2, "households", z, x, y, HTTP_IF_NONE_MATCH=r1["ETag"])
    assert r["ETag"] == r2["ETag"] and d == d2


def test_a_revoked_device_gets_no_cached_tile(demo) -> None:
    from gridsvc.accounts.models import Device

    from .test_layers_tiles import tile_of
    from .test_request_cost_fixed import _login

    client, tokens = _login("grid1", device="lost-tile-phone")
    z, x, y = tile_of(demo.grids[0], 16)
    path = f"/tiles/buildings/{z}/{x}/{y}.mvt"
    etag = client.get(path)["ETag"]
    assert client.get(path).status_code == 200  # the guess is in place
    Device.objects.filter(pk=tokens["device"]).update(revoked_at=timezone.now())
    for headers in ({}, {"HTTP_IF_NONE_MATCH": etag}):
        r = client.get(path, **headers)
        assert r.status_code == 401 and r.json()["code"] == "device_revoked"
        assert "ETag" not in r
    Member.objects.filter(username="grid1").update(is_active=False)
    Device.objects.filter(pk=tokens["device"]).update(revoked_at=None)
    r = client.get(path)
    assert r.status_code == 401 and "ETag" not in r
