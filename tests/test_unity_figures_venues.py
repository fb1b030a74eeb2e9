"""The work report's 创建 figures gain the joint venue visits (宗教场所联合走访: due, done,
逾期 or 漏访) and the 结对帮扶 help given (help records in the period), in the xlsx and the
PDF of the demo's month and year, and on ``community/figures/``. The expected numbers are
counted here from the demo's rows by another path than the report's (the tasks' ``period``
label and Python sums over the rows), not by the report's own queries."""

from __future__ import annotations

import io
import re
import subprocess
from decimal import Decimal

import pytest
from openpyxl import load_workbook

pytestmark = pytest.mark.django_db

LABELS = {
    "venue_tasks_due": "宗教场所联合走访应走访(次)",
    "venue_tasks_done": "宗教场所联合走访已走访(次)",
    "venue_tasks_late": "宗教场所联合走访逾期或漏访(次)",
    "pairing_help": "结对帮扶帮扶(次)",
    "pairing_help_amount": "结对帮扶帮扶金额(元)",
}


def _expected(demo, prefix: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The community's venue tasks whose period label starts with ``prefix`` (``2026-10`` or
    ``2026-``) and its help records dated in it, counted row by row."""
    from gridsvc.community.models import PairingHelp, VenueTask

    tasks = [t for t in VenueTask.objects.all() if t.community_id == demo.community.pk]
    tasks = [t for t in tasks if t.period.startswith(prefix)]
    helps = [
        h
        for h in PairingHelp.objects.select_related("pairing")
        if h.pairing.community_id == demo.community.pk and h.date.isoformat().startswith(prefix)
    ]
    amount = sum((h.amount or Decimal(0) for h in helps), Decimal(0))
    return {
        "venue_tasks_due": len(tasks),
        "venue_tasks_done": len([t for t in tasks if t.status == "done"]),
        "venue_tasks_late": len([t for t in tasks if t.status in ("overdue", "missed")]),
        "pairing_help": len(helps),
        "pairing_help_amount": float(amount),
    }


def _pdf_text(content: bytes, tmp_path) -> str:  # type: ignore[no-untyped-def]
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(content)
    out = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    )
    return out.stdout


def _pdf_value(text: str, label: str) -> str:
    line = next(line for line in text.splitlines() if label in line)
    return line.split(label, 1)[1].split()[0]


@pytest.mark.parametrize(
    ("kind", "query", "prefix"),
    [("monthly", "month=2026-10", "2026-10"), ("annual", "year=2026", "2026-")],
)
def test_the_report_counts_the_venue_visits_and_the_help_given(
    demo, member_client, tmp_path, kind, query, prefix
):
    want = _expected(demo, prefix)
    # the demo has all of them in the period (else the test proves nothing)
    assert want["venue_tasks_due"] and want["venue_tasks_done"] and want["pairing_help"], want
    if kind == "annual":
        assert want["venue_tasks_late"], want
    street = member_client("street")
    url = f"/api/v1/reports/{kind}/?community={demo.community.code}&{query}"
    unity = street.get(f"{url}&format=json").json()["unity"]
    assert {k: unity[k] for k in LABELS} == want
    r = street.get(f"{url}&format=xlsx")
    assert r.status_code == 200
    sheet = load_workbook(io.BytesIO(r.content))["民族团结进步创建"]
    cells = {row[0]: row[1] for row in sheet.iter_rows(min_row=2, values_only=True) if row}
    assert {k: cells.get(label) for k, label in LABELS.items()} == want
    r = street.get(f"{url}&format=pdf")
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    text = _pdf_text(r.content, tmp_path)
    printed = {k: _pdf_value(text, label) for k, label in LABELS.items()}
    for key, value in want.items():
        assert float(re.sub(r"[^\d.]", "", printed[key])) == float(value), (key, printed[key])


def test_the_figures_endpoint_uses_the_same_definitions(demo, member_client):
    want = _expected(demo, "2026-10")
    body = member_client("street").get("/api/v1/community/figures/?month=2026-10").json()
    # the street reads its whole street: the demo's one community is all of it
    assert {k: body[k] for k in LABELS} == want
    # a grid member reads their grid's only: fewer tasks, never more
    grid = member_client("grid1").get("/api/v1/community/figures/?month=2026-10").json()
    assert grid["venue_tasks_due"] <= want["venue_tasks_due"]


# ---------------------------------------------------------------- the venue task's visitor
def _rows(client, url: str) -> list[dict]:  # type: ignore[no-untyped-def]
    out: list[dict] = []
    while url:
        r = client.get(url)
        assert r.status_code == 200, r.content[:300]
        body = r.json()
        out += body["results"] if isinstance(body, dict) else body
        url = body.get("next") if isinstance(body, dict) else None
    return out


def test_a_venue_task_names_its_visitor_as_far_as_the_reader_reads_their_post(demo, member_client):
    from gridsvc.accounts.models import Member
    from gridsvc.chain.models import Position
    from gridsvc.community.models import VenueTask

    task = (
        VenueTask.objects.filter(assigned_member__isnull=False, assigned_position__isnull=False)
        .select_related("assigned_member")
        .order_by("id")
        .first()
    )
    holder = task.assigned_member
    url = "/api/v1/community/venue-tasks/?page_size=200"
    # the street office reads every post of its street: every visitor is named, as
    # /positions/ names the post's holder
    street = {t["id"]: t for t in _rows(member_client("street"), url)}
    named = [t for t in street.values() if t["assigned_member"]]
    assert named and all(t["assigned_member_name"] for t in named)
    positions = _rows(
        member_client("street"), f"/api/v1/positions/?member={holder.pk}&page_size=100"
    )
    assert street[task.pk]["assigned_member_name"] in {p["member_name"] for p in positions}
    assert street[task.pk]["assigned_member_name"] == (holder.display_name or holder.username)
    # the visitor reads their own name
    mine = {t["id"]: t for t in _rows(member_client(holder.username), url)}
    assert mine[task.pk]["assigned_member_name"] == street[task.pk]["assigned_member_name"]
    # a task of that grid assigned up the chain to the community's cadre: the grid member
    # reads the task but not the cadre's post (not in /positions/ for them), so no name
    cadre = Member.objects.get(username="cadre1")
    post = Position.objects.filter(member=cadre, community__isnull=False).order_by("id").first()
    VenueTask.objects.filter(pk=task.pk).update(assigned_member=cadre, assigned_position=post)
    reader = member_client(holder.username)
    assert _rows(reader, f"/api/v1/positions/?member={cadre.pk}&page_size=100") == []
    row = {t["id"]: t for t in _rows(reader, url)}[task.pk]
    assert (row["assigned_member"], row["assigned_member_name"]) == (cadre.pk, None)
    row = {t["id"]: t for t in _rows(member_client("street"), url)}[task.pk]
    assert row["assigned_member_name"] == (cadre.display_name or cadre.username)


# ---------------------------------------------------------------- the 结对帮扶 台账
def test_the_pairing_ledger_counts_each_pairings_help_of_the_year(demo, member_client):
    from gridsvc.community.models import Pairing, PairingHelp

    r = member_client("street").get(f"/api/v1/community/ledgers/{demo.community.pk}/?year=2026")
    assert r.status_code == 200
    rows = list(load_workbook(io.BytesIO(r.content))["结对帮扶"].iter_rows(values_only=True))
    header = next(i for i, row in enumerate(rows) if row and row[0] == "序号")
    cols = rows[header]
    n_col, last_col = cols.index("帮扶次数(年内)"), cols.index("最近帮扶")
    data = [row for row in rows[header + 1 :] if row and isinstance(row[0], int)]
    # the pairings in the sheet's order (as the ledger lists them: by start, then id)
    running = [
        p
        for p in Pairing.objects.filter(community=demo.community).order_by("started", "id")
        if p.started.year <= 2026 and (p.ended is None or p.ended.year >= 2026)
    ]
    assert len(data) == len(running)
    by_pairing: dict[int, list] = {}
    for h in PairingHelp.objects.all():
        if h.date.year == 2026:
            by_pairing.setdefault(h.pairing_id, []).append(h.date)
    want = [
        (
            len(by_pairing.get(p.pk, [])),
            max(by_pairing[p.pk]).isoformat() if p.pk in by_pairing else None,
        )
        for p in running
    ]
    got = [(row[n_col], row[last_col] or None) for row in data]
    assert got == want
    assert any(n for n, _ in want), "the demo has help records in 2026"
