"""Assessment from cases against hand-counted cases; the inbox through the API and the feed."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridsvc.cases import assessment, services
from gridsvc.cases.models import Case
from gridsvc.territory.models import Grid, Household

from .cases_helpers import member, report

pytestmark = pytest.mark.django_db
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def grid_cases(demo):
    """Six cases in a grid of their own (a copy of grid 7 with no demo cases), deadlines in
    March 2026, with known outcomes:

    A resolved on time and closed; B resolved late and closed; C resolved on time, reworked,
    then resolved again late (still open: resolved); D never handled (overdue); E extended
    and resolved on time; F on the spot (counted apart)."""
    g7 = demo.grids[6]
    grid = Grid.objects.create(
        community=g7.community, code="620103003012099", name="考核测试网格", boundary=g7.boundary
    )
    hh = Household.objects.filter(unit__building__grid=g7).order_by("id")[:6]
    street = member("street")
    start = datetime(2026, 3, 2, 9, 0, tzinfo=TZ)
    made = {}
    for i, name in enumerate("ABCDEF"):
        case = report("neighbour.noise", household=hh[i], when=start + timedelta(hours=i)).case
        Case.objects.filter(pk=case.pk).update(grid=grid)
        made[name] = case
    due = {k: Case.objects.get(pk=c.pk).handle_due_at for k, c in made.items()}

    def act(name, action, hours_after_due, **data):  # type: ignore[no-untyped-def]
        when = due[name] + timedelta(hours=hours_after_due)
        handler = Case.objects.get(pk=made[name].pk).handler
        actor = street if action in ("verify", "close") else handler or street
        return services.act(made[name].pk, action, actor, data=data, when=when)

    act("A", "resolve", -30, outcome="ok")
    act("A", "verify", -20, satisfied=True)
    act("A", "close", -19)
    act("B", "resolve", +5, outcome="late")
    act("B", "verify", +6, satisfied=True)
    act("B", "close", +7)
    act("C", "resolve", -30, outcome="first")
    act("C", "verify", -25, satisfied=False)
    act("C", "resolve", +30, outcome="second")
    req = services.request_exception(
        made["E"].pk,
        "extension",
        made["E"].handler,
        reason="配件",
        amount=3,
        unit="working_days",
        when=due["E"] - timedelta(hours=40),
    )
    services.decide_request(req.pk, street, True, when=due["E"] - timedelta(hours=39))
    act("E", "resolve", +2, outcome="within the extension")
    Case.objects.filter(pk=made["F"].pk).update(
        on_the_spot=True, status="resolved", outcome="当场处理", resolved_at=made["F"].reported_at
    )
    return grid, made


def test_each_assessment_formula_against_hand_counted_cases(grid_cases):
    grid, made = grid_cases
    rows = assessment.assess(Case.objects.all(), "grid", date(2026, 3, 1), date(2026, 4, 1))
    row = next(r for r in rows if r["key"] == grid.pk)
    c = row["counts"]
    # due: A B C D E (F is on the spot, counted apart)
    assert c["due"] == 5 and c["on_the_spot"] == 1
    assert c["handled"] == 4  # A B C E
    assert c["handled_on_time"] == 2  # A, E (C's final resolution was late)
    assert c["closed"] == 2 and c["closed_on_time"] == 1  # A
    assert c["deferred"] == 1 and c["extended"] == 1  # E
    assert c["reworked"] == 1  # C
    assert c["overdue_unhandled"] == 1  # D
    f = row["figures"]
    assert f["on_time_handling_rate"] == round(2 / 5, 4)  # 按期处置率
    assert f["closure_rate"] == round(2 / (5 - 1), 4)  # 结案率 = closed ÷ (due − deferred)
    assert f["on_time_closure_rate"] == round(1 / 4, 4)  # 按期结案率
    assert f["rework_rate"] == round(1 / 4, 4)  # 返工率 = reworked ÷ handled
    assert f["overdue_unhandled_rate"] == round(1 / 5, 4)  # 超期未处置率
    assert f["extension_rate"] == round(1 / 5, 4)  # 延期率
    # weighted score with the seeded weights (60/30/10)
    expected = round((0.4 * 60 + 0.5 * 30 + 0.75 * 10) * 100 / 100, 1)
    assert row["score"] == expected and row["grade"] == "E"


def test_every_figure_drills_down_to_its_cases(grid_cases, member_client):
    grid, made = grid_cases
    client = member_client("street")
    base = f"/api/v1/assessment/cases/?by=grid&key={grid.pk}&since=2026-03-01&until=2026-04-01"
    got = {c["id"] for c in client.get(base + "&figure=overdue_unhandled").data}
    assert got == {made["D"].pk}
    got = {c["id"] for c in client.get(base + "&figure=handled_on_time").data}
    assert got == {made["A"].pk, made["E"].pk}
    assert {c["id"] for c in client.get(base + "&figure=on_the_spot").data} == {made["F"].pk}
    r = client.get(base + "&figure=nonsense")
    assert r.status_code == 400 and "figure" in r.data
    table = client.get("/api/v1/assessment/?by=grid&since=2026-03-01&until=2026-04-01").data
    assert grid.pk in [row["key"] for row in table["rows"]]
    assert client.get("/api/v1/assessment/?by=planet").status_code == 400
    assert client.get("/api/v1/assessment/?since=2026-13-01").status_code == 400


def test_a_grid_member_sees_only_their_territory_in_the_assessment(demo, member_client):
    table = member_client("grid1").get(
        "/api/v1/assessment/?by=grid&since=2025-11-01&until=2026-12-01"
    )
    keys = {row["key"] for row in table.data["rows"]}
    assert keys <= {demo.grids[0].pk}


def test_the_inbox_reaches_the_phone_through_the_change_feed(demo, member_client):
    case = report().case
    handler = case.handler
    client = member_client(handler.username)
    inbox = client.get("/api/v1/inbox/?unread=1").data["results"]
    assert any(m["object_id"] == str(case.pk) and m["kind"] == "new_case" for m in inbox)
    r = client.get("/api/v1/sync/changes/")
    assert r.status_code == 200
    feed = r.data
    assert any(m["object_id"] == str(case.pk) for m in feed["inbox"])
    again = client.get(f"/api/v1/sync/changes/?since={feed['cursor']}").data
    assert not any(m["object_id"] == str(case.pk) for m in again["inbox"]), "seen once"
    msg = next(m for m in inbox if m["object_id"] == str(case.pk))
    assert client.post(f"/api/v1/inbox/{msg['id']}/read/").status_code == 200
    assert member_client("grid2").post(f"/api/v1/inbox/{msg['id']}/read/").status_code == 404
