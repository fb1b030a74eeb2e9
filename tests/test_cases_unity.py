"""Issue 20 items 1 and 11 in the cases domain: the ethnic category's closing rule waits for the
street ethnic-affairs desk's sign-off, the 五员 调处员 takes and handles dispute cases of their
community, and an assignment to a household needing an interpreter says so."""

from __future__ import annotations

import pytest

from gridsvc.cases.models import Case, CaseEvent
from gridsvc.chain.models import Position
from gridsvc.community.models import ResidentLanguage
from gridsvc.territory.models import Household

from .cases_helpers import report

pytestmark = pytest.mark.django_db

SIGN_OFFS = "/api/v1/community/sign-offs/"


def _post(client, case: Case, action: str, **body):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/cases/{case.pk}/actions/{action}/", body, format="json")


def _in_grid(demo, index: int) -> Household:
    return Household.objects.filter(unit__building__grid=demo.grids[index]).order_by("id").first()


def test_an_ethnic_case_is_not_verified_or_closed_before_the_desk_signs_off(demo, member_client):
    case = report("ethnic", title="清真餐饮经营纠纷").case
    street, desk = member_client("street"), member_client("ethnic")
    assert _post(street, case, "resolve", outcome="双方达成谅解").status_code == 200
    # 回访不满意 (返工) needs no sign-off
    r = _post(street, case, "verify", satisfied=False)
    assert r.status_code == 200 and r.json()["status"] == "reopened"
    assert _post(street, case, "resolve", outcome="返工后化解").status_code == 200
    # 回访稳定 without the desk: refused naming the missing sign-off
    r = _post(street, case, "verify", satisfied=True)
    assert r.status_code == 409, r.content
    body = r.json()
    assert "ethnic-affairs desk" in body["detail"] and "ethnic_sign_off" in body
    # somebody else than the desk cannot give it
    assert street.post(SIGN_OFFS, {"case": case.pk}, format="json").status_code == 403
    assert _post(street, case, "verify", satisfied=True).status_code == 409
    # the desk says 尚未稳定: still refused, with the desk's reason
    r = desk.post(
        SIGN_OFFS, {"case": case.pk, "confirmed": False, "note": "仍有对立情绪"}, format="json"
    )
    assert r.status_code == 201, r.content
    r = _post(street, case, "verify", satisfied=True)
    assert r.status_code == 409 and "仍有对立情绪" in r.json()["detail"]
    # the desk confirms: verified, then closed
    assert (
        desk.post(SIGN_OFFS, {"case": case.pk, "note": "回访稳定"}, format="json").status_code
        == 201
    )
    r = _post(street, case, "verify", satisfied=True)
    assert r.status_code == 200 and r.json()["status"] == "verified"
    # a new refusal after the verification stops the closing until confirmed again
    desk.post(
        SIGN_OFFS, {"case": case.pk, "confirmed": False, "note": "节日前又起争执"}, format="json"
    )
    r = _post(street, case, "close")
    assert r.status_code == 409 and "节日前又起争执" in r.json()["detail"]
    assert (
        desk.post(SIGN_OFFS, {"case": case.pk, "note": "已稳定"}, format="json").status_code == 201
    )
    r = _post(street, case, "close")
    assert r.status_code == 200 and r.json()["status"] == "closed"


def test_other_categories_close_without_a_sign_off(demo, member_client):
    case = report("neighbour.noise").case
    street = member_client("street")
    assert _post(street, case, "resolve", outcome="已调解").status_code == 200
    assert _post(street, case, "verify", satisfied=True).status_code == 200
    assert _post(street, case, "close").status_code == 200


def test_the_mediator_takes_and_handles_a_dispute_of_the_community(demo, member_client):
    # cadre5 is a 五员 调处员 of the community; the case lies in grid 1, not cadre5's grid
    case = report("neighbour.noise", household=_in_grid(demo, 0)).case
    assert case.community_id == demo.community.pk
    r = _post(member_client("cadre5"), case, "take")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["handler_name"] and body["level"] == "mediation_committee"
    assert body["status"] == "assigned"
    event = CaseEvent.objects.filter(case=case, kind="take").get()
    assert event.data["level"] == "mediation_committee"
    # the 调处员 handles it as the handler
    mediator = member_client("cadre5")
    assert _post(mediator, case, "start").status_code == 200
    r = _post(mediator, case, "resolve", outcome="调处员约双方调解,达成协议")
    assert r.status_code == 200 and r.json()["resolved_level"] == "mediation_committee"


def test_only_the_communitys_mediators_take_and_only_disputes(demo, member_client):
    dispute = report("neighbour.noise", household=_in_grid(demo, 0)).case
    # a grid member (not a 调处员) may not take it
    assert _post(member_client("grid1"), dispute, "take").status_code == 403
    # a hazard is not mediated
    hazard = report("hazard.fire", household=_in_grid(demo, 0)).case
    r = _post(member_client("cadre5"), hazard, "take")
    assert r.status_code in (403, 404)
    assert Case.objects.get(pk=hazard.pk).level != "mediation_committee"


def test_the_dispatcher_assigns_a_dispute_to_a_mediator_outside_their_grid(demo, member_client):
    from gridsvc.accounts.models import Member

    # cadre7 is 调处员 since September and cadre of grid 7 only; the case lies in grid 1
    case = report("neighbour.noise", household=_in_grid(demo, 0)).case
    cadre7 = Member.objects.get(username="cadre7")
    r = _post(member_client("street"), case, "assign", member=cadre7.pk)
    assert r.status_code == 200, r.content
    assert r.json()["level"] == "mediation_committee"
    # not a dispute: cadre7 holds nothing over grid 1
    hazard = report("hazard.fire", household=_in_grid(demo, 0)).case
    r = _post(member_client("street"), hazard, "assign", member=cadre7.pk)
    assert r.status_code == 400 and "member" in r.json()


def test_an_assignment_to_a_household_needing_an_interpreter_says_so(demo, member_client):
    need = (
        ResidentLanguage.objects.filter(interpreter_needed=True, resident__household__isnull=False)
        .select_related("resident")
        .order_by("id")
        .first()
    )
    assert need is not None, "the demo records 东乡语 elders needing an interpreter"
    hh = need.resident.household
    case = report("neighbour.noise", household=hh).case
    grid_member = Position.objects.filter(
        grid=hh.unit.building.grid, position_type="grid_member"
    ).first()
    assert grid_member is not None
    r = _post(member_client("street"), case, "assign", member=grid_member.member_id)
    assert r.status_code == 200, r.content
    said = r.json()["interpreter"]
    assert said["needs_interpreter"] is True
    assert any(x["resident"] == need.resident_id for x in said["interpreter_residents"])
    assert any(x["language"] == "sce" for x in said["interpreters"])
    event = CaseEvent.objects.filter(case=case, kind="assign").latest("id")
    assert event.data["needs_interpreter"] is True
    # a household where nobody needs one: says no interpreter is needed
    other = (
        Household.objects.filter(unit__building__grid=hh.unit.building.grid)
        .exclude(pk__in=ResidentLanguage.objects.values("resident__household"))
        .order_by("id")
        .first()
    )
    case2 = report("neighbour.noise", household=other).case
    r = _post(member_client("street"), case2, "assign", member=grid_member.member_id)
    assert r.status_code == 200 and r.json()["interpreter"]["needs_interpreter"] is False
    # a plain read of the case carries no assignment note
    assert member_client("street").get(f"/api/v1/cases/{case.pk}/").json()["interpreter"] is None


def test_a_case_flagged_ethnic_religious_also_waits_for_the_desk(demo, member_client):
    case = report("neighbour.noise", flags=["ethnic_religious"]).case
    assert case.ethnic_religious
    street = member_client("street")
    assert _post(street, case, "resolve", outcome="已调解").status_code == 200
    r = _post(street, case, "verify", satisfied=True)
    assert r.status_code == 409 and "ethnic_sign_off" in r.json()
    desk = member_client("ethnic")
    assert desk.post(SIGN_OFFS, {"case": case.pk}, format="json").status_code == 201
    assert _post(street, case, "verify", satisfied=True).status_code == 200
