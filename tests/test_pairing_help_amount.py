"""结对帮扶 amounts are amounts of assistance (``LOW_INCOME``): the money or goods' value a
household in need was given is shown as the assistance API shows income and amounts — ``**``
unless under an unmask grant (``?unmask=1``, audited), never in clear in the phone's feed —
on ``pairings/{id}/help/`` (list and the recorder's own POST answer), in the community feed
and after the community batch; and the community figures' ``pairing_help_amount`` is
suppressed below the street tier when it went to 1–4 households (one rule:
gridsvc.assistance.services.amounts_in_clear)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from gridsvc.accounts.models import Member
from gridsvc.assistance.services import amounts_in_clear
from gridsvc.audit.models import AuditEntry, UnmaskGrant
from gridsvc.chain.visibility import Tier
from gridsvc.community import services
from gridsvc.community.models import Pairing, PairingHelp
from gridsvc.territory.models import Household

pytestmark = pytest.mark.django_db

BASE = "/api/v1/community"
REF = "2026-11-24"


def _pairing(demo) -> Pairing:  # type: ignore[no-untyped-def]
    return (
        Pairing.objects.filter(grid=demo.grids[0], household__isnull=False, ended__isnull=True)
        .filter(started__lte=date(2026, 11, 1))
        .order_by("id")
        .first()
    )


def _grant(username: str) -> None:
    UnmaskGrant.objects.create(
        member=Member.objects.get(username=username),
        reason="结对帮扶 核对",
        expires_at=datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(hours=1),
    )


def _feed(client) -> list[dict]:  # type: ignore[no-untyped-def]
    rows: list[dict] = []
    url = f"{BASE}/changes/"
    while True:
        r = client.get(url)
        assert r.status_code == 200, r.content[:300]
        body = r.json()
        rows += body["pairing_help"]
        if not body["has_more"]:
            return rows
        url = f"{BASE}/changes/?since={body['cursor']}"


def test_a_grid_member_sees_help_amounts_masked_everywhere(demo, member_client):
    pairing = _pairing(demo)
    assert pairing is not None
    phone = member_client("grid1")
    url = f"{BASE}/pairings/{pairing.pk}/help/"
    body = {"date": REF, "what": "送米面油", "amount": "200.00", "client_uuid": str(uuid.uuid4())}
    r = phone.post(url, body, format="json")
    assert r.status_code == 201, r.content
    # the recorder's own answer is masked too, as the assistance API answers its steps
    posted = r.json()
    assert posted["amount"] == "**" and posted["what"] == "送米面油"
    assert PairingHelp.objects.get(pk=posted["id"]).amount == Decimal("200.00")  # stored as sent
    # the phone's offline batch: stored, its answer carries no amount at all
    key = str(uuid.uuid4())
    item = {"pairing": pairing.pk, "date": REF, "what": "慰问金", "amount": "350.50"}
    r = phone.post(
        f"{BASE}/batch/",
        {"items": [{"kind": "pairing_help", "client_uuid": key, "data": item}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert r.status_code == 200, r.content
    result = r.json()["results"][0]
    assert result["status"] == "accepted" and "350.50" not in r.content.decode()
    batched = PairingHelp.objects.get(client_uuid=key)
    assert batched.amount == Decimal("350.50")
    # the list: every recorded amount masked, none in clear
    listed = {h["id"]: h for h in phone.get(url).json()}
    assert listed[posted["id"]]["amount"] == "**" and listed[batched.pk]["amount"] == "**"
    assert all(h["amount"] in ("**", None) for h in listed.values())
    # the feed agrees with the list: no clear value where the list masks it
    fed = {h["id"]: h for h in _feed(phone)}
    for hid in (posted["id"], batched.pk):
        assert fed[hid]["amount"] == listed[hid]["amount"] == "**"
    assert all(h["amount"] in ("**", None) for h in fed.values())
    # a grid member may not hold an unmask grant: ?unmask=1 is refused, nothing audited
    assert phone.get(url + "?unmask=1").status_code == 403
    assert not AuditEntry.objects.filter(object_type="pairing_help").exists()


def test_under_an_unmask_grant_the_amount_is_clear_and_audited(demo, member_client):
    pairing = _pairing(demo)
    grid1 = Member.objects.get(username="grid1")
    row, _ = services.record_pairing_help(
        grid1, {"pairing": pairing.pk, "date": date(2026, 11, 20), "what": "助学", "amount": 880}
    )
    bare, _ = services.record_pairing_help(
        grid1, {"pairing": pairing.pk, "date": date(2026, 11, 21), "what": "谈心"}
    )
    url = f"{BASE}/pairings/{pairing.pk}/help/"
    cadre = member_client("cadre1")
    # the community cadre without a grant: masked
    assert {h["id"]: h["amount"] for h in cadre.get(url).json()}[row.pk] == "**"
    _grant("cadre1")
    clear = cadre.get(url + "?unmask=1")
    assert clear.status_code == 200, clear.content
    shown = {h["id"]: h["amount"] for h in clear.json()}
    assert shown[row.pk] == "880.00" and shown[bare.pk] is None
    audited = AuditEntry.objects.filter(
        actor__username="cadre1",
        action=AuditEntry.Action.UNMASKED_READ,
        object_type="pairing_help",
    )
    assert audited.filter(object_id=str(row.pk)).exists()
    assert not audited.filter(object_id=str(bare.pk)).exists()  # nothing shown: no read
    # a grant alone does not unmask: only ?unmask=1 does
    n = audited.count()
    assert {h["id"]: h["amount"] for h in cadre.get(url).json()}[row.pk] == "**"
    # the recorder's POST under the grant answers in clear, audited as a read
    r = cadre.post(url + "?unmask=1", {"date": REF, "what": "慰问", "amount": "66.00"})
    assert r.status_code == 201 and r.json()["amount"] == "66.00", r.content
    assert audited.count() == n + 1 and audited.filter(object_id=str(r.json()["id"])).exists()
    # the feed never unmasks, even under the grant
    fed = {h["id"]: h for h in _feed(cadre)}
    assert fed[row.pk]["amount"] == "**"
    r = cadre.get(f"{BASE}/changes/?unmask=1")
    assert r.status_code == 200
    assert all(h["amount"] in ("**", None) for h in r.json()["pairing_help"])


def test_the_rule_is_the_assistance_rule_for_every_tier():
    # masked for staff and street unless unmasked; never for neighbours (hidden there)
    assert not amounts_in_clear(Tier.STAFF, False) and amounts_in_clear(Tier.STAFF, True)
    assert not amounts_in_clear(Tier.STREET, False) and amounts_in_clear(Tier.STREET, True)
    assert not amounts_in_clear(Tier.NEIGHBOUR, True)


def _help_in_march(demo, households: list[Household], amount: int) -> None:  # type: ignore[no-untyped-def]
    grid1 = Member.objects.get(username="grid1")
    for hh in households:
        pairing, _ = services.record_pairing(
            grid1,
            {
                "kind": "help",
                "household": hh.pk,
                "partner": "共建单位",
                "started": date(2025, 1, 1),
            },
        )
        services.record_pairing_help(
            grid1,
            {"pairing": pairing.pk, "date": date(2025, 3, 10), "what": "慰问", "amount": amount},
        )


def test_the_figures_hide_a_sum_given_to_fewer_than_five_households(demo, member_client):
    households = list(
        Household.objects.filter(unit__building__grid=demo.grids[0]).order_by("id")[:5]
    )
    assert len(households) == 5
    month = f"{BASE}/figures/?month=2025-03"
    assert PairingHelp.objects.filter(date__year=2025, date__month=3).count() == 0
    _help_in_march(demo, households[:1], 300)
    grid = member_client("grid1").get(month).json()
    # one household helped: the sum is its amount, so the grid member reads null
    assert grid["pairing_help"] == 1 and grid["pairing_help_amount"] is None
    # the street reads exact figures (the project's small-cell rule)
    assert member_client("street").get(month).json()["pairing_help_amount"] == 300.0
    _help_in_march(demo, households[1:], 100)
    grid = member_client("grid1").get(month).json()
    assert grid["pairing_help"] == 5 and grid["pairing_help_amount"] == 700.0


def test_the_work_report_hides_it_as_the_figures_do(demo, member_client):
    households = list(
        Household.objects.filter(unit__building__grid=demo.grids[0]).order_by("id")[:1]
    )
    _help_in_march(demo, households, 300)
    url = f"/api/v1/reports/monthly/?community={demo.community.code}&month=2025-03"
    staff = member_client("grid1").get(url)
    assert staff.status_code == 200, staff.content[:300]
    unity = staff.json()["unity"]
    assert unity["pairing_help"] == 1 and unity["pairing_help_amount"] is None
    street = member_client("street").get(url).json()["unity"]
    assert street["pairing_help_amount"] == 300.0
    # the xlsx writes the hidden sum as a suppressed cell ("<5"), the PDF still renders
    import io

    from openpyxl import load_workbook

    book = member_client("grid1").get(url + "&format=xlsx")
    assert book.status_code == 200, book.content[:300]
    ws = load_workbook(io.BytesIO(book.content))["民族团结进步创建"]
    cells = {r[0]: r[1] for r in ws.iter_rows(values_only=True) if r and r[0]}
    assert cells["结对帮扶帮扶金额(元)"] == "<5" and cells["结对帮扶帮扶(次)"] == 1
    assert member_client("grid1").get(url + "&format=pdf").status_code == 200
