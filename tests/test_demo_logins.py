"""README's demo-login table says truthfully what each login sees (territory and tier).

The table is parsed from README.md, so a change of the demo's positions that is not written
into README (or a README claim the demo does not hold) fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gridsvc.accounts.models import Member
from gridsvc.chain.scope import scope_for
from gridsvc.chain.visibility import Tier, tier_for
from gridsvc.territory.models import Grid

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parent.parent / "README.md"


def _rows() -> list[tuple[list[str], str, str]]:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Demo logins") : text.index("## What works")]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`"):
            continue
        logins = [u for u in re.findall(r"`([^`]+)`", cells[0]) if "…" not in u]
        rows.append((logins, cells[2], cells[3]))
    return rows


ROWS = _rows()


def test_table_lists_every_kind_of_login():
    logins = {u for row in ROWS for u in row[0]}
    assert {
        "admin",
        "street",
        "ethnic",
        "mediator",
        "cadre1",
        "cadre4",
        "cadre6",
        "grid1",
    } <= logins
    assert {"pm-C01", "bh-001", "uh-001-1"} <= logins


@pytest.mark.parametrize(("logins", "sees", "sensitive"), ROWS, ids=[r[0][0] for r in ROWS])
def test_each_login_sees_what_readme_says(demo, logins, sees, sensitive):
    community_grids = set(
        Grid.objects.filter(community=demo.community).values_list("id", flat=True)
    )
    for username in logins:
        member = Member.objects.get(username=username)
        seen = set(scope_for(member).filter(Grid.objects.all()).values_list("id", flat=True))
        if sees == "everything":
            assert seen == set(Grid.objects.values_list("id", flat=True)), username
        elif "street" in sees or "community" in sees or "华林山社区" in sees:
            assert seen >= community_grids, username
        elif sees == "their grid":
            assert len(seen) == 1, (username, seen)
        elif sees == "nothing":
            assert seen == set(), username
        tier = tier_for(member)
        if sensitive.startswith("none"):
            assert tier == Tier.NEIGHBOUR, username
        elif sensitive != "—":
            assert tier >= Tier.STAFF, username
