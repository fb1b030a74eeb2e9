"""People's services on the demo street (issue 21 item 4): the seed's 华林山 figures are
counted from assistance records made through the workflow (fixtures/demo_assistance.py), and
the work report reads the same figures (staff and street only)."""

from __future__ import annotations

import io
from datetime import date

import pytest
from openpyxl import load_workbook

from gridsvc.assistance.figures import figures, given, period_figures
from gridsvc.assistance.models import Application, ApplicationEvent, Kind, Status

pytestmark = pytest.mark.django_db
DAY = date(2026, 11, 30)
STREET = {"household__unit__building__grid__community__street__code": "620103003"}


def _apps():  # type: ignore[no-untyped-def]
    return Application.objects.filter(**STREET)


def test_the_demo_reproduces_the_seed_figures_from_approved_applications(demo):
    f = period_figures(_apps(), date(2026, 1, 1), DAY)
    d = f[Kind.DIBAO]
    assert (d["minority_people"], d["minority_households"], d["people"]) == (296, 120, 740)
    assert d["minority_people_share"] == 40.0
    r = f[Kind.RENT_SUBSIDY]
    assert (r["minority_households"], r["households"]) == (25, 83)
    assert round(r["minority_households_share"]) == 30
    m = f[Kind.MEDICAL_INSURANCE]
    assert (m["minority_people"], m["people"]) == (677, 1693)
    assert round(m["minority_people_share"]) == 40
    t = f[Kind.TEMP_RELIEF]
    assert (t["households"], t["minority_households"]) == (106, 106)
    # every one went submit → check → review → approve, each step by a named member
    app = _apps().filter(kind=Kind.DIBAO).order_by("pk").first()
    steps = list(ApplicationEvent.objects.filter(application=app).order_by("id"))
    assert [e.action for e in steps] == ["submit", "check", "review", "approve"]
    assert {e.actor.username for e in steps[2:]} == {"mediator", "street"}
    assert steps[0].actor.username.startswith("grid")


def test_each_figure_moves_with_its_records(demo):
    before = figures(_apps(), DAY)
    one = _apps().filter(kind=Kind.DIBAO, status=Status.APPROVED).order_by("pk").first()
    size = one.household.residents.count()
    one.delete()
    rent = _apps().filter(kind=Kind.RENT_SUBSIDY).exclude(household__residents__ethnicity="01")
    rent.order_by("pk").first().delete()
    med = _apps().filter(kind=Kind.MEDICAL_INSURANCE).order_by("pk").first()
    med_size = med.household.residents.count()
    med.status = Status.ENDED
    med.save()
    after = figures(_apps(), DAY)
    assert after[Kind.DIBAO]["people"] == before[Kind.DIBAO]["people"] - size
    assert after[Kind.DIBAO]["households"] == before[Kind.DIBAO]["households"] - 1
    assert after[Kind.RENT_SUBSIDY]["minority_households"] == 24
    assert after[Kind.MEDICAL_INSURANCE]["people"] == 1693 - med_size
    relief = given(_apps().filter(kind=Kind.TEMP_RELIEF), date(2026, 1, 1), DAY)
    relief.order_by("pk").first().delete()
    assert period_figures(_apps(), date(2026, 1, 1), DAY)[Kind.TEMP_RELIEF]["households"] == 105


def _rows(content: bytes) -> dict[str, object]:
    ws = load_workbook(io.BytesIO(content)).worksheets[0]
    return {row[0]: row[1] for row in ws.iter_rows(values_only=True) if row and row[0]}


def test_the_annual_report_carries_the_figures_for_staff_and_street_only(demo, member_client):
    street = member_client("street")
    r = street.get(f"/api/v1/reports/annual/?community={demo.community.code}&year=2026")
    assert r.status_code == 200, r.content
    a = r.json()["assistance"]["figures"]
    assert a["dibao"]["minority_people"] == 296 and a["dibao"]["people"] == 740
    assert a["rent_subsidy"]["minority_households"] == 25
    assert a["medical_insurance"]["minority_people"] == 677
    assert a["temp_relief"]["households"] == 106
    assert r.json()["assistance"]["migrants"]["arrived"] > 0
    x = street.get(f"/api/v1/reports/annual/?community={demo.community.code}&year=2026&format=xlsx")
    assert x.status_code == 200
    rows = _rows(x.content)
    assert rows["少数民族低保人数"] == 296  # 低保 once, in 概况 (the same records)
    assert not [k for k in rows if str(k).startswith("民生服务—") and "低保" in str(k)]
    assert rows["民生服务—少数民族廉租房租赁补贴户数"] == 25
    assert rows["民生服务—少数民族居民医保参保人数"] == 677
    assert rows["民生服务—本期临时救助户数"] == 106
    # the neighbour tier: no assistance section at all
    bh = member_client("bh-001").get(
        f"/api/v1/reports/annual/?community={demo.community.code}&year=2026"
    )
    assert bh.status_code != 200 or "assistance" not in bh.json()


def test_the_grid_ledger_lists_the_applications_and_the_same_figures(demo, member_client):
    grid = demo.grids[0]
    r = member_client("grid1").get(f"/api/v1/reports/ledgers/{grid.code}/?year=2026")
    assert r.status_code == 200, r.content
    wb = load_workbook(io.BytesIO(r.content))
    rows = [x for x in wb["民生服务台账"].iter_rows(min_row=3, values_only=True) if x[0]]
    mine = _apps().filter(household__unit__building__grid=grid)
    assert len(rows) == mine.filter(status=Status.APPROVED).count() > 0
    assert {x[10] for x in rows if x[10]} == {"**"}  # amounts masked without a grant
    stats = {x[0]: x for x in wb["民生服务统计"].iter_rows(min_row=3, values_only=True) if x[0]}
    f = period_figures(mine, date(2026, 1, 1), date(2026, 11, 30))
    assert stats["低保 最低生活保障"][2] == f[Kind.DIBAO]["people"]
    assert stats["临时救助"][1] == f[Kind.TEMP_RELIEF]["households"]


def _drain(client, cursor=None):  # type: ignore[no-untyped-def]
    """Follow the change feed until it has nothing more; (inbox items, last cursor)."""
    inbox: list = []
    for _ in range(50):
        url = "/api/v1/sync/changes/" + (f"?since={cursor}" if cursor else "")
        r = client.get(url)
        assert r.status_code == 200, r.content
        inbox += r.data["inbox"]
        cursor = r.data["cursor"]
        if not r.data.get("more"):
            break
    return inbox, cursor


def test_arrivals_and_departures_reach_the_grid_members_change_feed(demo, member_client):
    from gridsvc.assistance.models import Migrant
    from gridsvc.territory.models import Resident

    grid1 = member_client("grid1")
    _, cursor = _drain(grid1)
    resident = (
        Resident.objects.filter(household__unit__building__grid=demo.grids[0], migrant=None)
        .order_by("pk")
        .first()
    )
    r = grid1.post(
        "/api/v1/migrants/",
        {"resident": resident.pk, "arrived_on": "2026-11-20", "permit": "applied"},
        format="json",
    )
    assert r.status_code == 201, r.content
    mid = str(r.json()["id"])
    inbox, cursor = _drain(grid1, cursor)
    assert [m["object_id"] for m in inbox if m["object_type"] == "migrant"] == [mid]
    r = grid1.post(f"/api/v1/migrants/{mid}/depart/", {"departed_on": "2026-11-28"}, format="json")
    assert r.status_code in (200, 201), r.content
    inbox, _ = _drain(grid1, cursor)
    assert [m["object_id"] for m in inbox if m["object_type"] == "migrant"] == [mid]
    # another grid's member is not told
    other, _ = _drain(member_client("grid5"))
    assert mid not in {m["object_id"] for m in other if m["object_type"] == "migrant"}
    # the month's report counts the flow
    street = member_client("street")
    rep = street.get(f"/api/v1/reports/monthly/?community={demo.community.code}&month=2026-11")
    flows = rep.json()["assistance"]["migrants"]
    assert flows["arrived"] == Migrant.objects.filter(arrived_on__month=11, arrived_on__year=2026,
        resident__household__unit__building__grid__community=demo.community).count()  # fmt: skip
    assert flows["departed"] >= 1


def test_batches_keep_the_rules_of_single_steps(demo):
    from gridsvc.accounts.models import Member
    from gridsvc.assistance import services
    from gridsvc.territory.models import Household

    homes = list(
        Household.objects.filter(unit__building__grid=demo.grids[0])
        .exclude(assistance_applications__kind=Kind.JOB)
        .order_by("pk")[:3]
    )
    grid1, grid5 = Member.objects.get(username="grid1"), Member.objects.get(username="grid5")
    with pytest.raises(services.NotAllowed):  # another grid's member
        services.submit_many(grid5, homes, Kind.JOB)
    apps = services.submit_many(grid1, homes, Kind.JOB, reason="求职")
    ids = [a.pk for a in apps]
    with pytest.raises(services.AssistanceError) as e:  # a second open one per household
        services.submit_many(grid1, homes[:1], Kind.JOB)
    assert e.value.status_code == 409
    with pytest.raises(services.AssistanceError) as e:  # out of order: not reviewed yet
        services.approve_many(
            Member.objects.get(username="street"), ids, reason="同意", start_date=DAY
        )
    assert e.value.status_code == 409
    services.check_many(grid1, ids, monthly_income=0, documents=["身份证"])
    with pytest.raises(services.NotAllowed):  # the grid member does not review
        services.review_many(grid1, ids, recommended=True, opinion="同意")
    assert all(a.status == Status.CHECKED for a in Application.objects.filter(pk__in=ids))
    assert all(a.members_count == a.household.residents.count() for a in
               Application.objects.filter(pk__in=ids))  # fmt: skip
    assert Application.objects.filter(pk__in=ids, due_at__isnull=False).count() == 3


def test_the_demo_has_yingbao_gaps_for_the_community_to_work(demo, member_client):
    """应保尽保 on the demo street: every 低保 household applied; six 复核 overdue; a few 廉租房
    tenants without a rent subsidy. The street gets exact counts per grid."""
    r = member_client("street").get("/api/v1/assistance/gaps/")
    assert r.status_code == 200, r.content
    rows = r.json()["results"]
    assert sum(row["dibao"] or 0 for row in rows) == 0
    overdue = _apps().filter(status=Status.APPROVED, recheck_due__lt=date(2026, 11, 30))
    assert overdue.count() == 6  # approved February 2025, 复核 due February 2026
    from gridsvc.assistance.services import recheck_overdue

    today = set(recheck_overdue(_apps()).values_list("household", flat=True))
    assert sum(row["recheck_overdue"] or 0 for row in rows) == len(today) >= 6
    assert sum(row["public_housing"] or 0 for row in rows) > 0


def test_an_overdue_recheck_is_escalated_once_after_its_notice(demo):
    from gridsvc.assistance import services
    from gridsvc.supervision.models import InboxMessage

    app = _apps().filter(kind=Kind.DIBAO, recheck_due=date(2027, 1, 1)).order_by("pk").first()
    told = InboxMessage.objects.filter(object_type="assistance", object_id=str(app.pk))
    services.recheck_reminders(date(2026, 12, 15))  # a notice, a fortnight ahead
    assert set(told.values_list("kind", flat=True)) == {InboxMessage.Kind.OTHER}
    services.recheck_reminders(date(2027, 1, 5))  # overdue: escalated to the street desk
    late = told.filter(kind=InboxMessage.Kind.ESCALATION)
    assert late.exists() and "street" in set(late.values_list("member__username", flat=True))
    n = told.count()
    services.recheck_reminders(date(2027, 1, 6))  # the next morning: nothing more
    assert told.count() == n
