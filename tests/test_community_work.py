"""The community's ethnic-unity work (issue 20, first version): teams (五员 with several
members per role), activities and 宣传, the 五员 一日一报 with 零报告, 信访, religious-venue
liaison, pairing, 评比 and the month's figures — recorded by staff, scoped to their territory,
never shown to neighbours. Also the probes the scoping matrix reads (tests/test_scoping_matrix.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from django.utils import timezone

from gridsvc.accounts.models import Member
from gridsvc.cases.models import Case
from gridsvc.community.models import (
    Activity,
    Campaign,
    GroupMember,
    Mediation,
    MemberLanguage,
    Pairing,
    Petition,
    Rating,
    ResidentLanguage,
    ScreeningReport,
    SignOff,
    TeamMembership,
    VenueContact,
    VenueTask,
    VenueVisit,
)
from gridsvc.community.services import monthly_figures, work_scope
from gridsvc.territory.models import Household, Place, Resident

pytestmark = pytest.mark.django_db

BASE = "/api/v1/community"


@pytest.fixture(autouse=True)
def _without_the_demo_year(db):  # type: ignore[no-untyped-def]
    """These tests build their own records: start from a street without community work (the
    demo's year of records is tested in test_community_unity.py). Rolled back after each."""
    from gridsvc.community.models import LOCATED, CampaignReturn, ServiceLog

    for model in (ServiceLog, CampaignReturn, *LOCATED):
        model.objects.all().delete()


def _household(grid):  # type: ignore[no-untyped-def]
    return Household.objects.filter(unit__building__grid=grid).order_by("pk").first()


def _rows(r):  # type: ignore[no-untyped-def]
    assert r.status_code == 200, r.content[:300]
    body = r.json()
    return body["results"] if isinstance(body, dict) else body


def _ids(r) -> set[int]:  # type: ignore[no-untyped-def]
    return {row["id"] for row in _rows(r)}


def test_an_activity_is_recorded_in_the_grid_and_seen_only_there(demo, member_client):
    g1 = demo.grids[0]
    body = {
        "grid": g1.pk,
        "kind": "publicity",
        "title": "民族团结宣传进社区",
        "date": "2026-11-15",
        "participants": 120,
        "ethnic_mix": {"汉族": 80, "回族": 30, "东乡族": 3},
        "materials": 1500,
        "answer_sheets": 200,
    }
    r = member_client("grid1").post(f"{BASE}/activities/", body, format="json")
    assert r.status_code == 201, r.content
    pk = r.json()["id"]
    assert r.json()["community"] == demo.community.pk and r.json()["grid"] == g1.pk
    assert pk in _ids(member_client("grid1").get(f"{BASE}/activities/"))
    # a small ethnic count is suppressed below the street ("<5"), exact for the street
    assert r.json()["ethnic_mix"] == {"汉族": 80, "回族": 30, "东乡族": None}
    street_row = member_client("street").get(f"{BASE}/activities/{pk}/").json()
    assert street_row["ethnic_mix"]["东乡族"] == 3
    assert pk in _ids(member_client("street").get(f"{BASE}/activities/"))
    assert pk in _ids(member_client("mediator").get(f"{BASE}/activities/"))  # the community
    # another grid sees nothing, nor do the grid's neighbours
    assert pk not in _ids(member_client("grid5").get(f"{BASE}/activities/"))
    assert member_client("grid5").get(f"{BASE}/activities/{pk}/").status_code == 404
    for neighbour in ("bh-001", "uh-001-1", "pm-C01"):
        assert _ids(member_client(neighbour).get(f"{BASE}/activities/")) == set()
    # a neighbour records nothing; a grid member records nothing in another grid
    r = member_client("bh-001").post(f"{BASE}/activities/", body, format="json")
    assert r.status_code == 403
    r = member_client("grid5").post(f"{BASE}/activities/", body, format="json")
    assert r.status_code == 400 and r.json()["grid"] == ["not found"]
    # the ethnic mix is counts that fit in the participants
    bad = {**body, "ethnic_mix": {"汉族": 200}}
    r = member_client("grid1").post(f"{BASE}/activities/", bad, format="json")
    assert r.status_code == 400 and "ethnic_mix" in r.json()
    # a phone's retry is stored once
    retry = {**body, "client_uuid": "6b1c7a52-5d5e-4d0e-9a55-1f5b8f3c2a10"}
    first = member_client("grid1").post(f"{BASE}/activities/", retry, format="json")
    again = member_client("grid1").post(f"{BASE}/activities/", retry, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]


def _five_team(member_client) -> None:  # type: ignore[no-untyped-def]
    """The street desk forms the community's 五员: two 信息员, one 调处员, one 宣传员."""
    street = member_client("street")
    for username, role in (
        ("grid2", "information"),
        ("grid3", "information"),
        ("mediator", "mediator"),
        ("cadre1", "publicity"),
    ):
        person = Member.objects.get(username=username).pk
        r = street.post(
            f"{BASE}/teams/",
            {"team": "five_members", "role": role, "person": person, "valid_from": "2026-01-01"},
            format="json",
        )
        assert r.status_code == 201, r.content


def test_five_members_are_a_team_and_a_zero_report_counts_as_reported(demo, member_client):
    _five_team(member_client)
    roles = [
        row["role"]
        for row in _rows(member_client("street").get(f"{BASE}/teams/?team=five_members"))
    ]
    assert roles.count("information") == 2  # several members per role
    rows = _rows(member_client("street").get(f"{BASE}/teams/?team=five_members&role=information"))
    assert all("一日一报" in row["duties"] for row in rows)
    # 一格十员 and volunteers: a grid's roster, with their hours of service
    r = member_client("grid1").post(
        f"{BASE}/teams/",
        {
            "team": "grid_ten",
            "role": "治安巡逻员",
            "name": "王建国",
            "grid": demo.grids[0].pk,
            "valid_from": "2026-11-01",  # hours are logged inside the membership's period
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    ten = r.json()["id"]
    for hours in ("2.5", "3"):
        r = member_client("grid1").post(
            f"{BASE}/teams/{ten}/hours/", {"hours": hours, "date": "2026-11-02"}, format="json"
        )
        assert r.status_code == 201, r.content
    assert r.json()["hours"] == "5.5"
    r = member_client("grid1").post(f"{BASE}/teams/{ten}/hours/", {"hours": "30"}, format="json")
    assert r.status_code == 400 and "hours" in r.json()
    assert (
        member_client("grid5")
        .post(f"{BASE}/teams/{ten}/hours/", {"hours": "1"}, format="json")
        .status_code
        == 404
    )
    assert (
        monthly_figures(work_scope(Member.objects.get(username="street")), 2026, 11)[
            "volunteer_hours"
        ]
        == 5.5
    )
    # a grid member is not a community's team-maker
    r = member_client("grid1").post(
        f"{BASE}/teams/",
        {
            "team": "five_members",
            "role": "liaison",
            "name": "志愿者",
            "community": demo.community.pk,
        },
        format="json",
    )
    assert r.status_code == 400 and r.json()["community"] == ["not found"]
    r = member_client("street").post(
        f"{BASE}/teams/", {"team": "five_members", "role": "boss", "name": "x"}, format="json"
    )
    assert r.status_code == 400 and "role" in r.json()

    r = member_client("grid2").post(f"{BASE}/screening/", {"zero_report": True}, format="json")
    assert r.status_code == 201, r.content
    r = member_client("grid3").post(
        f"{BASE}/screening/",
        {"zero_report": False, "findings": "两户邻里因停车争执, 已劝解", "persons": 3},
        format="json",
    )
    assert r.status_code == 201 and r.json()["findings_count"] == 1
    # a 零报告 with findings is refused; sending again the same day replaces the report
    r = member_client("grid2").post(
        f"{BASE}/screening/", {"zero_report": True, "findings": "x"}, format="json"
    )
    assert r.status_code == 400
    r = member_client("grid2").post(f"{BASE}/screening/", {"persons": 2}, format="json")
    assert r.status_code == 200
    # only team members file; neighbours never
    assert member_client("grid1").post(f"{BASE}/screening/", {}, format="json").status_code == 403
    assert member_client("bh-001").post(f"{BASE}/screening/", {}, format="json").status_code == 403

    day = member_client("street").get(f"{BASE}/screening/day/")
    assert day.status_code == 200, day.content
    d = day.json()
    assert (d["expected"], d["reported"], d["zero_reports"], d["findings"]) == (4, 2, 1, 1)
    assert {m["username"] for m in d["missing"]} == {"mediator", "cadre1"}
    assert d["persons_this_year"] == 5
    assert member_client("bh-001").get(f"{BASE}/screening/day/").status_code == 403
    # a grid member reads their own report; a neighbour none
    assert len(_rows(member_client("grid2").get(f"{BASE}/screening/"))) == 1
    assert _rows(member_client("bh-001").get(f"{BASE}/screening/")) == []


def test_petitions_are_masked_below_the_street_and_link_only_visible_cases(demo, member_client):
    g1 = demo.grids[0]
    body = {
        "grid": g1.pk,
        "date": "2026-11-03",
        "petitioner": "马文清",
        "subject": "清真寺周边停车",
        "ethnic_religious": True,
        "group_size": 6,
    }
    r = member_client("grid1").post(f"{BASE}/petitions/", body, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["petitioner"] == "马*清" and r.json()["group_risk"] is True
    assert r.json()["handled_by"] == Member.objects.get(username="grid1").pk
    street_rows = _rows(member_client("street").get(f"{BASE}/petitions/"))
    assert [row["petitioner"] for row in street_rows] == ["马文清"]
    assert _rows(member_client("grid5").get(f"{BASE}/petitions/")) == []
    assert _rows(member_client("bh-001").get(f"{BASE}/petitions/")) == []
    # 办结, linking the case it became (one in the recorder's grid)
    pk = street_rows[0]["id"]
    own = Case.objects.filter(grid=g1).order_by("pk").first()
    r = member_client("grid1").post(
        f"{BASE}/petitions/{pk}/resolve/", {"case": own.pk if own else None}, format="json"
    )
    assert r.status_code == 200 and r.json()["status"] == "resolved", r.content
    assert member_client("grid1").post(f"{BASE}/petitions/{pk}/resolve/", {}).status_code == 409
    assert member_client("grid5").post(f"{BASE}/petitions/{pk}/resolve/", {}).status_code == 404
    foreign = Case.objects.filter(grid=demo.grids[4]).first()
    if foreign is not None:
        r = member_client("grid1").post(
            f"{BASE}/petitions/", {**body, "case": foreign.pk}, format="json"
        )
        assert r.status_code == 400 and r.json()["case"] == ["not found"]


def test_venue_visits_pairings_ratings_and_the_months_figures(demo, member_client):
    mosque = Place.objects.filter(kind__in=["mosque", "religious_venue"]).order_by("pk").first()
    desk = member_client("ethnic")
    r = desk.post(
        f"{BASE}/venue-visits/",
        {"place": mosque.pk, "date": "2026-11-10", "participants": 4, "hazards": "消防通道堵塞"},
        format="json",
    )
    assert r.status_code == 201, r.content
    assert r.json()["hazard_found"] is True
    shop = Place.objects.exclude(kind__in=["mosque", "religious_venue"]).first()
    if shop is not None:
        r = desk.post(
            f"{BASE}/venue-visits/", {"place": shop.pk, "date": "2026-11-10"}, format="json"
        )
        assert r.status_code == 400 and "place" in r.json()
    assert _rows(member_client("bh-001").get(f"{BASE}/venue-visits/")) == []
    # an activity at the mosque (民族节日 with the mosque) lies where the mosque lies
    r = desk.post(
        f"{BASE}/activities/",
        {"kind": "festival", "title": "古尔邦节联谊", "date": "2026-11-20", "place": mosque.pk},
        format="json",
    )
    assert r.status_code == 201, r.content
    assert r.json()["grid"] == mosque.grid_id and r.json()["point"]["type"] == "Point"
    r = member_client("grid1").post(
        f"{BASE}/activities/",
        {
            "kind": "forum",
            "title": "座谈会",
            "date": "2026-11-21",
            "grid": demo.grids[0].pk,
            "point": {"type": "Point", "coordinates": [103.8, 36.06]},
        },
        format="json",
    )
    assert r.status_code == 201 and r.json()["point"]["coordinates"] == [103.8, 36.06]

    hh = _household(demo.grids[0])
    r = member_client("cadre1").post(
        f"{BASE}/pairings/",
        {"kind": "help", "household": hh.pk, "partner": "区税务局", "started": "2026-03-01"},
        format="json",
    )
    assert r.status_code == 201 and r.json()["grid"] == demo.grids[0].pk
    r = member_client("grid1").post(  # cadre1 is also a 五员 over the community
        f"{BASE}/pairings/",
        {"kind": "help", "household": _household(demo.grids[4]).pk, "partner": "x"},
        format="json",
    )
    assert r.status_code == 400 and r.json()["household"] == ["not found"]

    rating = {"household": hh.pk, "year": 2026, "title": "five_star", "stars": 5}
    r = member_client("grid1").post(f"{BASE}/ratings/", rating, format="json")
    assert r.status_code == 201, r.content
    # 动态管理: the rating is revised, not duplicated
    r = member_client("grid1").post(
        f"{BASE}/ratings/", {**rating, "stars": 4, "revoked": True}, format="json"
    )
    assert r.status_code == 200 and r.json()["revised_at"] and r.json()["stars"] == 4
    assert Rating.objects.filter(household=hh).count() == 1
    assert _rows(member_client("uh-001-1").get(f"{BASE}/ratings/")) == []

    Activity.objects.create(
        street=demo.street,
        community=demo.community,
        grid=demo.grids[0],
        recorded_by=Member.objects.get(username="grid1"),
        kind="forum",
        title="座谈会",
        date=date(2026, 11, 15),
        participants=30,
        materials=50,
    )
    figures = member_client("street").get(f"{BASE}/figures/?month=2026-11").json()
    assert figures["activities"] == 3 and figures["materials"] == 50
    assert figures["venue_visits"] == 1 and figures["venue_hazards"] == 1
    assert figures["pairings_active"] == 1
    assert figures["five_star_households"] == 0  # revoked
    grid5 = monthly_figures(work_scope(Member.objects.get(username="grid5")), 2026, 11)
    assert grid5["activities"] == 0 and grid5["pairings_active"] == 0
    assert member_client("grid1").get(f"{BASE}/figures/?grid={demo.grids[4].pk}").status_code == 404
    assert member_client("bh-001").get(f"{BASE}/figures/").status_code == 403


def test_the_monthly_work_report_carries_the_unity_figures(demo, member_client):
    """The street's monthly report (JSON and xlsx) counts the 创建 work; a grid member's
    counts only their grid; a building head's report has none of it."""
    from gridsvc.reports.render import unity_rows

    grid1 = Member.objects.get(username="grid1")
    for grid in (demo.grids[0], demo.grids[4]):
        Activity.objects.create(
            street=demo.street,
            community=demo.community,
            grid=grid,
            recorded_by=grid1,
            kind="welfare_day",
            title="民族团结公益日",
            date=date(2026, 10, 15),
            participants=40,
            materials=300,
        )
    url = f"/api/v1/reports/monthly/?community={demo.community.code}&month=2026-10"
    street = member_client("street").get(url).json()
    assert street["unity"]["activities"] == 2 and street["unity"]["materials"] == 600
    assert ("发放宣传资料(份)", 600) in unity_rows(street)
    assert member_client("grid1").get(url).json()["unity"]["activities"] == 1
    r = member_client("bh-001").get(url)
    assert r.status_code == 403 or "unity" not in r.json()
    xlsx = member_client("street").get(url + "&format=xlsx")
    assert xlsx.status_code == 200


def test_a_screening_campaign_collects_a_return_per_grid(demo, member_client):
    today = timezone.localdate()  # a running campaign: an ended one takes no filing
    r = member_client("mediator").post(
        f"{BASE}/campaigns/",
        {
            "kind": "disputes",
            "name": "矛盾纠纷排查化解月",
            "start": str(today - timedelta(days=10)),
            "end": str(today + timedelta(days=20)),
        },
        format="json",
    )
    assert r.status_code == 201 and r.json()["community"] == demo.community.pk, r.content
    pk = r.json()["id"]
    # each grid's staff see their grid's pending return, and only it
    mine = _rows(member_client("grid1").get(f"{BASE}/campaign-returns/?campaign={pk}"))
    assert [row["grid"] for row in mine] == [demo.grids[0].pk] and mine[0]["filed_at"] is None
    assert _rows(member_client("bh-001").get(f"{BASE}/campaign-returns/")) == []
    r = member_client("grid1").post(
        f"{BASE}/campaign-returns/{mine[0]['id']}/file/", {}, format="json"
    )
    assert r.status_code == 200 and r.json()["zero_report"] is True and r.json()["filed_at"]
    theirs = _rows(member_client("grid2").get(f"{BASE}/campaign-returns/?campaign={pk}"))[0]
    assert (
        member_client("grid1")
        .post(f"{BASE}/campaign-returns/{theirs['id']}/file/", {}, format="json")
        .status_code
        == 404
    )
    r = member_client("grid2").post(
        f"{BASE}/campaign-returns/{theirs['id']}/file/",
        {"zero_report": False, "findings": "邻里漏水纠纷2起", "findings_count": 2},
        format="json",
    )
    assert r.status_code == 200, r.content
    cov = member_client("mediator").get(f"{BASE}/campaigns/{pk}/coverage/").json()
    n = len(demo.grids)
    assert (cov["grids"], cov["returned"], cov["zero_reports"], cov["findings"]) == (n, 2, 1, 2)
    assert demo.grids[0].code not in cov["missing"] and len(cov["missing"]) == n - 2
    assert member_client("bh-001").get(f"{BASE}/campaigns/{pk}/coverage/").status_code == 404
    r = member_client("grid1").post(
        f"{BASE}/campaigns/",
        {
            "kind": "disputes",
            "name": "x",
            "start": "2026-11-01",
            "end": "2026-10-01",
            "grid": demo.grids[0].pk,
        },
        format="json",
    )
    assert r.status_code == 400 and "end" in r.json()


# ---------------------------------------------------------------- scoping-matrix entries
#: POSTs to the lists: covered by the body-id probes below
COMMUNITY_CREATE_BY_BODY = {
    f"POST {BASE}/{name}/"
    for name in (
        "teams",
        "activities",
        "campaigns",
        "petitions",
        "venue-visits",
        "venue-contacts",
        "pairings",
        "ratings",
        "sign-offs",
        "mediations",
        "group-members",
        "languages",
        "member-languages",
    )
} | {
    f"POST {BASE}/screening/",  # the caller's own report: no id in its body
    f"POST {BASE}/batch/",  # items' ids: test_community_unity (a foreign grid is rejected)
    f"POST {BASE}/reports/",  # its street: the body probe below
}

#: integer body fields of these endpoints that are counts, not ids
COMMUNITY_NOT_IDS = {
    "participants": "number of people at an activity or visit",
    "materials": "宣传资料 handed out",
    "answer_sheets": "答题 sheets",
    "banners": "横幅/展板",
    "findings_count": "不稳定因素 found in a screening",
    "persons": "人次 a screening took",
    "group_size": "people in a petition",
    "stars": "rating stars 1–5",
    "month": "the month (1–12) of a street's report to the district",
}

_MODELS = {
    "teams": TeamMembership,
    "activities": Activity,
    "campaigns": Campaign,
    "petitions": Petition,
    "venue-visits": VenueVisit,
    "venue-contacts": VenueContact,
    "pairings": Pairing,
    "ratings": Rating,
    "sign-offs": SignOff,
    "mediations": Mediation,
    "group-members": GroupMember,
    "languages": ResidentLanguage,
    "member-languages": MemberLanguage,
}
_MINIMAL = {
    "teams": {"team": "grid_ten", "role": "志愿者", "name": "张三"},
    "activities": {"kind": "forum", "title": "座谈会", "date": "2026-11-01"},
    "campaigns": {
        "kind": "disputes",
        "name": "排查化解月",
        "start": "2026-11-01",
        "end": "2026-11-30",
    },
    "petitions": {"date": "2026-11-01", "petitioner": "张三", "subject": "x"},
    "venue-visits": {"date": "2026-11-01"},
    "venue-contacts": {"name": "马阿訇", "phone": "13900000000"},
    "pairings": {"kind": "help", "partner": "共建单位"},
    "ratings": {"year": 2026, "title": "five_star"},
    "sign-offs": {"note": "x"},
    "mediations": {"outcome": "agreed"},
    "group-members": {"group": "self_employed"},
    "languages": {"languages": ["zh"]},
    "member-languages": {"languages": ["sce"]},
}


def _foreign(demo, field: str) -> int:  # type: ignore[no-untyped-def]
    """An id outside grid 1's member's recording rights (grid 5's, or the community's)."""
    g5 = demo.grids[4]
    if field == "grid":
        return g5.pk
    if field == "community":
        return demo.community.pk  # grid1 holds a grid, not the community
    if field == "place":
        return Place.objects.filter(grid=g5).order_by("pk").first().pk
    if field == "household":
        return _household(g5).pk
    if field == "case":
        case = Case.objects.filter(grid=g5).order_by("pk").first()
        return case.pk if case else 10**9
    if field == "resident":
        return Resident.objects.filter(household=_household(g5)).order_by("pk").first().pk
    if field in ("person", "member", "handled_by"):
        return Member.objects.get(username="grid5").pk
    raise KeyError(field)


def _resolve_with_foreign_case(demo, member_client) -> None:  # type: ignore[no-untyped-def]
    grid1 = Member.objects.get(username="grid1")
    petition = Petition.objects.create(
        street=demo.street,
        community=demo.community,
        grid=demo.grids[0],
        recorded_by=grid1,
        date=date(2026, 11, 1),
        petitioner="张三",
        subject="x",
    )
    r = member_client("grid1").post(
        f"{BASE}/petitions/{petition.pk}/resolve/", {"case": _foreign(demo, "case")}, format="json"
    )
    assert r.status_code == 400 and r.json()["case"] == ["not found"], r.content
    petition.refresh_from_db()
    assert petition.status == "open" and petition.case_id is None


def _body_probe(name: str, field: str) -> Callable:
    def probe(demo, member_client) -> None:  # type: ignore[no-untyped-def]
        model = _MODELS[name]
        before = model.objects.count()
        body = {**_MINIMAL[name], field: _foreign(demo, field)}
        if field not in ("grid", "community", "household", "place"):
            body.setdefault("grid", demo.grids[0].pk)
        if name == "ratings" and field != "household":
            body["household"] = _household(demo.grids[0]).pk
        r = member_client("grid1").post(f"{BASE}/{name}/", body, format="json")
        assert r.status_code == 400 and r.json().get(field) == ["not found"], (field, r.content)
        assert model.objects.count() == before

    return probe


COMMUNITY_BODY_ID_PROBES: dict[tuple[str, str, str], Callable] = {
    ("POST", f"{BASE}/{name}/", field): _body_probe(name, field)
    for name, fields in (
        ("teams", ("grid", "community", "person")),
        ("activities", ("grid", "community", "place")),
        ("campaigns", ("grid", "community")),
        ("petitions", ("grid", "community", "case", "handled_by")),
        ("venue-visits", ("place",)),
        ("venue-contacts", ("place",)),
        ("pairings", ("grid", "community", "member", "household")),
        ("ratings", ("household",)),
        ("sign-offs", ("case",)),
        ("mediations", ("case",)),
        ("group-members", ("resident",)),
        ("languages", ("resident",)),
        ("member-languages", ("person",)),
    )
    for field in fields
}


def _probe_staff_sums(url: str) -> Callable:
    """Neighbours get 403; staff get their territory's sums; a foreign grid is 404."""

    def probe(ctx) -> None:  # type: ignore[no-untyped-def]
        from gridsvc.territory.models import Grid

        r = ctx.client.get(url)
        if work_scope(ctx.member).empty:
            assert r.status_code == 403, (ctx.role, url, r.status_code)
            return
        assert r.status_code == 200, (ctx.role, url, r.content[:200])
        if "figures" in url:
            foreign = Grid.objects.exclude(pk__in=ctx.scope.filter(Grid.objects.all())).first()
            assert ctx.client.get(f"{url}?grid={foreign.pk}").status_code == 404
        else:
            from gridsvc.chain.models import Position

            held = set(
                ctx.scope.filter(Position.objects.held_at()).values_list("member_id", flat=True)
            )
            assert {m["id"] for m in r.json()["missing"]} <= held

    return probe


COMMUNITY_BODY_ID_PROBES[("POST", f"{BASE}/petitions/{{id}}/resolve/", "case")] = (
    _resolve_with_foreign_case
)


def _probe_changes(ctx) -> None:  # type: ignore[no-untyped-def]
    """The phone's feed: neighbours 403; staff get only rows of their work territory (and
    their own screening reports)."""
    r = ctx.client.get(f"{BASE}/changes/")
    if work_scope(ctx.member).empty:
        assert r.status_code == 403, (ctx.role, r.status_code)
        return
    assert r.status_code == 200, (ctx.role, r.content[:200])
    body = r.json()
    from gridsvc.community.models import CampaignReturn, InterpreterCall

    for key, model in (
        ("activities", Activity),
        ("screening", ScreeningReport),
        ("venue_visits", VenueVisit),
        ("teams", TeamMembership),
        ("campaign_returns", CampaignReturn),
        ("petitions", Petition),
        ("pairings", Pairing),
        ("interpreter_calls", InterpreterCall),
        ("ratings", Rating),
        ("mediations", Mediation),
        ("sign_offs", SignOff),
        ("venue_tasks", VenueTask),
        ("group_members", GroupMember),
        ("resident_languages", ResidentLanguage),
    ):
        mine = set(work_scope(ctx.member).filter(model.objects.all()).values_list("pk", flat=True))
        if model is ScreeningReport:
            mine |= set(model.objects.filter(member=ctx.member).values_list("pk", flat=True))
        if model is VenueTask:  # and the caller's own
            mine |= set(
                model.objects.filter(assigned_member=ctx.member).values_list("pk", flat=True)
            )
        assert {row["id"] for row in body[key]} <= mine, (ctx.role, key)


def _probe_community_ledgers(ctx) -> None:  # type: ignore[no-untyped-def]
    """The community's 台账: neighbours 403; staff who do not hold the community 404."""
    from gridsvc.territory.models import Community

    comm = Community.objects.order_by("pk").first()
    r = ctx.client.get(f"{BASE}/ledgers/{comm.pk}/")
    scope = work_scope(ctx.member)
    if scope.empty:
        assert r.status_code == 403, (ctx.role, r.status_code)
    elif comm.pk not in scope.community_ids and comm.street_id not in scope.street_ids:
        assert r.status_code == 404, (ctx.role, r.status_code)
    else:
        assert r.status_code == 200, (ctx.role, r.status_code)


def _probe_interpreters(ctx) -> None:  # type: ignore[no-untyped-def]
    """Whom to send to a household: neighbours 403; a household outside the work scope is
    400 "not found" like a nonexistent one."""
    from gridsvc.territory.models import Grid

    url = f"{BASE}/languages/interpreters/"
    scope = work_scope(ctx.member)
    foreign_grid = Grid.objects.exclude(pk__in=scope.filter(Grid.objects.all())).first()
    r = ctx.client.get(f"{url}?household={_household(foreign_grid).pk}")
    if scope.empty:
        assert r.status_code == 403, (ctx.role, r.status_code)
        return
    assert r.status_code == 400 and r.json()["household"] == ["not found"], (ctx.role, r.content)


def _probe_member_languages(ctx) -> None:  # type: ignore[no-untyped-def]
    """Members' languages: only of members holding a position in the caller's work territory
    (none for neighbours)."""
    from gridsvc.chain.models import Position

    for username, langs in (("grid1", ["sce"]), ("grid5", ["ug"]), ("cadre1", ["kk"])):
        who = Member.objects.get(username=username)
        MemberLanguage.objects.get_or_create(
            member=who, defaults={"languages": langs, "recorded_by": who}
        )
    scope = work_scope(ctx.member)
    held = set(scope.filter(Position.objects.held_at()).values_list("member_id", flat=True))
    got = {row["person"] for row in _rows(ctx.client.get(f"{BASE}/member-languages/"))}
    assert got <= held, (ctx.role, got - held)
    if scope.empty:
        assert not got, ctx.role
    elif ctx.member.pk in held and ctx.member.username in ("grid1", "cadre1"):
        assert ctx.member.pk in got, ctx.role


def _report_with_foreign_street(demo, member_client) -> None:  # type: ignore[no-untyped-def]
    """A street's report names the street: one the caller does not hold is "not found"."""
    from gridsvc.community.models import UnityReport

    before = UnityReport.objects.count()
    for who in ("grid1", "cadre1"):
        r = member_client(who).post(
            f"{BASE}/reports/",
            {"street": demo.street.pk, "year": 2026, "kind": "summary"},
            format="json",
        )
        assert r.status_code == 400 and r.json()["street"] == ["not found"], r.content
    assert UnityReport.objects.count() == before


COMMUNITY_BODY_ID_PROBES[("POST", f"{BASE}/reports/", "street")] = _report_with_foreign_street


def _probe_reports(ctx) -> None:  # type: ignore[no-untyped-def]
    """Reports to the district: only of the streets one holds (none for grid staff and
    neighbours)."""
    from gridsvc.community.services import visible_reports

    r = ctx.client.get(f"{BASE}/reports/")
    assert r.status_code == 200, (ctx.role, r.status_code)
    assert {row["id"] for row in r.json()} <= set(
        visible_reports(ctx.member).values_list("pk", flat=True)
    )
    assert not r.json() or ctx.scope.street_ids, ctx.role


def _probe_acknowledge(ctx) -> None:  # type: ignore[no-untyped-def]
    """Only the district acknowledges; others do not even find the report."""
    from gridsvc.community.models import UnityReport

    report = UnityReport.objects.filter(acknowledged_at__isnull=True).first()
    if report is None:
        return
    r = ctx.client.post(f"{BASE}/reports/{report.pk}/acknowledge/", {}, format="json")
    assert r.status_code in (403, 404), (ctx.role, r.status_code)
    report.refresh_from_db()
    assert report.acknowledged_at is None


def _probe_district(ctx) -> None:  # type: ignore[no-untyped-def]
    r = ctx.client.get(f"{BASE}/district/?code=620103")
    assert r.status_code == 403, (ctx.role, r.status_code)


def _probe_activity_map(ctx) -> None:  # type: ignore[no-untyped-def]
    """The activities' map layer: neighbours 403; staff see only their work territory's."""
    r = ctx.client.get(f"{BASE}/activities/map/?from=2025-01-01")
    if work_scope(ctx.member).empty:
        assert r.status_code == 403, (ctx.role, r.status_code)
        return
    assert r.status_code == 200, (ctx.role, r.content[:200])
    mine = set(work_scope(ctx.member).filter(Activity.objects.all()).values_list("pk", flat=True))
    assert {f["properties"]["id"] for f in r.json()["features"]} <= mine, ctx.role


def _probe_districts(ctx) -> None:  # type: ignore[no-untyped-def]
    """Districts: in full only to the district's officers, by name to the street office."""
    from gridsvc.community.services import readable_districts

    districts, full = readable_districts(ctx.member)
    r = ctx.client.get("/api/v1/districts/")
    assert r.status_code == 200, (ctx.role, r.status_code)
    for row in r.json():
        assert row["id"] in set(districts.values_list("pk", flat=True)), ctx.role
        assert ("code" in row) == (row["id"] in full), ctx.role


def _probe_district_officers(ctx) -> None:  # type: ignore[no-untyped-def]
    """The district's 创建 office members: only of the districts read in full (a district
    officer's own); a street office and everyone else get an empty list."""
    from gridsvc.chain.models import Position, PositionType
    from gridsvc.community.services import readable_districts

    _, full = readable_districts(ctx.member)
    r = ctx.client.get(f"{BASE}/district-officers/")
    assert r.status_code == 200, (ctx.role, r.status_code)
    got = {row["id"] for row in r.json()}
    posts = Position.objects.held_at().filter(position_type=PositionType.DISTRICT_OFFICER)
    want = set(posts.filter(district__in=full).values_list("pk", flat=True))
    assert got == want, ctx.role
    assert not got, ctx.role  # the matrix's field roles read no district in full
    # the district's officer reads its office; the street office (its district by name) none
    from rest_framework.test import APIClient

    district = Member.objects.get(username="district")
    for username, officers in (("district", {district.pk}), ("street", set())):
        client = APIClient()
        client.force_authenticate(Member.objects.get(username=username))
        rows = client.get(f"{BASE}/district-officers/").json()
        assert {row["member"] for row in rows} == officers, username
        assert all(row["district_code"] and row["name"] for row in rows)


def _probe_district_detail(ctx) -> None:  # type: ignore[no-untyped-def]
    from gridsvc.community.services import readable_districts
    from gridsvc.territory.models import District

    districts, _ = readable_districts(ctx.member)
    for d in District.objects.exclude(pk__in=districts.values("pk")):
        assert ctx.client.get(f"/api/v1/districts/{d.pk}/").status_code == 404, ctx.role


def _probe_district_map(ctx) -> None:  # type: ignore[no-untyped-def]
    """The district map: only readable districts; outlines and streets only where read in
    full (a street office gets the name, no geometry)."""
    from gridsvc.community.services import readable_districts

    districts, full = readable_districts(ctx.member)
    r = ctx.client.get("/api/v1/districts/map/")
    assert r.status_code == 200, (ctx.role, r.status_code)
    readable = set(districts.values_list("pk", flat=True))
    for f in r.json()["features"]:
        props = f["properties"]
        if props["layer"] == "district":
            assert props["id"] in readable, ctx.role
            if props["id"] not in full:  # by name only: no outline, no code
                assert f["geometry"] is None and "code" not in props, ctx.role
        else:  # a street of a district read in full
            assert props["district"] in full, ctx.role


COMMUNITY_EXPLICIT: dict[str, Callable] = {
    "GET /api/v1/districts/": _probe_districts,
    "GET /api/v1/districts/map/": _probe_district_map,
    "GET /api/v1/districts/<pk>/": _probe_district_detail,
    f"GET {BASE}/activities/map/": _probe_activity_map,
    f"GET {BASE}/reports/": _probe_reports,
    f"POST {BASE}/reports/<pk>/acknowledge/": _probe_acknowledge,
    f"GET {BASE}/district/": _probe_district,
    f"GET {BASE}/district-officers/": _probe_district_officers,
    f"GET {BASE}/languages/interpreters/": _probe_interpreters,
    f"GET {BASE}/member-languages/": _probe_member_languages,
    f"GET {BASE}/screening/day/": _probe_staff_sums(f"{BASE}/screening/day/"),
    f"GET {BASE}/figures/": _probe_staff_sums(f"{BASE}/figures/"),
    f"GET {BASE}/changes/": _probe_changes,
    f"GET {BASE}/ledgers/<community>/": _probe_community_ledgers,
}


@pytest.mark.parametrize("key", sorted(COMMUNITY_BODY_ID_PROBES), ids=lambda k: k[1] + k[2])
def test_a_foreign_id_in_a_community_body_is_refused(demo, member_client, key):
    COMMUNITY_BODY_ID_PROBES[key](demo, member_client)


def test_today_is_the_default_screening_day(demo, member_client):
    _five_team(member_client)
    r = member_client("mediator").post(f"{BASE}/screening/", {}, format="json")
    assert r.status_code == 201 and r.json()["date"] == timezone.localdate().isoformat()
    assert ScreeningReport.objects.get(pk=r.json()["id"]).zero_report is True
