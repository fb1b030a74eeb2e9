"""Field-level need-to-know (issue 15, items 2, 3, 11): the visibility matrix of
``gridsvc.chain.visibility`` walked over every JSON output that shows residents or reveals a
sensitive status — resident list/detail/create/update, households, the change feed, offline
packages, visit tasks, visits, daily reports — for one member of each tier; masks judged as a
set (a masked value cannot be rebuilt from the rest of the record); neighbours read only their
own daily reports."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

import pytest
from django.utils import timezone

from gridsvc.accounts.models import Member
from gridsvc.chain import visibility as V
from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.scope import scope_for
from gridsvc.layers import offline
from gridsvc.territory.codes import id_check_char, make_id_number, mask_id_number, mask_phone
from gridsvc.territory.models import Building, Household, Resident
from gridsvc.visits.models import DailyReport, Visit, VisitRule, VisitTask

pytestmark = pytest.mark.django_db

NEIGHBOURS = ["bh-001", "uh-001-1", "pm-C01", "oc-C03"]
STAFF = ["grid1", "cadre1"]
STREET = ["street"]
SECRET_NOTE = "社区矫正对象本周未按时报到"  # a grid member's daily-report item
MASK = "**"
# Where each attribute of the matrix shows in a resident record (keys); tag attributes show
# as tag values (visibility.TAG_ATTRIBUTE). A new attribute of the matrix must be added here
# (test_every_attribute_of_the_matrix_is_walked) and is then walked everywhere.
KEYS: dict[str, tuple[str, ...]] = {
    V.NAME: ("name",),
    V.GENDER: ("gender",),
    V.BIRTH_DATE: ("birth_date", "birth_year"),
    V.ID_NUMBER: ("id_number",),
    V.PHONE: ("phone",),
    V.ETHNICITY: ("ethnicity", "ethnicity_name"),
    V.RELIGION: (),
    V.CORRECTION: (),
    V.DISABILITY: (),
    V.HEALTH: (),
    V.LOW_INCOME: (),
    V.EXACT_ADDRESS: (),
    V.OTHER_TAGS: (),
}

# Household keys that reveal an attribute (廉租房 tenure = housing assistance).
HOUSEHOLD_FIELDS: dict[str, tuple[str, ...]] = {V.LOW_INCOME: ("tenure",)}
HOUSEHOLD_OUTPUTS = ("GET /households/?unit=", "sync feed households")


def tags_of(attribute: str) -> set[str]:
    return {t for t, a in V.TAG_ATTRIBUTE.items() if a == attribute}


def test_docs_hold_the_matrix_as_the_module_has_it():
    from pathlib import Path

    docs = (Path(__file__).resolve().parent.parent / "docs" / "security.md").read_text()
    assert V.matrix_markdown() in docs


def test_every_attribute_of_the_matrix_is_walked():
    assert set(KEYS) == set(V.MATRIX)
    assert set(V.TAG_ATTRIBUTE) <= set(Resident.Tag.values)
    assert V.SENSITIVE_TAGS and V.SENSITIVE_TAGS <= set(Resident.Tag.values)


# ---------------------------------------------------------------- rebuilding a masked value
def id_candidates(masked: str, record: dict) -> int:
    """How many valid ID numbers fit ``masked`` (region + last four) and the rest of the
    record: its birth date or birth year, gender, the GB 11643 check character."""
    region, last4 = masked[:6], masked[-4:]
    assert masked[6:-4] == "*" * (len(masked) - 10), masked
    today = date.today()
    if record.get("birth_date"):
        days = [date.fromisoformat(record["birth_date"])]
    elif record.get("birth_year"):
        year = record["birth_year"]
        start = date(year, 1, 1)
        days = [start + timedelta(n) for n in range((date(year, 12, 31) - start).days + 1)]
        days = [d for d in days if d <= today]
    else:
        return 10**6  # no birth information: every date since 1880
    gender = record.get("gender")
    count = 0
    for d in days:
        first17 = f"{region}{d:%Y%m%d}{last4[:3]}"
        if id_check_char(first17) != last4[3]:
            continue
        if gender in ("M", "F") and (int(last4[2]) % 2 == 1) != (gender == "M"):
            continue
        count += 1
    return count


def phone_candidates(masked: str) -> int:
    """How many numbers fit a masked phone (the record holds nothing else about it)."""
    return 10 ** masked.count("*")


def assert_masks_hold_as_a_set(path: str, record: dict) -> None:
    idn, phone = record.get("id_number"), record.get("phone")
    if idn and "*" in idn:
        n = id_candidates(idn, record)
        assert n > 10, f"{path}: {idn} rebuilt from the record ({n} candidates): {record}"
    if phone and "*" in phone:
        shown = sum(c.isdigit() for c in phone)
        assert shown <= 4, f"{path}: phone {phone} keeps {shown} digits (joinable)"
        assert phone_candidates(phone) > 10
        assert not phone[:3].isdigit(), f"{path}: phone {phone} keeps its carrier prefix"


# ---------------------------------------------------------------- the walk
def _member(username: str) -> Member:
    return Member.objects.get(username=username)


def _grid_member_of(household: Household) -> Member:
    pos = (
        Position.objects.held_at()
        .filter(position_type=PositionType.GRID_MEMBER, grid_id=household.unit.building.grid_id)
        .select_related("member")
        .first()
    )
    return pos.member


def _target(username: str) -> Household:
    """A household in the member's territory made to carry every attribute of the matrix:
    a resident with every tag (sensitive ones too), a minority ethnicity, an ID number, a
    phone and a birth date; tasks and a visit of the sensitive groups; a grid member's daily
    report that names a sensitive status."""
    hh = (
        scope_for(_member(username))
        .filter(Household.objects.filter(unit__building__grid__isnull=False))
        .select_related("unit__building")
        .order_by("id")
        .first()
    )
    assert hh is not None, username
    hh.tenure = Household.Tenure.LOW_RENT
    hh.save()
    r = Resident.objects.filter(household=hh).order_by("id").first()
    r.tags = list(Resident.Tag.values)
    r.ethnicity = "03"
    r.birth_date = date(1984, 3, 14)
    r.id_number = make_id_number("620103", r.birth_date, 641, female=r.gender == "F")
    r.phone = "13912345678"
    r.save()
    grid_member = _grid_member_of(hh)
    today = timezone.localdate()
    for rule in VisitRule.objects.filter(target_group__in=V.SENSITIVE_TAGS):
        task, _ = VisitTask.objects.get_or_create(
            rule=rule,
            household=hh,
            period_start=today.replace(day=1),
            defaults={
                "resident": r,
                "period": f"{today:%Y-%m}",
                "period_end": today + timedelta(days=30),
                "due_on": today + timedelta(days=10),
                "assigned_member": grid_member,
            },
        )
        Visit.objects.create(
            member=grid_member,
            household=hh,
            resident=r,
            task=task,
            client_time=timezone.now(),
            content_hash=uuid.uuid4().hex,
            purpose=rule.name,
        )
    Visit.objects.create(  # the yearly visit: not a sensitive task, but the notes say it
        member=grid_member,
        household=hh,
        client_time=timezone.now(),
        content_hash=uuid.uuid4().hex,
        purpose="入户走访",
        notes=SECRET_NOTE,
        findings=[{"category": "治安", "description": SECRET_NOTE}],
    )
    DailyReport.objects.update_or_create(
        member=grid_member,
        date=today,
        defaults={
            "nothing_abnormal": False,
            "items": [{"category": "治安", "description": SECRET_NOTE}],
        },
    )
    return hh


def _pages(client, url: str) -> list[dict]:
    rows: list[dict] = []
    while url:
        r = client.get(url)
        assert r.status_code == 200, (url, r.content)
        body = r.json()
        rows += body.get("results", body.get("features", []))
        url = body.get("next")
    return rows


def _feed(client) -> dict[str, list]:
    out: dict[str, list] = {"tasks": [], "households": []}
    cursor = None
    for _ in range(40):
        r = client.get("/api/v1/sync/changes/" + (f"?since={cursor}" if cursor else ""))
        assert r.status_code == 200, r.content
        body = r.json()
        out["tasks"] += body["tasks"]
        out["households"] += body["households"]
        cursor = body["cursor"]
        if not body["has_more"]:
            return out
    raise AssertionError("feed did not end")


def outputs(client, username: str, hh: Household) -> dict[str, dict[str, list]]:
    """Every JSON output of this caller about ``hh``: {"residents": {path: records}, "tasks":
    {path: rows}, "other": {path: rows}}."""
    tier = V.tier_for(_member(username))
    target = Resident.objects.filter(household=hh).order_by("id").first()
    residents: dict[str, list] = {}
    residents["GET /residents/?household="] = _pages(
        client, f"/api/v1/residents/?household={hh.id}"
    )
    residents["GET /residents/{id}/"] = [client.get(f"/api/v1/residents/{target.id}/").json()]
    tags = [t for t in Resident.Tag.values if V.knows_sensitive(tier) or t not in V.SENSITIVE_TAGS]
    created = client.post(
        "/api/v1/residents/",
        {
            "household": hh.id,
            "name": "马新",
            "gender": "M",
            "birth_date": "1990-07-21",
            "id_number": make_id_number("620103", date(1990, 7, 21), 7, female=False),
            "phone": "13698765432",
            "ethnicity": "回族",
            "tags": tags,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    residents["POST /residents/"] = [created.json()]
    patched = client.patch(
        f"/api/v1/residents/{target.id}/", {"origin_place": "甘肃省临夏州"}, format="json"
    )
    assert patched.status_code == 200, patched.content
    residents["PATCH /residents/{id}/"] = [patched.json()]
    if client.get(f"/api/v1/offline/grids/{hh.unit.building.grid_id}/").status_code == 200:
        package = offline.household_collection(hh.unit.building.grid)
        residents["offline package households.geojson"] = [
            r for f in package["features"] for r in f["properties"]["residents"]
        ]
    feed = _feed(client)
    other = {
        "GET /households/?unit=": _pages(client, f"/api/v1/households/?unit={hh.unit_id}"),
        "sync feed households": feed["households"],
        "GET /daily-reports/": _pages(client, "/api/v1/daily-reports/?page_size=200"),
        "GET /daily-reports/missing/": client.get("/api/v1/daily-reports/missing/").json()[
            "results"
        ],
        "GET /visits/?household=": _pages(client, f"/api/v1/visits/?household={hh.id}"),
    }
    tasks = {
        "GET /visit-tasks/?household=": _pages(client, f"/api/v1/visit-tasks/?household={hh.id}"),
        "sync feed tasks": [t for t in feed["tasks"] if t["household"] == hh.id],
    }
    return {"residents": residents, "tasks": tasks, "other": other}


def check_matrix(client, username: str, hh: Household) -> list[str]:
    """Walk ``visibility.MATRIX`` for this caller's tier; return the violations."""
    me = _member(username)
    tier = V.tier_for(me)
    out = outputs(client, username, hh)
    rule_group = dict(VisitRule.objects.values_list("code", "target_group"))
    rule_group.update({str(k): v for k, v in VisitRule.objects.values_list("id", "target_group")})
    blob = json.dumps(out, ensure_ascii=False, default=str)
    labels = dict(Resident.Tag.choices)
    bad: list[str] = []
    for attribute, cells in V.MATRIX.items():
        cell = cells[tier]
        keys = KEYS[attribute]
        tags = tags_of(attribute)
        for path, records in out["residents"].items():
            for rec in records:
                stored = Resident.objects.get(pk=rec["id"])
                present = [k for k in keys if k in rec]
                shown_tags = set(rec.get("tags", [])) & tags
                if cell == V.HIDDEN:
                    if present:
                        bad.append(f"{attribute} hidden, {path} has keys {present}")
                    if shown_tags:
                        bad.append(f"{attribute} hidden, {path} shows tags {shown_tags}")
                elif cell == V.MASKED:
                    if shown_tags:
                        bad.append(f"{attribute} masked, {path} shows tags {shown_tags}")
                    expected = {
                        "id_number": mask_id_number(stored.id_number),
                        "phone": mask_phone(stored.phone),
                        "ethnicity": MASK,
                        "ethnicity_name": None,
                    }
                    for k in present:
                        if rec[k] != expected.get(k, None):
                            bad.append(f"{attribute} masked, {path} shows {k}={rec[k]!r}")
                elif cell == V.COARSE:
                    if rec.get("birth_date") is not None:
                        bad.append(f"{attribute} coarse, {path} shows {rec['birth_date']}")
                    if "birth_year" in rec and rec["birth_year"] != V.birth_year(stored.birth_date):
                        bad.append(f"{attribute} coarse, {path} birth_year wrong")
                elif cell == V.CLEAR:
                    for k in present:
                        if rec[k] != getattr(stored, k):
                            bad.append(f"{attribute} clear, {path} shows {k}={rec[k]!r}")
        for tag in tags:
            r = client.get(f"/api/v1/residents/?tag={tag}")
            if cell == V.HIDDEN:
                if r.status_code != 400 or "tag" not in r.json():
                    bad.append(f"{attribute} hidden, ?tag={tag} answered {r.status_code}")
                for text in (f'"{tag}"', labels[tag]):
                    if text in blob:
                        bad.append(f"{attribute} hidden, {text} appears in an output")
                for path, rows in out["tasks"].items():
                    for t in rows:
                        group = rule_group[str(t.get("rule_code") or t.get("rule"))]
                        if group == tag and t["assigned_member"] != me.id:
                            bad.append(f"{attribute} hidden, {path} has a {tag} task")
            elif r.status_code != 200:
                bad.append(f"{attribute} {cell}, ?tag={tag} answered {r.status_code}")
        for key in HOUSEHOLD_FIELDS.get(attribute, ()):
            rows = [
                row for p in HOUSEHOLD_OUTPUTS for row in out["other"][p] if "deleted" not in row
            ]
            assert rows, "the household outputs are walked"
            r = client.get(f"/api/v1/households/?{key}={hh.tenure}")
            if cell == V.HIDDEN:
                if any(key in row for row in rows):
                    bad.append(f"{attribute} hidden, households show {key}")
                if r.status_code != 400 or key not in r.json():
                    bad.append(f"{attribute} hidden, ?{key}= answered {r.status_code}")
            else:
                if not all(key in row for row in rows):
                    bad.append(f"{attribute} {cell}, households lost {key}")
                if r.status_code != 200:
                    bad.append(f"{attribute} {cell}, ?{key}= answered {r.status_code}")
        if cell == V.HIDDEN and attribute in V.SENSITIVE_ATTRIBUTES:
            if SECRET_NOTE in blob:
                bad.append(f"{attribute} hidden, a grid member's report or visit notes read")
            others = [
                path
                for path, rows in out["other"].items()
                if path.startswith("GET /daily-reports")
                for row in rows
                if row["member"] != me.id
            ]
            if others:
                bad.append(f"{attribute} hidden, others' daily reports in {set(others)}")
            for path in ("GET /visits/?household=",):
                for v in out["other"][path]:
                    if v["task"] is not None and v["member"] != me.id:
                        task = VisitTask.objects.select_related("rule").get(pk=v["task"])
                        if task.rule.target_group in V.SENSITIVE_TAGS:
                            bad.append(f"{attribute} hidden, {path} has a sensitive visit")
    return sorted(set(bad))


@pytest.mark.parametrize("username", NEIGHBOURS + STAFF + STREET)
def test_every_output_follows_the_visibility_matrix(demo, member_client, username):
    expected = (
        V.Tier.NEIGHBOUR
        if username in NEIGHBOURS
        else V.Tier.STAFF
        if username in STAFF
        else V.Tier.STREET
    )
    assert V.tier_for(_member(username)) == expected
    hh = _target(username)
    client = member_client(username)
    assert check_matrix(client, username, hh) == []


def test_staff_still_see_sensitive_groups_masked_and_their_tasks(demo, member_client):
    hh = _target("grid1")
    client = member_client("grid1")
    r = client.get("/api/v1/residents/?tag=community_correction&page_size=200").json()
    target = Resident.objects.filter(household=hh).order_by("id").first()
    assert target.id in {row["id"] for row in r["results"]}
    tasks = client.get(f"/api/v1/visit-tasks/?household={hh.id}").json()["results"]
    assert {"community-correction-monthly", "hardship-monthly"} <= {t["rule_code"] for t in tasks}
    reports = client.get("/api/v1/daily-reports/?page_size=200").json()["results"]
    assert any(SECRET_NOTE in json.dumps(x, ensure_ascii=False) for x in reports)
    visits = client.get(f"/api/v1/visits/?household={hh.id}").json()["results"]
    assert SECRET_NOTE in {v.get("notes") for v in visits}


def test_neighbours_see_others_visits_without_their_words(demo, member_client):
    hh = _target("bh-001")
    visits = member_client("bh-001").get(f"/api/v1/visits/?household={hh.id}").json()
    assert visits["results"], "the building head still sees that the household was visited"
    for v in visits["results"]:
        assert not {"notes", "findings", "purpose", "participants_text"} & set(v)


# ---------------------------------------------------------------- masks as a set (item 2)
@pytest.mark.parametrize("username", ["grid1", "bh-001", "street"])
def test_no_masked_value_can_be_rebuilt_from_its_record(demo, member_client, username):
    hh = _target(username)
    client = member_client(username)
    out = outputs(client, username, hh)
    records = [(p, rec) for p, recs in out["residents"].items() for rec in recs]
    page = client.get("/api/v1/residents/?page_size=60").json()["results"]
    records += [("GET /residents/", rec) for rec in page]
    grid = hh.unit.building.grid
    package = offline.household_collection(grid)
    records += [
        ("offline package", r) for f in package["features"] for r in f["properties"]["residents"]
    ][:200]
    with_id = [rec for _, rec in records if rec.get("id_number")]
    assert len(with_id) > 20
    for path, rec in records:
        assert_masks_hold_as_a_set(path, rec)


def test_the_rebuild_check_does_rebuild_an_id_next_to_its_birth_date():
    born = date(1984, 3, 14)
    idn = make_id_number("620103", born, 641, female=False)
    masked = mask_id_number(idn)
    assert id_candidates(masked, {"birth_date": born.isoformat(), "gender": "M"}) == 1
    assert id_candidates(masked, {"birth_year": 1984, "gender": "M"}) > 10


def test_phone_mask_keeps_only_the_last_four_digits():
    assert mask_phone("13812345678") == "*******5678"
    assert mask_phone("0931-8123456") == "********3456"
    assert mask_phone("12345") == "*****"
    assert mask_phone("") == ""


def test_an_unmask_grant_shows_the_birth_date_in_clear(demo, member_client):
    street = member_client("street")
    r = street.post(
        "/api/v1/privacy/grants/", {"reason": "核实身份信息", "minutes": 5}, format="json"
    )
    assert r.status_code == 201, r.content
    target = Resident.objects.filter(birth_date__isnull=False, household__isnull=False).first()
    clear = street.get(f"/api/v1/residents/{target.id}/?unmask=1").json()
    assert clear["birth_date"] == target.birth_date.isoformat()
    assert clear["id_number"] == target.id_number
    masked = street.get(f"/api/v1/residents/{target.id}/").json()
    assert "birth_date" not in masked and masked["birth_year"] == target.birth_date.year


# ---------------------------------------------------------------- neighbours' writes
def test_a_neighbour_cannot_set_a_sensitive_tag_and_keeps_the_ones_hidden_from_them(
    demo, member_client
):
    hh = _target("bh-001")
    target = Resident.objects.filter(household=hh).order_by("id").first()
    client = member_client("bh-001")
    r = client.patch(
        f"/api/v1/residents/{target.id}/", {"tags": ["community_correction"]}, format="json"
    )
    assert r.status_code == 400 and "tags" in r.json()
    r = client.patch(f"/api/v1/residents/{target.id}/", {"tags": ["volunteer"]}, format="json")
    assert r.status_code == 200 and r.json()["tags"] == ["volunteer"]
    target.refresh_from_db()
    assert V.SENSITIVE_TAGS <= set(target.tags) and "volunteer" in target.tags
    assert "party_member" not in target.tags


# ---------------------------------------------------------------- a member of two tiers
def test_a_grid_member_who_is_a_building_head_elsewhere_learns_nothing_sensitive_there(
    demo, member_client
):
    other_building = Building.objects.filter(grid=demo.grids[0]).order_by("code").first()
    grid2 = _member("grid2")
    Position.objects.create(
        member=grid2,
        position_type=PositionType.BUILDING_HEAD,
        building=other_building,
        valid_from=timezone.now() - timedelta(days=1),
    )
    hh = Household.objects.filter(unit__building=other_building).order_by("id").first()
    r0 = Resident.objects.filter(household=hh).order_by("id").first()
    r0.tags = ["community_correction", "volunteer"]
    r0.ethnicity = "03"
    r0.save()
    client = member_client("grid2")
    shown = client.get(f"/api/v1/residents/{r0.id}/").json()
    assert "ethnicity" not in shown and shown["tags"] == ["volunteer"]
    found = client.get("/api/v1/residents/?tag=community_correction&page_size=200").json()
    ids = {row["id"] for row in found["results"]}
    assert r0.id not in ids
    in_grid2 = set(
        Resident.objects.filter(
            household__unit__building__grid=demo.grids[1], tags__contains=["community_correction"]
        ).values_list("id", flat=True)
    )
    assert ids == in_grid2
    own_grid = Resident.objects.filter(household__unit__building__grid=demo.grids[1]).first()
    assert client.get(f"/api/v1/residents/{own_grid.id}/").json()["ethnicity"] == MASK
    reports = client.get("/api/v1/daily-reports/?page_size=200").json()["results"]
    assert _member("grid1").id not in {x["member"] for x in reports}


# ---------------------------------------------------------------- 一日一报 (item 11)
@pytest.mark.parametrize("username", NEIGHBOURS)
def test_neighbours_read_only_their_own_daily_reports(demo, member_client, username):
    me = _member(username)
    hh = scope_for(me).filter(Household.objects.all()).select_related("unit__building").first()
    grid_member = _grid_member_of(hh)
    theirs = DailyReport.objects.filter(member=grid_member).order_by("-date").first()
    assert theirs is not None
    client = member_client(username)
    mine = client.post("/api/v1/daily-reports/", {"nothing_abnormal": True}, format="json")
    assert mine.status_code == 201, mine.content  # today's first report (the demo ends earlier)
    rows = client.get("/api/v1/daily-reports/?page_size=200").json()["results"]
    assert [r["member"] for r in rows] == [me.id]
    assert client.get(f"/api/v1/daily-reports/{theirs.id}/").status_code == 404
    assert client.get(f"/api/v1/daily-reports/?member={grid_member.id}").json()["count"] == 0
    missing = client.get("/api/v1/daily-reports/missing/").json()
    assert {r["member"] for r in missing["results"]} <= {me.id}


def test_grid_members_and_cadres_still_read_their_grids_reports(demo, member_client):
    rows = member_client("cadre1").get("/api/v1/daily-reports/?page_size=200").json()
    assert _member("grid1").id in {r["member"] for r in rows["results"]}
    missing = member_client("street").get("/api/v1/daily-reports/missing/?date=2026-11-24")
    assert {"grid3", "grid5"} <= {r["username"] for r in missing.json()["results"]}
    missing = member_client("cadre1").get("/api/v1/daily-reports/missing/?date=2026-11-24")
    assert "grid3" in {r["username"] for r in missing.json()["results"]}
