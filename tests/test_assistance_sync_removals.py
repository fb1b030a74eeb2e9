"""People's services on the phone (issue 21 follow-up): the assistance feed
(GET /api/v1/assistance/changes/) tells a phone to remove the applications and migrants that
left the member's territory — a building re-assigned to another grid, a post handed over or
ended, a tier that no longer allows the data — with the main feed's scheme (a territory
snapshot named by the cursor, ``purge`` lists, ``territory_changed``), and stops sending them;
the new holder's phone gets them. A revoked device gets 401, a member without a staff post
403 once the purge is delivered."""

from __future__ import annotations

from datetime import date

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from gridsvc.accounts.models import Member
from gridsvc.assistance import migrants, services
from gridsvc.assistance.models import Application, Migrant
from gridsvc.chain.models import Position, PositionType
from gridsvc.territory.models import Building, Household, Resident

pytestmark = pytest.mark.django_db
FEED = "/api/v1/assistance/changes/"
STREAMS = ("applications", "migrants")


def _drain(client, cursor: str | None = None, limit: int | None = None) -> dict:  # type: ignore[no-untyped-def]
    """Follow the feed until has_more is false: rows and purge ids by stream, the pages'
    territory_changed flags and the last cursor."""
    got: dict = {k: {} for k in STREAMS}
    purge: dict = {k: set() for k in STREAMS}
    changed = []
    for _ in range(100):
        q = [f"since={cursor}"] if cursor else []
        if limit:
            q.append(f"limit={limit}")
        r = client.get(FEED + ("?" + "&".join(q) if q else ""))
        assert r.status_code == 200, r.content[:300]
        body = r.json()
        changed.append(body["territory_changed"])
        for k in STREAMS:
            for row in body[k]:
                got[k][row["id"]] = row
            purge[k] |= set(body["purge"][k])
        cursor = body["cursor"]
        if not body["has_more"]:
            return {"cursor": cursor, "purge": purge, "changed": changed, **got}
    raise AssertionError("feed did not end")


def _member(username: str) -> Member:
    return Member.objects.get(username=username)


def _held(member: Member) -> dict[str, set[int]]:
    """What the member's phone should hold now (the staff part of their territory)."""
    from gridsvc.assistance.sync import feed_applications, feed_migrants

    return {
        "applications": set(feed_applications(member).values_list("id", flat=True)),
        "migrants": set(feed_migrants(member).values_list("id", flat=True)),
    }


def _records_in(building: Building, actor: Member) -> tuple[Application, Migrant]:
    """An application and a migrant of a household of ``building``, made through the
    services."""
    household = (
        Household.objects.filter(unit__building=building, residents__isnull=False)
        .order_by("id")
        .first()
    )
    assert household is not None, building
    Application.objects.filter(household=household, kind="job").delete()
    app = services.submit(actor, household, "job", reason="失业登记").application
    resident = Resident.objects.filter(household=household).order_by("id").first()
    Migrant.objects.filter(resident=resident).delete()
    migrant = migrants.arrive(
        actor, resident, date(2026, 11, 3), home_contact_phone="13912345678"
    ).migrant
    return app, migrant


def test_a_building_moved_to_another_grid_moves_its_records_between_phones(demo, member_client):
    g1, g2 = member_client("grid1"), member_client("grid2")
    building = Building.objects.filter(grid=demo.grids[0]).order_by("id").last()
    app, migrant = _records_in(building, _member("grid1"))
    before1, before2 = _drain(g1), _drain(g2)
    assert app.pk in before1["applications"] and migrant.pk in before1["migrants"]
    assert app.pk not in before2["applications"] and migrant.pk not in before2["migrants"]
    moved_apps = set(
        Application.objects.filter(household__unit__building=building).values_list("id", flat=True)
    )
    moved_migrants = set(
        Migrant.objects.filter(resident__household__unit__building=building).values_list(
            "id", flat=True
        )
    )
    # nothing changed yet: a quiet answer, nothing purged
    quiet = _drain(g1, before1["cursor"])
    assert quiet["changed"] == [False] and quiet["purge"] == {
        "applications": set(),
        "migrants": set(),
    }

    Building.objects.filter(pk=building.pk).update(grid=demo.grids[1])  # a boundary re-import

    out = _drain(g1, quiet["cursor"])
    assert out["changed"][0] is True
    assert out["purge"]["applications"] == moved_apps, "the old grid's phone drops them"
    assert out["purge"]["migrants"] == moved_migrants
    assert not set(out["applications"]) & moved_apps
    assert not out["purge"]["applications"] & _held(_member("grid1"))["applications"]
    inn = _drain(g2, before2["cursor"])
    assert inn["changed"][0] is True
    assert moved_apps <= set(inn["applications"]), "the new grid's phone gets them"
    assert moved_migrants <= set(inn["migrants"])
    assert inn["applications"][app.pk]["monthly_income"] is None  # not checked yet
    assert inn["migrants"][migrant.pk]["home_contact_phone"] != "13912345678"  # masked
    assert not inn["purge"]["applications"] and not inn["purge"]["migrants"]

    # the old phone is not sent them again, even when they change; the new one is
    services.check(
        _member("grid2"), app.pk, members_count=2, monthly_income=300, documents=["户口簿"]
    )
    again1, again2 = _drain(g1, out["cursor"]), _drain(g2, inn["cursor"])
    assert app.pk not in again1["applications"] and again1["changed"] == [False]
    assert again2["applications"][app.pk]["status"] == "checked"
    assert again2["applications"][app.pk]["monthly_income"] == "**"
    # and a first sync of the old phone does not hold them either
    assert not set(_drain(g1)["applications"]) & moved_apps


def test_a_handed_over_post_removes_everything_from_the_old_phone(
    demo, member_client, django_capture_on_commit_callbacks
):
    old = member_client("grid1")
    held = _held(_member("grid1"))
    assert len(held["applications"]) > 20 and held["migrants"], "the demo's grid 1 has records"
    before_old = _drain(old, limit=20)
    assert set(before_old["applications"]) == held["applications"]
    assert set(before_old["migrants"]) == held["migrants"]
    newcomer = _member("grid2")
    before_new = _drain(member_client("grid2"))
    pos = Position.objects.held_at().get(member__username="grid1", position_type="grid_member")
    with django_capture_on_commit_callbacks(execute=True):
        r = member_client("street").post(
            f"/api/v1/positions/{pos.id}/hand-over/",
            {"member": newcomer.pk, "note": "调岗"},
            format="json",
        )
    assert r.status_code == 201, r.content

    # the old holder's next sync (paged: 20 a page) removes everything it held, sends nothing
    old = member_client("grid1")  # a request loads the member afresh (positions, tier)
    gone = _drain(old, before_old["cursor"], limit=20)
    assert len(gone["changed"]) > 1 and all(gone["changed"]), "a purge over several pages"
    assert gone["purge"]["applications"] == held["applications"]
    assert gone["purge"]["migrants"] == held["migrants"]
    assert not gone["applications"] and not gone["migrants"]
    # grid1 holds no post now: told once, then refused like any member without a staff post
    r = old.get(FEED + "?since=" + gone["cursor"])
    assert r.status_code == 403, r.content
    assert old.get(FEED).status_code == 403
    # the new holder's phone gets the handed-over grid's records
    came = _drain(member_client("grid2"), before_new["cursor"])
    assert came["changed"][0] is True
    assert held["applications"] <= set(came["applications"])
    assert held["migrants"] <= set(came["migrants"])
    assert not came["purge"]["applications"] and not came["purge"]["migrants"]


def test_a_tier_that_no_longer_allows_the_data_empties_the_phone(demo, member_client):
    """A grid member whose post ends but who stays a building head (a neighbour's role) may
    no longer hold assistance records: the next sync purges them all, then 403."""
    client = member_client("grid3")
    start = _drain(client)
    assert start["applications"] or start["migrants"]
    grid3 = _member("grid3")
    building = Building.objects.filter(grid=demo.grids[2]).order_by("id").first()
    Position.objects.create(
        position_type=PositionType.BUILDING_HEAD, member=grid3, building=building
    )
    # a new neighbour's post adds nothing to the staff part: nothing purged, nothing new
    same = _drain(client, start["cursor"])
    assert same["purge"] == {"applications": set(), "migrants": set()}
    assert not same["applications"]
    pos = Position.objects.held_at().get(member=grid3, position_type="grid_member")
    pos.valid_to = timezone.now()
    pos.save()
    left = _drain(member_client("grid3"), same["cursor"])
    assert left["purge"]["applications"] == set(start["applications"])
    assert left["purge"]["migrants"] == set(start["migrants"])
    assert not left["applications"] and not left["migrants"]
    assert member_client("grid3").get(FEED + "?since=" + left["cursor"]).status_code == 403
    # the households of the building are still on the main feed's phone (a neighbour's view)
    assert member_client("grid3").get("/api/v1/sync/changes/").status_code == 200


def test_a_territory_change_during_a_first_sync_still_brings_everything(demo, member_client):
    client = member_client("grid3")
    page = client.get(FEED + "?limit=10").json()
    assert page["has_more"]
    # grid3 now also covers grid 4 (a second post, e.g. standing in)
    Position.objects.create(
        position_type=PositionType.GRID_MEMBER, member=_member("grid3"), grid=demo.grids[3]
    )
    rest = _drain(client, page["cursor"], limit=10)
    got = {a["id"] for a in page["applications"]} | set(rest["applications"])
    want = _held(_member("grid3"))
    assert got == want["applications"]
    assert {m["id"] for m in page["migrants"]} | set(rest["migrants"]) == want["migrants"]
    assert not rest["purge"]["applications"] and not rest["purge"]["migrants"]


def test_a_revoked_device_gets_401_and_cursors_stay_per_feed(demo):
    r = APIClient().post(
        "/api/v1/auth/token/",
        {"username": "grid2", "password": "gridsvc-demo", "device": "assist-phone"},
        format="json",
    )
    assert r.status_code == 200, r.content
    pair = r.json()
    phone = APIClient()
    phone.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['access']}")
    first = phone.get(FEED)
    assert first.status_code == 200
    # an assistance cursor is not a main-feed cursor (and the other way round): 400, never 500
    r = phone.get("/api/v1/sync/changes/?since=" + first.json()["cursor"])
    assert r.status_code == 400 and "since" in r.json()
    main = phone.get("/api/v1/sync/changes/?limit=1").json()["cursor"]
    r = phone.get(FEED + "?since=" + main)
    assert r.status_code == 400 and "since" in r.json()
    # the member signs the lost phone out: its token stops working on the feed
    r = phone.post(f"/api/v1/auth/devices/{pair['device']}/revoke/")
    assert r.status_code in (200, 204), r.content
    r = phone.get(FEED + "?since=" + first.json()["cursor"])
    assert r.status_code == 401


def test_a_second_change_during_a_territory_job_loses_nothing(demo, member_client):
    """A job cut short by another change purges against every territory the phone may hold
    and sends the whole territory again, so nothing of either change is lost."""
    g2 = member_client("grid2")
    start = _drain(g2)
    first, second = Building.objects.filter(grid=demo.grids[0]).order_by("-id")[:2]
    for b in (first, second):
        _records_in(b, _member("grid1"))
    Building.objects.filter(pk=first.pk).update(grid=demo.grids[1])
    page = g2.get(FEED + "?limit=1&since=" + start["cursor"]).json()
    assert page["territory_changed"] and page["has_more"]
    Building.objects.filter(pk=second.pk).update(grid=demo.grids[1])
    rest = _drain(g2, page["cursor"], limit=50)
    got = {a["id"] for a in page["applications"]} | set(rest["applications"])
    moved = set(
        Application.objects.filter(household__unit__building__in=[first, second]).values_list(
            "id", flat=True
        )
    )
    assert moved <= got
    assert got <= _held(_member("grid2"))["applications"]
    assert not rest["purge"]["applications"] and not rest["purge"]["migrants"]
    assert _drain(g2, rest["cursor"])["changed"] == [False]
