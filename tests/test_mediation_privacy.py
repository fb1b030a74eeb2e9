"""A dispute's mediation agreement (人民调解协议, ``/api/v1/cases/{id}/mediation/``) names the
parties with their phones, and its facts and terms name them again. It was written in clear to
every reader of the case in the territory, while the case itself shows those readers the
parties masked (张*, no phone). Now the agreement is masked the same way for them: the
parties, and their names, phones and ID numbers in the free text; the mediator, the case's
handler and reporter read it in clear, and the answer to a write is the writer's own."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from gridsvc.accounts.models import Member
from gridsvc.cases.models import MediationRecord

from .cases_helpers import report

pytestmark = pytest.mark.django_db

PHONE = "13912345678"
PARTIES = [
    {"name": "马建国", "role": "当事人", "phone": PHONE},
    {"name": "周红梅", "role": "当事人"},
]
FACTS = f"马建国（电话{PHONE}）反映周红梅家装修噪音，双方多次争吵。"


@pytest.fixture
def agreement(demo):  # type: ignore[no-untyped-def]
    """A dispute reported by grid1 (so grid1 reads it in clear), mediated by cadre1."""
    case = report("neighbour.noise", reporter="grid1", title="装修噪音纠纷").case
    assert case.kind == "dispute"
    return MediationRecord.objects.create(
        case=case,
        parties=PARTIES,
        facts=FACTS,
        issues="周红梅是否应限定装修时间",
        terms=f"周红梅每日12时至14时不施工；马建国如有异议联系{PHONE}。",
        performance_method="自行履行",
        performance_deadline=date.today() + timedelta(days=30),
        signed_on=date.today(),
        mediator=Member.objects.get(username="cadre1"),
    )


def _get(member_client, who: str, agreement: MediationRecord) -> dict:  # type: ignore[type-arg]
    r = member_client(who).get(f"/api/v1/cases/{agreement.case_id}/mediation/")
    assert r.status_code == 200, (who, r.status_code, r.content[:300])
    return r.json()


def test_a_reader_who_sees_the_parties_masked_sees_the_agreement_masked(agreement, member_client):
    case = agreement.case
    street = Member.objects.get(username="street")
    assert street.pk not in (case.handler_id, case.reported_by_id, agreement.mediator_id)
    body = _get(member_client, "street", agreement)
    text = repr(body)
    for clear in ("马建国", "周红梅", PHONE):
        assert clear not in text, (clear, body)
    assert [p["name"] for p in body["parties"]] == ["马**", "周**"]
    assert all("phone" not in p for p in body["parties"])
    assert "马**" in body["facts"] and "5678" in body["facts"]
    assert "周**" in body["terms"] and "周**" in body["issues"]
    # the case itself shows this reader its parties as masked as the agreement does
    case_body = member_client("street").get(f"/api/v1/cases/{case.pk}/").json()
    assert "马建国" not in repr(case_body)


@pytest.mark.parametrize("who", ["grid1", "cadre1"])  # the reporter, the mediator
def test_the_reporter_and_the_mediator_read_the_agreement_in_clear(agreement, member_client, who):
    body = _get(member_client, who, agreement)
    assert body["parties"] == PARTIES
    assert body["facts"] == FACTS and PHONE in body["terms"]


def test_a_search_does_not_confirm_what_a_mask_hides(agreement, member_client):
    """The case's description names a party and a phone; the street reads them masked, so
    searching either finds nothing for the street — the reporter still finds the case by
    them. Words of the title, the number and places are searched for every reader."""
    from gridsvc.cases.models import Case

    case = agreement.case
    Case.objects.filter(pk=case.pk).update(
        description=f"马建国反映楼上装修噪音，电话{PHONE}", title=f"装修噪音 {PHONE}"
    )

    def numbers(who: str, q: str) -> list[str]:
        r = member_client(who).get("/api/v1/cases/", {"q": q, "page_size": 500})
        assert r.status_code == 200, r.content[:300]
        return [c["number"] for c in r.json()["results"]]

    for hidden in ("马建国", PHONE, PHONE[-6:]):
        assert case.number not in numbers("street", hidden), hidden
        assert case.number in numbers("grid1", hidden), hidden  # the reporter
    assert case.number in numbers("street", "装修噪音")
    assert case.number in numbers("street", case.number)
