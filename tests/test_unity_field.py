"""Issue 20, the phone side of the community work: a venue visit (宗教场所共同走访) carries the
phone's GPS fix and photos as a household visit does — the fix judged by the household
visits' rule (distance to the venue, ``far_off`` beyond ``VISIT_FAR_OFF_M``: flagged, never
refused), the photos checked by content and kept once by ``sha256`` through the activity
photos' path — by its single POST and by the offline batch alike; and a batch's refusal of a
member who may not mediate carries the single POST's ``code`` (``not_mediator``)."""

from __future__ import annotations

import base64
import io
import uuid

import pytest
from PIL import Image

from gridsvc.cases.models import Case
from gridsvc.chain.models import Position
from gridsvc.community.models import Mediation, VenueVisit, VenueVisitPhoto
from gridsvc.territory.models import Place

pytestmark = pytest.mark.django_db
BASE = "/api/v1/community"


def _jpeg(color: str = "red", size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _mosque_and_visitor(demo):  # type: ignore[no-untyped-def]
    """A demo mosque in a grid and the username of that grid's member (网格员)."""
    mosque = (
        Place.objects.filter(community=demo.community, kind="mosque", grid__isnull=False)
        .order_by("pk")
        .first()
    )
    assert mosque is not None
    holder = (
        Position.objects.filter(position_type="grid_member", grid=mosque.grid_id)
        .order_by("valid_from", "id")
        .first()
    )
    return mosque, holder.member.username


def _batch(client, items):  # type: ignore[no-untyped-def]
    r = client.post(f"{BASE}/batch/", {"items": items}, format="json")
    assert r.status_code == 200, r.content[:400]
    return r.json()


def test_a_venue_visit_posted_with_a_fix_and_a_photo_is_judged_like_a_household_visit(
    demo, member_client
):
    mosque, who = _mosque_and_visitor(demo)
    gm = member_client(who)
    photo = _jpeg()
    body = {
        "place": mosque.pk,
        "date": "2026-11-28",
        "participants": 3,
        "lon": mosque.point.x + 0.0002,  # ~20 m east of the venue's point
        "lat": mosque.point.y,
        "accuracy_m": 8,
        "photos": [{"data": _b64(photo)}],
    }
    r = gm.post(f"{BASE}/venue-visits/", body, format="json")
    assert r.status_code == 201, r.content
    row = r.json()
    assert row["far_off"] is False and row["location_source"] == "gps"
    assert 10 < row["distance_m"] < 30, row
    assert row["accuracy_m"] == 8
    assert (round(row["lon"], 6), round(row["lat"], 6)) == (
        round(mosque.point.x + 0.0002, 6),
        round(mosque.point.y, 6),
    )
    assert [p["size"] for p in row["photos"]] == [len(photo)]
    stored = VenueVisit.objects.get(pk=row["id"])
    assert stored.location is not None and stored.photos.count() == 1
    # the file: to whoever reads the visit; another grid's member and neighbours get 404
    url = row["photos"][0]["url"]
    got = gm.get(url)
    assert got.status_code == 200 and b"".join(got.streaming_content or [got.content]) == photo
    other = (
        Position.objects.filter(position_type="grid_member")
        .exclude(grid=mosque.grid_id)
        .order_by("id")
        .first()
    )
    assert member_client(other.member.username).get(url).status_code == 404
    assert member_client("bh-001").get(url).status_code == 404
    # listed with its fix and photos
    listed = gm.get(f"{BASE}/venue-visits/?place={mosque.pk}&far_off=false").json()["results"]
    mine = next(v for v in listed if v["id"] == row["id"])
    assert mine["photos"][0]["sha256"] == stored.photos.get().sha256


def test_a_fix_far_from_the_venue_is_flagged_not_refused(demo, member_client, settings):
    mosque, who = _mosque_and_visitor(demo)
    threshold = settings.GRIDSVC.get("VISIT_FAR_OFF_M", 150.0)
    r = member_client(who).post(
        f"{BASE}/venue-visits/",
        {
            "place": mosque.pk,
            "date": "2026-11-28",
            "lon": mosque.point.x + 0.01,  # ~900 m away
            "lat": mosque.point.y,
            "accuracy_m": 12,
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    assert r.json()["far_off"] is True and r.json()["distance_m"] > threshold
    assert VenueVisit.objects.filter(pk=r.json()["id"], far_off=True).exists()


def test_a_half_fix_or_a_file_that_is_not_a_photo_is_refused_naming_it(demo, member_client):
    mosque, who = _mosque_and_visitor(demo)
    gm = member_client(who)
    base = {"place": mosque.pk, "date": "2026-11-28"}
    r = gm.post(f"{BASE}/venue-visits/", {**base, "lat": mosque.point.y}, format="json")
    assert r.status_code == 400 and "lon" in r.json(), r.content
    html = b"<html><script>alert(1)</script></html>"
    r = gm.post(f"{BASE}/venue-visits/", {**base, "photos": [{"data": _b64(html)}]}, format="json")
    assert r.status_code == 400 and "photos" in r.json(), r.content
    assert not VenueVisit.objects.filter(recorded_by__username=who, date="2026-11-28").exists()


def test_the_batch_carries_fix_and_photo_and_a_retry_stores_them_once(demo, member_client):
    mosque, who = _mosque_and_visitor(demo)
    gm = member_client(who)
    key = str(uuid.uuid4())
    item = {
        "kind": "venue_visit",
        "client_uuid": key,
        "data": {
            "place": mosque.pk,
            "date": "2026-11-28",
            "joint": True,
            "participants": 4,
            "lon": mosque.point.x,
            "lat": mosque.point.y + 0.01,  # ~1.1 km north
            "accuracy_m": 15,
            "photos": [{"data": _b64(_jpeg("blue"))}],
        },
    }
    body = _batch(gm, [item])
    res = body["results"][0]
    assert res["status"] == "accepted", body
    assert res["far_off"] is True and res["distance_m"] > 1000 and res["photos"] == 1
    visit = VenueVisit.objects.get(client_uuid=key)
    assert visit.far_off and visit.accuracy_m == 15 and visit.location_source == "gps"
    # the answer was lost: the phone sends the same item again
    again = _batch(gm, [item])["results"][0]
    assert again["status"] == "duplicate" and again["id"] == visit.pk and again["photos"] == 1
    assert VenueVisit.objects.filter(client_uuid=key).count() == 1
    assert VenueVisitPhoto.objects.filter(visit=visit).count() == 1
    # a broken photo rejects the item, naming it; nothing is stored
    bad = {**item, "client_uuid": str(uuid.uuid4())}
    bad["data"] = {**item["data"], "photos": [{"data": _b64(b"GIF89a....")}]}
    res = _batch(gm, [bad])["results"][0]
    assert res["status"] == "rejected" and "photos" in res["errors"], res
    assert not VenueVisit.objects.filter(client_uuid=bad["client_uuid"]).exists()


def test_a_photo_added_later_is_kept_once_by_content(demo, member_client):
    mosque, who = _mosque_and_visitor(demo)
    gm = member_client(who)
    r = gm.post(f"{BASE}/venue-visits/", {"place": mosque.pk, "date": "2026-11-28"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["lon"] is None and r.json()["far_off"] is False
    url = f"{BASE}/venue-visits/{r.json()['id']}/photos/"
    data = _jpeg("green")

    def upload(content: bytes, name: str = "p.jpg"):  # type: ignore[no-untyped-def]
        f = io.BytesIO(content)
        f.name = name
        return gm.post(url, {"photo": f}, format="multipart")

    first = upload(data)
    assert first.status_code == 201, first.content
    again = upload(data, "other-name.png")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    bad = upload(b"<html></html>", "photo.jpg")
    assert bad.status_code == 400 and "photo" in bad.json()
    assert VenueVisitPhoto.objects.filter(visit_id=r.json()["id"]).count() == 1


def test_a_non_mediator_is_refused_with_the_same_code_by_the_batch_and_the_single_post(
    demo, member_client
):
    g1 = demo.grids[0]
    dispute = Case.objects.filter(kind="dispute", grid=g1).order_by("id").first()
    assert dispute is not None
    before = Mediation.objects.count()
    data = {"case": dispute.pk, "date": "2026-11-28", "outcome": "agreed"}
    single = member_client("grid1").post(f"{BASE}/mediations/", data, format="json")
    assert single.status_code == 403, single.content
    assert single.json()["code"] == "not_mediator"
    assert "调处员" in single.json()["non_field_errors"][0]
    item = {"kind": "mediation", "client_uuid": str(uuid.uuid4()), "data": data}
    res = _batch(member_client("grid1"), [item])["results"][0]
    assert res["status"] == "rejected" and res["code"] == "not_mediator", res
    assert res["errors"] == {"non_field_errors": single.json()["non_field_errors"]}
    assert Mediation.objects.count() == before


def _probe_venue_visit_photo_file(ctx) -> None:  # type: ignore[no-untyped-def]
    """A venue visit photo's file: a role that cannot read the visit (another grid's member, a
    neighbour) gets 404 for a photo that is there (tests/test_scoping_matrix.py)."""
    import tempfile

    from django.test import override_settings
    from rest_framework.test import APIClient

    from gridsvc.accounts.models import Member
    from gridsvc.community import services
    from gridsvc.community.photos import add_venue_visit_photo

    readable = services.visible(VenueVisit, ctx.member).values("pk")
    foreign = VenueVisit.objects.exclude(pk__in=readable).order_by("id").first()
    assert foreign is not None
    street = Member.objects.get(username="street")
    with tempfile.TemporaryDirectory() as media, override_settings(MEDIA_ROOT=media):
        colour = tuple(ctx.role.encode().ljust(3, b"-")[-3:])  # a photo of its own per role
        photo, created = add_venue_visit_photo(street, foreign, _jpeg(colour))  # type: ignore[arg-type]
        assert created
        url = f"{BASE}/venue-visits/{foreign.pk}/photos/{photo.pk}/file/"
        desk = APIClient()
        desk.force_authenticate(street)
        assert desk.get(url).status_code == 200  # it is there
        r = ctx.client.get(url)
        assert r.status_code == 404, (ctx.role, r.status_code)


UNITY_FIELD_EXPLICIT = {
    f"GET {BASE}/venue-visits/<visit_id>/photos/<pk>/file/": _probe_venue_visit_photo_file,
}
