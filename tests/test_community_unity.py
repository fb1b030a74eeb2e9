"""Issue 20, second round: the 五员 chased with the daily reports, the ethnic-affairs desk's
sign-off, 调处员 mediations, the demo's year of records, the 台账 and the phone's feed and
offline batch of community records."""

from __future__ import annotations

import io
import uuid
from datetime import date

import pytest
from django.db.models import Sum
from openpyxl import load_workbook

from gridsvc.community.models import (
    Activity,
    GroupMember,
    Petition,
    ScreeningReport,
    ServiceLog,
    TeamMembership,
    VenueVisit,
)

REF = "2026-11-24"


def _missing(client, day: str = REF) -> dict[str, dict]:
    r = client.get(f"/api/v1/daily-reports/missing/?date={day}")
    assert r.status_code == 200, r.content
    return {row["username"]: row for row in r.json()["results"]}


def test_five_members_are_chased_with_the_daily_reports(demo, member_client):
    rows = _missing(member_client("street"))
    # cadre7 (调处员 since September) has not sent the day's screening report: chased
    assert [s["role"] for s in rows["cadre7"]["screening"]] == ["mediator"]
    assert rows["cadre7"]["screening"][0]["role_name"] == "调处员"
    # the others of the team sent theirs (and their daily reports): not listed
    assert "cadre1" not in rows and "mediator" not in rows
    # every row says what is owed: field report (positions) and/or screening
    assert all("screening" in row and "positions" in row for row in rows.values())
    # a grid member does not see the community's team
    assert "cadre7" not in _missing(member_client("grid7"))
    # cadre7 sends a 零报告 for the day: no longer owed
    r = member_client("cadre7").post(
        "/api/v1/community/screening/", {"date": REF, "zero_report": True}, format="json"
    )
    assert r.status_code == 201, r.content
    after = _missing(member_client("street"))
    assert "cadre7" not in after or after["cadre7"]["screening"] == []


def test_screening_day_sums_the_street_in_the_reports_words(demo, member_client):
    r = member_client("street").get(f"/api/v1/community/screening/day/?date={REF}")
    assert r.status_code == 200, r.content
    body = r.json()
    year = ScreeningReport.objects.filter(date__year=2026, date__lte=REF).aggregate(
        p=Sum("persons"), f=Sum("findings_count")
    )
    assert body["persons_this_year"] == year["p"] > 1000
    assert body["expected"] == 7 and body["reported"] == 6
    assert body["summary"].startswith("截至11月24日")
    assert f"{year['p'] // 100 * 100}余人次" in body["summary"]
    if year["f"]:
        assert f"发现影响民族团结的不稳定因素{year['f']}件" in body["summary"]
    else:
        assert "未发现" in body["summary"]


def _ethnic_case():
    from gridsvc.cases.models import Case

    return Case.objects.filter(category__code="ethnic").order_by("id").first()


def test_ethnic_affairs_desk_signs_off_ethnic_cases(demo, member_client):
    from gridsvc.cases.models import Case
    from gridsvc.community.services import ethnic_sign_off

    case = _ethnic_case()
    assert case is not None
    url = "/api/v1/community/sign-offs/"
    r = member_client("street").post(url, {"case": case.pk}, format="json")
    assert r.status_code == 403 and "ethnic-affairs desk" in r.json()["detail"]
    assert member_client("grid1").post(url, {"case": case.pk}, format="json").status_code in (
        400,
        403,
    )
    desk = member_client("ethnic")
    r = desk.post(url, {"case": case.pk, "confirmed": False}, format="json")
    assert r.status_code == 400 and "note" in r.json()
    r = desk.post(url, {"case": case.pk, "confirmed": False, "note": "仍有对立情绪"}, format="json")
    assert r.status_code == 201, r.content
    r = desk.post(url, {"case": case.pk, "note": "回访稳定"}, format="json")
    assert r.status_code == 201 and r.json()["confirmed"] is True
    assert ethnic_sign_off(case).confirmed is True
    other = (
        Case.objects.exclude(category__code="ethnic")
        .filter(ethnic_religious=False, category__parent__isnull=True)
        .first()
    )
    r = desk.post(url, {"case": other.pk}, format="json")
    assert r.status_code == 400 and "case" in r.json()
    # the desk's sign-offs are listed to staff of the case's territory, never to neighbours
    assert member_client("bh-001").get(url).json()["count"] == 0


def test_five_mediator_mediates_dispute_cases(demo, member_client):
    from gridsvc.cases.models import Case

    dispute = Case.objects.filter(kind="dispute", community=demo.community).order_by("id").first()
    hazard = Case.objects.filter(kind="hazard", community=demo.community).order_by("id").first()
    url = "/api/v1/community/mediations/"
    body = {"case": dispute.pk, "outcome": "agreed", "note": "双方签订调解协议"}
    r = member_client("cadre5").post(url, body, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["mediator"] == r.wsgi_request.user.pk
    r = member_client("cadre1").post(url, body, format="json")  # 宣传员, not 调处员
    assert r.status_code == 403 and "调处员" in r.json()["detail"]
    r = member_client("cadre5").post(url, {**body, "case": hazard.pk}, format="json")
    assert r.status_code == 400 and "case" in r.json()


def test_demo_figures_come_from_the_records(demo, member_client):
    street = member_client("street")
    r = street.get("/api/v1/community/figures/?month=2026-09")
    assert r.status_code == 200, r.content
    f = r.json()
    sept = {"date__gte": date(2026, 9, 1), "date__lt": date(2026, 10, 1)}
    acts = Activity.objects.filter(**sept)
    assert f["activities"] == acts.count() > 0
    assert f["materials"] == acts.aggregate(n=Sum("materials"))["n"] >= 1500
    assert f["screening_reports"] == ScreeningReport.objects.filter(**sept).count() > 0
    assert f["venue_visits"] == VenueVisit.objects.filter(**sept).count() == 2
    assert f["volunteer_hours"] == float(
        ServiceLog.objects.filter(**sept).aggregate(n=Sum("hours"))["n"] or 0
    )
    # the year: a joint visit of each mosque every month (西园清真寺's November one not made by
    # the reference day: its venue task is overdue), no ethnic/religious petition
    year = {"date__gte": date(2025, 12, 1), "date__lte": date(2026, 11, 24)}
    assert VenueVisit.objects.filter(**year).count() == 23
    assert Petition.objects.filter(**year).exists()
    assert not Petition.objects.filter(ethnic_religious=True).exists()
    five = TeamMembership.objects.filter(team="five_members")
    assert set(five.values_list("role", flat=True)) == {
        "publicity",
        "organiser",
        "information",
        "liaison",
        "mediator",
    }
    assert five.count() == 7
    # the figures are counted, not stored: one activity less, one fewer
    acts.order_by("id").first().delete()
    assert street.get("/api/v1/community/figures/?month=2026-09").json()["activities"] == (
        f["activities"] - 1
    )
    # the monthly work report reads the same figures
    r = street.get(f"/api/v1/reports/monthly/?community={demo.community.code}&month=2026-09")
    if r.status_code == 200 and "unity" in r.json():
        assert r.json()["unity"]["activities"] == f["activities"] - 1


def _sheets(content: bytes) -> dict[str, list[tuple]]:
    wb = load_workbook(io.BytesIO(content))
    return {ws.title: list(ws.iter_rows(min_row=3, values_only=True)) for ws in wb.worksheets}


def test_grid_and_community_ledgers_carry_the_community_work(demo, member_client):
    grid = demo.grids[0]
    r = member_client("grid1").get(f"/api/v1/reports/ledgers/{grid.code}/")
    assert r.status_code == 200, r.content
    sheets = _sheets(r.content)
    for title in ("活动与宣传", "排查", "信访", "志愿者", "宗教场所", "离退休老领导",
                  "个体户企业家", "归国华侨留学生", "新的社会阶层"):  # fmt: skip
        assert title in sheets, title
    assert len(sheets["活动与宣传"]) == Activity.objects.filter(grid=grid, date__year=2026).count()
    own = [row for row in sheets["志愿者"] if row[-1] == grid.name]  # then the community's, 社区
    assert len(own) == TeamMembership.objects.filter(grid=grid).count() >= 9
    group_rows = GroupMember.objects.filter(grid=grid).count()
    assert sum(len(sheets[t]) for t in ("离退休老领导", "个体户企业家", "归国华侨留学生",
                                        "新的社会阶层")) == group_rows  # fmt: skip
    # residents in the group ledgers are masked: ID region + last four, phone last four
    for rows in (sheets[t] for t in ("个体户企业家", "新的社会阶层")):
        for row in rows:
            assert row[5] is None or "*" in str(row[5])
            assert row[4] == "**"  # ethnicity masked for staff

    comm = member_client("street").get(f"/api/v1/community/ledgers/{demo.community.pk}/")
    assert comm.status_code == 200, comm.content
    assert comm["Content-Type"].startswith("application/vnd.openxmlformats")
    sheets = _sheets(comm.content)
    for title in ("少数民族人员", "困难家庭", "下岗失业", "排查", "宗教场所"):
        assert title in sheets, title
    assert len(sheets["宗教场所"]) == 2
    assert len(sheets["排查"]) >= ScreeningReport.objects.filter(date__year=2026).count()
    # the street reads petitioners' names; the community's 五员 (staff) read them masked
    from gridsvc.audit.models import AuditEntry

    assert AuditEntry.objects.filter(object_type="community_ledger").exists()
    names = {row[2] for row in sheets["信访"]}
    assert names and all("*" not in n for n in names)
    staff = member_client("mediator").get(f"/api/v1/community/ledgers/{demo.community.pk}/")
    assert staff.status_code == 200
    masked = {row[2] for row in _sheets(staff.content)["信访"]}
    assert masked and all("*" in n for n in masked)
    assert (
        member_client("bh-001").get(f"/api/v1/community/ledgers/{demo.community.pk}/").status_code
        == 403
    )
    assert (
        member_client("grid1").get(f"/api/v1/community/ledgers/{demo.community.pk}/").status_code
        == 404
    )


@pytest.mark.django_db
def test_phone_feed_and_offline_batch(demo, member_client):
    phone = member_client("cadre1")  # cadre of grid 1 and the community's 宣传员
    first = phone.get("/api/v1/community/changes/")
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["has_more"] is True  # a year of the team's 一日一报: pages of 500
    assert len(body["screening"]) == 500
    grid_feed = member_client("grid1").get("/api/v1/community/changes/").json()
    assert {a["grid"] for a in grid_feed["activities"]} == {demo.grids[0].pk}
    assert grid_feed["screening"] == []  # the team's reports are the community's
    seen = {s["id"] for s in body["screening"]}
    cursor = body["cursor"]
    while body["has_more"]:
        body = phone.get(f"/api/v1/community/changes/?since={cursor}").json()
        seen |= {s["id"] for s in body["screening"]}
        cursor = body["cursor"]
    assert len(seen) == ScreeningReport.objects.count()

    act_uuid, scr_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    batch = {
        "items": [
            {
                "kind": "activity",
                "client_uuid": act_uuid,
                "data": {
                    "kind": "forum",
                    "title": "楼院座谈会",
                    "date": REF,
                    "grid": demo.grids[0].pk,
                    "participants": 12,
                    "ethnic_mix": {"汉族": 8, "回族": 4},
                },
            },  # fmt: skip
            {"kind": "screening", "client_uuid": scr_uuid, "data": {"zero_report": True}},
            {
                "kind": "activity",
                "client_uuid": str(uuid.uuid4()),
                "data": {"kind": "forum", "date": REF, "grid": demo.grids[3].pk},
            },  # fmt: skip
        ]
    }
    key = {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}
    r = phone.post("/api/v1/community/batch/", batch, format="json", **key)
    assert r.status_code == 200, r.content
    res = r.json()
    assert res["summary"] == {"accepted": 2, "duplicate": 0, "rejected": 1}
    assert [x["status"] for x in res["results"]] == ["accepted", "accepted", "rejected"]
    assert "title" in res["results"][2]["errors"]
    # the same request again (lost answer): the stored answer, nothing stored twice
    again = phone.post("/api/v1/community/batch/", batch, format="json", **key)
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    # sent again under a new key: the records are known by their client_uuid
    r = phone.post(
        "/api/v1/community/batch/", batch, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
    )
    assert [x["status"] for x in r.json()["results"]] == ["duplicate", "duplicate", "rejected"]
    assert Activity.objects.filter(client_uuid=act_uuid).count() == 1

    nxt = phone.get(f"/api/v1/community/changes/?since={cursor}").json()
    assert [a["client_uuid"] for a in nxt["activities"]] == [act_uuid]
    assert [s["client_uuid"] for s in nxt["screening"]] == [scr_uuid]
    assert nxt["venue_visits"] == []
    # a cursor is the member's own
    other = member_client("grid1").get(f"/api/v1/community/changes/?since={cursor}")
    assert other.status_code == 400 and "since" in other.json()
    assert member_client("bh-001").get("/api/v1/community/changes/").status_code == 403


def test_a_foreign_id_in_a_batch_item_is_rejected(demo, member_client):
    """Ids inside batch items are resolved through the work scope like a single POST's."""
    from gridsvc.territory.models import Place

    foreign_place = Place.objects.filter(kind="mosque").exclude(grid=demo.grids[0]).first()
    items = [
        {"kind": "activity", "client_uuid": str(uuid.uuid4()),
         "data": {"kind": "forum", "title": "x", "date": REF, "grid": demo.grids[4].pk}},
        {"kind": "venue_visit", "client_uuid": str(uuid.uuid4()),
         "data": {"place": foreign_place.pk, "date": REF}},
    ]  # fmt: skip
    before = (Activity.objects.count(), VenueVisit.objects.count())
    r = member_client("grid1").post("/api/v1/community/batch/", {"items": items}, format="json")
    assert r.status_code == 200, r.content
    res = r.json()["results"]
    assert res[0]["errors"] == {"grid": ["not found"]}
    assert res[1]["errors"] == {"place": ["not found"]}
    assert (Activity.objects.count(), VenueVisit.objects.count()) == before


def test_interpreters_for_a_household_that_needs_one(demo, member_client):
    from gridsvc.community.models import ResidentLanguage
    from gridsvc.territory.models import Resident

    elder = (
        ResidentLanguage.objects.filter(interpreter_needed=True)
        .select_related("resident__household")
        .order_by("id")
        .first()
    )
    assert elder is not None and elder.languages == ["sce"]
    hh = elder.resident.household
    url = f"/api/v1/community/languages/interpreters/?household={hh.pk}"
    r = member_client("street").get(url)
    assert r.status_code == 200, r.content
    body = r.json()
    assert {"resident": elder.resident_id, "languages": ["东乡语"]} in body["residents"]
    assert [i["language_name"] for i in body["interpreters"]] == ["东乡语", "东乡语"]
    assert body["missing_languages"] == []
    assert member_client("bh-001").get(url).status_code == 403

    # grid 1's member records a resident who speaks only 维吾尔语: nobody to send yet
    resident = Resident.objects.filter(household__unit__building__grid=demo.grids[0]).first()
    r = member_client("grid1").post(
        "/api/v1/community/languages/",
        {"resident": resident.pk, "languages": ["ug"]},
        format="json",
    )
    assert r.status_code == 201 and r.json()["interpreter_needed"] is True, r.content
    r = member_client("grid1").get(
        f"/api/v1/community/languages/interpreters/?household={resident.household_id}"
    )
    assert r.status_code == 200 and r.json()["missing_languages"] == ["维吾尔语"]
    # a neighbour never lists languages (they tell the ethnicity)
    assert member_client("bh-001").get("/api/v1/community/languages/").json()["count"] == 0


def test_the_street_reports_upward_and_the_district_sees_its_streets(demo, member_client):
    from gridsvc.community.models import UnityReport

    district = member_client("district")
    r = district.get("/api/v1/community/district/?year=2026&month=9")
    assert r.status_code == 200, r.content
    (row,) = r.json()["streets"]
    assert row["code"] == demo.street.code
    assert row["plan"] == "acknowledged" and row["monthly"] == "acknowledged"
    assert row["summary"] == "missing"
    street_view = member_client("street").get("/api/v1/community/figures/?month=2026-09").json()
    assert row["figures"]["activities"] == street_view["activities"] > 0
    october = district.get("/api/v1/community/district/?year=2026&month=10").json()
    assert october["streets"][0]["monthly"] == "submitted"
    # the month's report as submitted carries the figures of that month
    sept = UnityReport.objects.get(street=demo.street, year=2026, kind="monthly", month=9)
    assert sept.figures["activities"] == street_view["activities"]

    # 年终有总结: the desk submits the year's summary, the district acknowledges it
    r = member_client("ethnic").post(
        "/api/v1/community/reports/",
        {"year": 2026, "kind": "summary", "text": "全年开展活动…"},
        format="json",
    )
    assert r.status_code == 201, r.content
    report = r.json()
    assert report["figures"]["venue_visits"] >= 21
    assert (
        member_client("street")
        .post(f"/api/v1/community/reports/{report['id']}/acknowledge/", {}, format="json")
        .status_code
        == 403
    )
    r = district.post(
        f"/api/v1/community/reports/{report['id']}/acknowledge/", {"note": "已阅"}, format="json"
    )
    assert r.status_code == 200 and r.json()["acknowledged_by"] is not None
    again = member_client("ethnic").post(
        "/api/v1/community/reports/", {"year": 2026, "kind": "summary"}, format="json"
    )
    assert again.status_code == 409
    # the district reads figures, never records about people
    assert district.get("/api/v1/community/activities/").json()["count"] == 0
    assert district.get("/api/v1/community/figures/").status_code == 403
    assert member_client("street").get("/api/v1/community/district/?code=620103").status_code == 403


def test_activities_on_the_map(demo, member_client):
    r = member_client("street").get(
        "/api/v1/community/activities/map/?from=2026-09-01&to=2026-09-30"
    )
    assert r.status_code == 200, r.content
    body = r.json()
    sept = Activity.objects.filter(date__gte=date(2026, 9, 1), date__lte=date(2026, 9, 30))
    assert body["type"] == "FeatureCollection" and len(body["features"]) == sept.count() > 0
    for f in body["features"]:
        lon, lat = f["geometry"]["coordinates"]
        assert 103.7 < lon < 103.9 and 36.0 < lat < 36.1  # on the demo street (WGS84)
        assert "ethnic_mix" not in f["properties"]
    by_grid = {g["grid"]: g for g in body["by_grid"]}
    g1 = demo.grids[0].pk
    assert by_grid[g1]["activities"] == sept.filter(grid=g1).count()
    # a grid member sees their grid's only
    mine = member_client("grid1").get("/api/v1/community/activities/map/?from=2026-01-01").json()
    assert {f["properties"]["grid"] for f in mine["features"]} == {g1}
    assert member_client("bh-001").get("/api/v1/community/activities/map/").status_code == 403
