"""Issue 16 item 7 for residents: two devices editing the same resident never silently erase
each other's change. ``GET /api/v1/residents/{id}/`` carries an ``ETag``; ``PATCH`` with
``If-Match`` is applied only if nobody changed the resident since, else 412 with the server's
copy (masked through the visibility matrix like any other answer to the caller)."""

from __future__ import annotations

from datetime import date

import pytest

from gridsvc.accounts.models import Member
from gridsvc.chain.scope import scope_for
from gridsvc.territory.codes import make_id_number
from gridsvc.territory.models import Household, Resident

pytestmark = pytest.mark.django_db


def _resident_of(username: str) -> Resident:
    """A resident of a household in the member's territory, with an ID number and a phone
    (so the 412 copy has something to mask)."""
    member = Member.objects.get(username=username)
    hh = (
        scope_for(member)
        .filter(Household.objects.filter(unit__building__grid__isnull=False))
        .order_by("id")
        .first()
    )
    assert hh is not None
    r = Resident.objects.filter(household=hh).order_by("id").first()
    if r is None:
        r = Resident(household=hh, name="马建国", relation_to_head="户主")
    r.id_number = make_id_number("620103", date(1961, 3, 4), 31, female=False)
    r.birth_date = None
    r.gender = ""
    r.phone = "13912345678"
    r.ethnicity = "03"
    r.save()
    return r


def test_a_stale_device_gets_412_with_the_servers_masked_copy_and_erases_nothing(
    demo, member_client
):
    resident = _resident_of("grid1")
    phone_a, tablet_b = member_client("grid1"), member_client("grid1")
    url = f"/api/v1/residents/{resident.id}/"

    seen_a = phone_a.get(url)
    seen_b = tablet_b.get(url)
    assert seen_a.status_code == 200 and seen_a["ETag"] == seen_b["ETag"]
    old_etag = seen_a["ETag"]

    first = phone_a.patch(
        url, {"origin_place": "甘肃临夏"}, format="json", headers={"If-Match": old_etag}
    )
    assert first.status_code == 200, first.content
    assert first["ETag"] and first["ETag"] != old_etag
    assert phone_a.get(url)["ETag"] == first["ETag"]

    stale = tablet_b.patch(
        url, {"origin_place": "青海西宁"}, format="json", headers={"If-Match": old_etag}
    )
    assert stale.status_code == 412, stale.content
    body = stale.json()
    assert body["code"] == "stale_version"
    assert stale["ETag"] == first["ETag"]
    current = body["current"]
    assert current["id"] == resident.id and current["origin_place"] == "甘肃临夏"
    # the server's copy is shown as any answer to a grid member: masked
    assert current["id_number"] != resident.id_number and "*" in current["id_number"]
    assert current["phone"] != "13912345678"
    assert "id_number" in current["masked"]

    resident.refresh_from_db()
    assert resident.origin_place == "甘肃临夏"  # the stale write changed nothing

    # the tablet merges and sends again with the new ETag: accepted
    again = tablet_b.patch(
        url,
        {"origin_place": "甘肃临夏", "relation_to_head": "户主"},
        format="json",
        headers={"If-Match": stale["ETag"]},
    )
    assert again.status_code == 200, again.content
    resident.refresh_from_db()
    assert (resident.origin_place, resident.relation_to_head) == ("甘肃临夏", "户主")


def test_a_change_made_elsewhere_makes_the_etag_stale(demo, member_client):
    """Not only API edits count: an import, the admin or the status history change the
    resident too, and a device that read it before must not overwrite that change."""
    resident = _resident_of("grid1")
    client = member_client("grid1")
    url = f"/api/v1/residents/{resident.id}/"
    etag = client.get(url)["ETag"]

    resident.origin_place = "changed by an import"
    resident.save()

    r = client.patch(url, {"origin_place": "x"}, format="json", headers={"If-Match": etag})
    assert r.status_code == 412
    resident.refresh_from_db()
    assert resident.origin_place != "x"


def test_without_if_match_the_patch_is_applied_and_answers_the_new_etag(demo, member_client):
    """The web forms send no If-Match (as before); the answer still carries the new ETag so a
    phone can continue from it. ``If-Match: *`` means any version."""
    resident = _resident_of("grid1")
    client = member_client("grid1")
    url = f"/api/v1/residents/{resident.id}/"
    etag = client.get(url)["ETag"]
    r = client.patch(url, {"origin_place": "兰州"}, format="json")
    assert r.status_code == 200 and r["ETag"] != etag
    r2 = client.patch(url, {"origin_place": "天水"}, format="json", headers={"If-Match": "*"})
    assert r2.status_code == 200 and r2["ETag"] not in (etag, r["ETag"])


def test_a_neighbours_412_copy_is_masked_for_a_neighbour(demo, member_client):
    """The 412 body follows the visibility matrix of the caller: a building head (楼长) sees
    no ethnicity and no sensitive tag in the server's copy."""
    resident = _resident_of("bh-001")
    resident.tags = ["volunteer", "community_correction"]
    resident.save()
    client = member_client("bh-001")
    url = f"/api/v1/residents/{resident.id}/"
    etag = client.get(url)["ETag"]
    Resident.objects.filter(pk=resident.pk).update(origin_place="changed elsewhere")
    r = client.patch(url, {"relation_to_head": "之子"}, format="json", headers={"If-Match": etag})
    assert r.status_code == 412
    current = r.json()["current"]
    assert "ethnicity" not in current or current["ethnicity"] in (None, "")
    assert "community_correction" not in current["tags"]
    assert current["origin_place"] == "changed elsewhere"


def test_the_etag_tells_nothing_about_masked_values(demo, member_client):
    """Two residents who differ only in their ID number get unrelated tags, and the tag does
    not contain the number or a plain hash of it."""
    resident = _resident_of("grid1")
    tag = resident.etag
    assert resident.id_number not in tag and resident.id_number_hash not in tag
    assert tag.startswith(f'"resident-{resident.pk}-')
