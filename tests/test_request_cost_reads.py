"""The read paths a member hits most, cheaper (issue 19) and answering the same bytes:

- "my cases" (``/api/v1/cases/?mine=1``) and "my tasks" (``/api/v1/visit-tasks/?mine=1``):
  the page's statement is built by the ORM once per process and runs as a server-side
  prepared statement (api.pagination.PreparedPage) — the caller and that one statement;
  what it answers is what the ORM path answers, byte for byte, for several roles, pages,
  page sizes and CRSs; any other filter or an ordering takes the ORM path and is obeyed;
- the change feed's first sync does not read the incremental streams of the page that
  started it (they hold only what changed during the request, sent by the next poll).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api.cases import views as case_views
from api.visits import views as visit_views
from gridsvc.accounts.models import Member
from gridsvc.cases.models import Case
from gridsvc.visits.models import VisitTask

from .test_request_cost import jwt_client

pytestmark = pytest.mark.django_db

CASES = "/api/v1/cases/"
TASKS = "/api/v1/visit-tasks/"


def _get(client, path: str):  # type: ignore[no-untyped-def]
    """``(response, SQL of the queries it ran)``."""
    with CaptureQueriesContext(connection) as ctx:
        r = client.get(path)
    return r, [q["sql"] for q in ctx.captured_queries]


def _orm_answer(client, path: str, monkeypatch, module, name: str):  # type: ignore[no-untyped-def]
    """The same request answered by the ORM path (the prepared one turned off)."""
    with monkeypatch.context() as m:
        m.setattr(module, name, lambda *a, **k: False)
        r, sqls = _get(client, path)
    assert not any(s.startswith("/* prepared */ SELECT") and " LIMIT " in s for s in sqls)
    return r


def _give_cases(member: Member, n: int) -> None:
    """Hand ``member`` at least ``n`` cases (a few pages of 2)."""
    have = Case.objects.filter(handler=member).count()
    if have < n:
        others = Case.objects.exclude(handler=member).order_by("id")[: n - have]
        Case.objects.filter(id__in=[c.id for c in others]).update(handler=member)


def _my_cases_paths() -> list[str]:
    return [
        f"{CASES}?mine=1",
        f"{CASES}?mine=true&page_size=2",
        f"{CASES}?mine=1&page_size=2&page=2",
        f"{CASES}?mine=TRUE&page=1&page_size=3&crs=gcj02",
        f"{CASES}?mine=1&crs=bd09&page_size=500",
    ]


@pytest.mark.parametrize("who", ["cadre1", "grid1", "street", "bh-001"])
def test_my_cases_is_one_prepared_statement_answering_the_orm_bytes(demo, monkeypatch, who):
    member = Member.objects.get(username=who)
    _give_cases(member, 5)
    # the parties' masks depend on who reported: one of the member's cases reported by them
    first = Case.objects.filter(handler=member).order_by("id").first()
    Case.objects.filter(pk=first.pk).update(reported_by=member)
    client = jwt_client(who)
    for path in _my_cases_paths():
        client.get(path)
        r, sqls = _get(client, path)
        assert r.status_code == 200, (path, r.content[:300])
        assert len(sqls) <= 2, sqls  # the caller, the page with its count
        assert sqls[-1].startswith("/* prepared */ SELECT"), sqls[-1][:200]
        want = _orm_answer(client, path, monkeypatch, case_views, "_mine_only")
        assert r.content == want.content, path
    body = client.get(f"{CASES}?mine=1&page_size=2").json()
    assert body["count"] == Case.objects.filter(handler=member).count() >= 5
    assert body["next"].endswith("?mine=1&page=2&page_size=2")
    # past the end, and page=last: DRF's answers, as before
    assert client.get(f"{CASES}?mine=1&page=99").status_code == 404
    last = client.get(f"{CASES}?mine=1&page_size=2&page=last")
    assert last.status_code == 200
    assert (
        last.content
        == _orm_answer(
            client, f"{CASES}?mine=1&page_size=2&page=last", monkeypatch, case_views, "_mine_only"
        ).content
    )
    assert client.get(f"{CASES}?mine=1&page_size=0").status_code == 400
    assert client.get(f"{CASES}?mine=1&crs=mars").status_code == 400


def test_my_cases_with_a_filter_or_an_ordering_takes_the_orm_path_and_obeys_it(demo) -> None:
    cadre = Member.objects.get(username="cadre1")
    _give_cases(cadre, 6)
    mine = Case.objects.filter(handler=cadre)
    one = mine.order_by("id").first()
    Case.objects.filter(pk=one.pk).update(status="on_hold", priority=1)
    client = jwt_client("cadre1")
    r, sqls = _get(client, f"{CASES}?mine=1&status=on_hold")
    assert r.status_code == 200
    assert not sqls[-1].startswith("/* prepared */"), sqls[-1][:200]
    got = [c["id"] for c in r.json()["results"]]
    assert got == list(
        mine.filter(status="on_hold").order_by("-reported_at", "-id").values_list("id", flat=True)
    )
    r = client.get(f"{CASES}?mine=1&ordering=priority")
    assert r.json()["results"][0]["id"] == one.pk
    # another member's cases never come with mine=1
    r = client.get(f"{CASES}?mine=1&page_size=500")
    assert {c["handler"] for c in r.json()["results"]} == {cadre.pk}


@pytest.mark.parametrize("who", ["grid1", "grid2", "cadre1"])
def test_my_tasks_is_one_prepared_statement_answering_the_orm_bytes(demo, monkeypatch, who):
    member = Member.objects.get(username=who)
    client = jwt_client(who)
    paths = [
        f"{TASKS}?mine=1",
        f"{TASKS}?mine=true&page=2",
        f"{TASKS}?mine=True&page_size=7&page=3",
        f"{TASKS}?mine=1&page_size=500",
    ]
    for path in paths:
        client.get(path)
        r, sqls = _get(client, path)
        if r.status_code == 404:  # a member with few tasks: past the end as before
            assert (
                _orm_answer(client, path, monkeypatch, visit_views, "_prepared_mine").status_code
                == 404
            )
            continue
        assert r.status_code == 200, (path, r.content[:300])
        assert len(sqls) <= 2, sqls
        assert sqls[-1].startswith("/* prepared */ SELECT"), sqls[-1][:200]
        want = _orm_answer(client, path, monkeypatch, visit_views, "_prepared_mine")
        assert r.content == want.content, path
    body = client.get(f"{TASKS}?mine=1&page_size=500").json()
    assert body["count"] == VisitTask.objects.filter(assigned_member=member).count()


def test_grid1_has_pages_of_tasks_and_filters_take_the_orm_path(demo) -> None:
    grid1 = Member.objects.get(username="grid1")
    mine = VisitTask.objects.filter(assigned_member=grid1).order_by("due_on", "id")
    assert mine.count() > 60, "more than a page"
    client = jwt_client("grid1")
    body = client.get(f"{TASKS}?mine=1&page=2&page_size=20").json()
    assert [t["id"] for t in body["results"]] == list(mine.values_list("id", flat=True)[20:40])
    assert body["previous"].endswith("?mine=1&page_size=20")
    # a filter: the ORM path, obeyed
    status = mine.first().status
    r, sqls = _get(client, f"{TASKS}?mine=1&status={status}")
    assert not sqls[-1].startswith("/* prepared */")
    assert r.json()["count"] == mine.filter(status=status).count()
    due = mine[10].due_on.isoformat()
    r, sqls = _get(client, f"{TASKS}?mine=1&due_from={due}")
    assert not sqls[-1].startswith("/* prepared */")
    assert r.json()["count"] == mine.filter(due_on__gte=due).count()
    # mine=0 / no mine: every task visible, not only mine
    assert client.get(f"{TASKS}?mine=0").json()["count"] >= mine.count()
    assert client.get(f"{TASKS}?mine=maybe").status_code == 400
    assert client.get(f"{TASKS}?mine=1&page=999").status_code == 404


# ---------------------------------------------------------------- the change feed
FEED = "/api/v1/sync/changes/"


def _drain(client, cursor: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    body: dict = {"cursor": cursor}
    for _ in range(100):
        r = client.get(FEED + (f"?since={body['cursor']}" if body["cursor"] else ""))
        assert r.status_code == 200, r.content[:300]
        body = r.json()
        if not body["has_more"]:
            return body
    raise AssertionError("the feed did not end")


def _plans() -> tuple[int, int]:
    """(generic, custom) plans of the feed's probe on this connection."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT COALESCE(SUM(generic_plans), 0), COALESCE(SUM(custom_plans), 0)"
            " FROM pg_prepared_statements"
            " WHERE statement LIKE '%%gridsvc_feed_probe_%%'"
        )
        row = cur.fetchone()
        cur.execute("SHOW plan_cache_mode")
        assert cur.fetchone()[0] == "auto", "the probe's plan mode stays its own"
    return row or (0, 0)


@pytest.mark.parametrize("who", ["grid1", "cadre1", "street", "bh-001"])
def test_nothing_new_is_one_probe_planned_once_and_a_change_still_comes(demo, who) -> None:
    from gridsvc.chain.scope import scope_for
    from gridsvc.territory.models import Household

    member = Member.objects.get(username=who)
    client = jwt_client(who)
    cursor = _drain(client)["cursor"]
    for _ in range(8):  # PostgreSQL would choose a custom plan for the first five
        r, sqls = _get(client, f"{FEED}?since={cursor}")
        assert r.status_code == 200
        assert len(sqls) == 1, sqls  # the probe rides with the caller's query
        assert sqls[0].startswith("/* prepared */ SELECT u.*, r.*"), sqls[0][:80]
        assert "gridsvc_feed_probe_" in sqls[0]  # the probe's function (generic plans)
        body = r.json()
        assert body["cursor"] == cursor and not body["has_more"]
        assert not any(body[k] for k in ("tasks", "households", "residents", "cases", "inbox"))
    # the probe's function plans its statements once (generic); the statement calling it
    # is planned for its first runs, then never again
    generic, custom = _plans()
    for _ in range(3):
        client.get(f"{FEED}?since={cursor}")
    assert _plans() == (generic + 3, custom), (generic, custom)
    # a household of the territory changes: the next poll brings it
    hh = scope_for(member).filter(Household.objects.all()).order_by("id").first()
    assert hh is not None, f"{who} sees households"
    hh.room = (hh.room or "") + "B"
    hh.save()
    body = client.get(f"{FEED}?since={cursor}").json()
    assert hh.id in [h["id"] for h in body["households"]]
    # a task assigned to the member changes
    task = VisitTask.objects.filter(assigned_member=member).order_by("id").first()
    if task is not None:
        cursor = _drain(client, body["cursor"])["cursor"]
        task.save()
        body = client.get(f"{FEED}?since={cursor}").json()
        assert task.id in [t["id"] for t in body["tasks"]]


def test_a_first_sync_reads_no_incremental_stream_and_the_next_poll_brings_later_changes(
    demo,
) -> None:
    """A first sync that fits one page (a building head's): the page that starts it reads
    no incremental stream (its marks are the request's start); what changes right after it
    comes with the next poll."""
    from gridsvc.chain.scope import scope_for
    from gridsvc.territory.models import Household

    client = jwt_client("bh-001")
    client.get(FEED)  # the territory's snapshot row, made once and shared
    r, sqls = _get(client, FEED)
    assert r.status_code == 200
    body = r.json()
    assert body["households"] and body["residents"] and not body["has_more"]
    assert not any('"household_id_ref"' in s for s in sqls), "the change log stream was read"
    assert not any('"read_at" IS NOT NULL' in s for s in sqls), "no inbox read state to follow"
    hh = scope_for(Member.objects.get(username="bh-001")).filter(Household.objects.all()).first()
    hh.room = (hh.room or "") + "C"
    hh.save()
    nxt = client.get(f"{FEED}?since={body['cursor']}").json()
    assert hh.id in [h["id"] for h in nxt["households"]]
    # a first sync of several pages: the last page reads the streams as before
    grid1 = jwt_client("grid1")
    last = _drain(grid1)
    task = VisitTask.objects.filter(assigned_member__username="grid1").order_by("id").first()
    task.save()
    assert task.id in [t["id"] for t in grid1.get(f"{FEED}?since={last['cursor']}").json()["tasks"]]


def test_a_first_sync_opens_the_sealed_columns_once_per_page_and_masks_as_before(
    demo, monkeypatch
) -> None:
    """ID numbers and phones are read as stored and opened by the feed with the key set
    looked up once per page, not through the field per value; what the phone gets is the
    mask of the clear value, as before."""
    from gridsvc.crypto import EncryptedTextField
    from gridsvc.territory.codes import mask_id_number, mask_phone
    from gridsvc.territory.models import Resident

    through_field: list[object] = []
    original = EncryptedTextField.from_db_value

    def spy(self, value, expression, connection):  # type: ignore[no-untyped-def]
        through_field.append(value)
        return original(self, value, expression, connection)

    monkeypatch.setattr(EncryptedTextField, "from_db_value", spy)
    client = jwt_client("grid1")
    body = _drain(client)
    assert through_field == []
    first = client.get(FEED).json()
    assert through_field == [] and first["residents"]
    clear = {r.id: r for r in Resident.objects.filter(id__in=[x["id"] for x in first["residents"]])}
    shown = 0
    for got in first["residents"]:
        r = clear[got["id"]]
        if "id_number" in got:
            assert got["id_number"] == mask_id_number(r.id_number)
            shown += bool(r.id_number)
        if "phone" in got:
            assert got["phone"] == mask_phone(r.phone)
    assert shown, "some ID numbers were shown masked"
    assert body["cursor"]
