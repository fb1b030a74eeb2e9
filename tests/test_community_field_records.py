"""Issue 20, what a grid member records in the field (items 3 and 7, "offline batches where a
phone records it"): the community batch's new kinds (a campaign's return, a day's service
hours, pairing help), photos on activities (checked, deduplicated, served only in scope) and
pairing help as records (API, feed, demo)."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest

from gridsvc.accounts.models import Member
from gridsvc.community import services
from gridsvc.community.models import CampaignReturn, ServiceLog, TeamMembership

pytestmark = pytest.mark.django_db

BASE = "/api/v1/community"
REF = "2026-11-24"


def _batch(client, items, key: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"HTTP_IDEMPOTENCY_KEY": key or str(uuid.uuid4())}
    r = client.post(f"{BASE}/batch/", {"items": items}, format="json", **headers)
    assert r.status_code == 200, r.content[:400]
    return r.json()


def _campaign(demo, grid=None):  # type: ignore[no-untyped-def]
    """A running campaign over the community (or one grid): a pending return per grid."""
    campaign, _ = services.start_campaign(
        Member.objects.get(username="mediator"),
        {
            "kind": "instability",
            "name": "排查不稳定因素(冬季)",
            "start": date(2026, 11, 20),
            "end": date(2026, 12, 20),
            "community": demo.community.pk,
            "grid": grid.pk if grid else None,
        },
    )
    return campaign


def _membership(grid) -> TeamMembership:  # type: ignore[no-untyped-def]
    return TeamMembership.objects.filter(grid=grid).order_by("id").first()


# ---------------------------------------------------------------- batch kinds (item 1)
def test_a_campaign_return_and_service_hours_from_the_phone(demo, member_client):
    g1 = demo.grids[0]
    campaign = _campaign(demo)
    ms = _membership(g1)
    hours_before = ms.hours
    ret_uuid, log_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    items = [
        {"kind": "campaign_return", "client_uuid": ret_uuid,
         "data": {"campaign": campaign.pk, "grid": g1.pk, "zero_report": True}},
        {"kind": "service_log", "client_uuid": log_uuid,
         "data": {"membership": ms.pk, "date": REF, "hours": "2.5", "note": "入户宣传"}},
    ]  # fmt: skip
    phone = member_client("grid1")
    body = _batch(phone, items)
    assert body["summary"] == {"accepted": 2, "duplicate": 0, "rejected": 0}, body
    ret = CampaignReturn.objects.get(campaign=campaign, grid=g1)
    assert ret.filed_at is not None and ret.zero_report is True
    assert ret.filed_by.username == "grid1" and body["results"][0]["id"] == ret.pk
    log = ServiceLog.objects.get(client_uuid=log_uuid)
    assert (log.membership_id, log.date, log.hours) == (ms.pk, date(2026, 11, 24), Decimal("2.5"))
    ms.refresh_from_db()
    assert ms.hours == hours_before + Decimal("2.5")
    # the phone did not hear the answer and sends the same items again (another key)
    again = _batch(phone, items)
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert [r["id"] for r in again["results"]] == [ret.pk, log.pk]
    ms.refresh_from_db()
    assert ms.hours == hours_before + Decimal("2.5")  # the hours are counted once
    assert ServiceLog.objects.filter(membership=ms, date=date(2026, 11, 24)).count() == 1
    # a later filing of the same grid's return replaces it, as campaign-returns/{id}/file/ does
    later = [
        {"kind": "campaign_return", "client_uuid": str(uuid.uuid4()),
         "data": {"campaign": campaign.pk, "zero_report": False,
                  "findings": "两户邻里因漏水起纠纷", "findings_count": 1}},
    ]  # fmt: skip
    assert [r["status"] for r in _batch(phone, later)["results"]] == ["accepted"]
    ret.refresh_from_db()
    assert (ret.zero_report, ret.findings_count) == (False, 1)
    assert CampaignReturn.objects.filter(campaign=campaign, grid=g1).count() == 1
    # the REST endpoint reads the same return
    r = phone.get(f"{BASE}/campaign-returns/{ret.pk}/")
    assert r.status_code == 200 and r.json()["findings"] == "两户邻里因漏水起纠纷"


def test_batch_ids_outside_the_work_scope_are_rejected_and_not_stored(demo, member_client):
    g1, g5 = demo.grids[0], demo.grids[4]
    campaign = _campaign(demo)
    only_g5 = _campaign(demo, grid=g5)
    foreign_ms = _membership(g5)
    hours_before = foreign_ms.hours
    items = [
        {"kind": "campaign_return", "client_uuid": str(uuid.uuid4()),
         "data": {"campaign": campaign.pk, "grid": g5.pk}},
        {"kind": "campaign_return", "client_uuid": str(uuid.uuid4()),
         "data": {"campaign": only_g5.pk}},
        {"kind": "service_log", "client_uuid": str(uuid.uuid4()),
         "data": {"membership": foreign_ms.pk, "hours": "3"}},
        {"kind": "service_log", "client_uuid": str(uuid.uuid4()),
         "data": {"membership": _membership(g1).pk, "hours": "30"}},
    ]  # fmt: skip
    body = _batch(member_client("grid1"), items)
    assert body["summary"] == {"accepted": 0, "duplicate": 0, "rejected": 4}
    errors = [r["errors"] for r in body["results"]]
    assert errors[0] == {"grid": ["not found"]}
    assert errors[1] == {"campaign": ["not found"]}
    assert errors[2] == {"membership": ["not found"]}
    assert "hours" in errors[3]  # more than a day: the single POST's rule
    assert not CampaignReturn.objects.filter(
        filed_at__isnull=False, campaign__in=[campaign, only_g5]
    )
    foreign_ms.refresh_from_db()
    assert foreign_ms.hours == hours_before
    # the grid of that campaign files it
    ok = [{"kind": "campaign_return", "client_uuid": str(uuid.uuid4()),
           "data": {"campaign": only_g5.pk}}]  # fmt: skip
    assert _batch(member_client("grid5"), ok)["summary"]["accepted"] == 1
    # neighbours record nothing
    r = member_client("bh-001").post(f"{BASE}/batch/", {"items": ok}, format="json")
    assert r.status_code == 403


# ---------------------------------------------------------------- photos on activities (item 3)
def _jpeg_with_gps(lon: float = 103.77, lat: float = 36.05, colour=(120, 160, 200)) -> bytes:  # type: ignore[no-untyped-def]
    import io

    from PIL import Image

    img = Image.new("RGB", (32, 24), colour)
    exif = Image.Exif()

    def dms(v: float):  # type: ignore[no-untyped-def]
        d = int(v)
        m = int((v - d) * 60)
        return (float(d), float(m), round(((v - d) * 60 - m) * 60, 4))

    exif.get_ifd(0x8825).update({1: "N", 2: dms(lat), 3: "E", 4: dms(lon)})
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def _upload(client, activity_id: int, data: bytes, name: str = "p.jpg"):  # type: ignore[no-untyped-def]
    from django.core.files.uploadedfile import SimpleUploadedFile

    f = SimpleUploadedFile(name, data, content_type="image/jpeg")
    return client.post(f"{BASE}/activities/{activity_id}/photos/", {"photo": f}, format="multipart")


def _activity(client, grid) -> int:  # type: ignore[no-untyped-def]
    body = {"grid": grid.pk, "kind": "welfare_day", "title": "民族团结公益日", "date": REF,
            "participants": 40}  # fmt: skip
    r = client.post(f"{BASE}/activities/", body, format="json")
    assert r.status_code == 201, r.content
    return r.json()["id"]


def test_a_photo_is_checked_kept_once_and_listed_on_the_activity(
    demo, member_client, settings, tmp_path
):
    from gridsvc.community.models import ActivityPhoto

    settings.MEDIA_ROOT = tmp_path
    phone = member_client("grid1")
    pk = _activity(phone, demo.grids[0])
    jpeg = _jpeg_with_gps()
    r = _upload(phone, pk, jpeg)
    assert r.status_code == 201, r.content
    photo = r.json()
    assert photo["content_type"] == "image/jpeg" and photo["size"] == len(jpeg)
    assert photo["url"].endswith(f"/api/v1/community/activities/{pk}/photos/{photo['id']}/file/")
    stored = ActivityPhoto.objects.get(pk=photo["id"])
    assert stored.exif_point is not None  # EXIF GPS read, as for visit photos
    assert round(stored.exif_point.x, 2) == 103.77 and round(stored.exif_point.y, 2) == 36.05
    # the phone retries after a lost answer: the same photo, not a second one
    again = _upload(phone, pk, jpeg, name="retry.jpg")
    assert again.status_code == 200 and again.json()["id"] == photo["id"]
    assert ActivityPhoto.objects.filter(activity_id=pk).count() == 1
    # another photo is a second one
    assert _upload(phone, pk, _jpeg_with_gps(colour=(10, 20, 30))).status_code == 201
    # listed on the activity (and in its list)
    detail = phone.get(f"{BASE}/activities/{pk}/").json()
    assert [p["id"] for p in detail["photos"]][0] == photo["id"] and len(detail["photos"]) == 2
    listed = phone.get(f"{BASE}/activities/?date={REF}").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert len(next(a for a in rows if a["id"] == pk)["photos"]) == 2
    # refused by content: an HTML page named .jpg, an empty file, no file
    html = b"<html><script>alert(1)</script></html>"
    r = _upload(phone, pk, html, name="photo.jpg")
    assert r.status_code == 400 and "photo" in r.json()
    assert phone.post(f"{BASE}/activities/{pk}/photos/", {}, format="multipart").status_code == 400
    assert ActivityPhoto.objects.filter(activity_id=pk).count() == 2
    # the file is the bytes sent, served as an image
    f = phone.get(photo["url"])
    assert f.status_code == 200 and f["Content-Type"] == "image/jpeg"
    assert f["X-Content-Type-Options"] == "nosniff"
    assert b"".join(f.streaming_content) == jpeg


def test_activity_photos_are_served_only_to_those_who_read_the_activity(
    demo, member_client, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    pk = _activity(member_client("grid1"), demo.grids[0])
    photo = _upload(member_client("grid1"), pk, _jpeg_with_gps()).json()
    url = f"{BASE}/activities/{pk}/photos/{photo['id']}/file/"
    assert member_client("cadre1").get(url).status_code == 200  # the grid's cadre
    assert member_client("street").get(url).status_code == 200  # the street
    for role in ("grid5", "bh-001", "uh-001-1", "pm-C01"):  # another grid; neighbours
        assert member_client(role).get(url).status_code == 404, role
        assert _upload(member_client(role), pk, _jpeg_with_gps(colour=(1, 2, 3))).status_code == 404
    # the photo under another activity's id is not found either
    other = _activity(member_client("grid5"), demo.grids[4])
    assert (
        member_client("street")
        .get(f"{BASE}/activities/{other}/photos/{photo['id']}/file/")
        .status_code
        == 404
    )


def test_offline_activity_then_its_photo_and_the_feed_carries_it(
    demo, member_client, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    phone = member_client("grid1")
    cursor = phone.get(f"{BASE}/changes/").json()["cursor"]
    key = str(uuid.uuid4())
    item = {"kind": "activity", "client_uuid": key,
            "data": {"kind": "forum", "title": "楼院座谈会", "date": REF, "grid": demo.grids[0].pk}}  # fmt: skip
    res = _batch(phone, [item])["results"][0]
    assert res["status"] == "accepted"
    assert _upload(phone, res["id"], _jpeg_with_gps()).status_code == 201
    feed = phone.get(f"{BASE}/changes/?since={cursor}").json()
    [row] = [a for a in feed["activities"] if a["client_uuid"] == key]
    assert len(row["photos"]) == 1 and row["photos"][0]["url"].endswith("/file/")


# ---------------------------------------------------------------- pairing help (item 7)
def _pairing(demo):  # type: ignore[no-untyped-def]
    from gridsvc.community.models import Pairing

    return (
        Pairing.objects.filter(grid=demo.grids[0], household__isnull=False, ended__isnull=True)
        .filter(household__visits__isnull=False)
        .order_by("id")
        .first()
    )


def test_pairing_help_is_a_record_with_its_visit(demo, member_client):
    from gridsvc.community.models import PairingHelp
    from gridsvc.visits.models import Visit

    pairing = _pairing(demo)
    assert pairing is not None
    visit = Visit.objects.filter(household=pairing.household).order_by("-id").first()
    phone = member_client("grid1")
    url = f"{BASE}/pairings/{pairing.pk}/help/"
    before = len(phone.get(url).json())
    key = str(uuid.uuid4())
    body = {"date": REF, "what": "送米面油, 代办低保复核", "visit": visit.pk, "hours": "1.5",
            "amount": "200.00", "client_uuid": key}  # fmt: skip
    r = phone.post(url, body, format="json")
    assert r.status_code == 201, r.content
    row = r.json()
    assert (row["pairing"], row["visit"], row["hours"], row["amount"]) == (
        pairing.pk,
        visit.pk,
        "1.5",
        "**",  # an amount of assistance: masked (tests/test_pairing_help_amount.py)
    )
    assert (
        row["grid"] == demo.grids[0].pk
        and row["recorded_by"] == Member.objects.get(username="grid1").pk
    )
    assert phone.post(url, body, format="json").status_code == 200  # retried: stored once
    listed = phone.get(url).json()
    assert len(listed) == before + 1 and listed[0]["id"] == row["id"]
    # the pairing's text summary is untouched; the list is the record
    pairing.refresh_from_db()
    assert pairing.help_given == "节日慰问、代办低保复核"
    # refused: nothing done, a future day, a visit to another household, a foreign visit
    foreign_visit = Visit.objects.filter(household__unit__building__grid=demo.grids[4]).first()
    other_hh = (
        Visit.objects.filter(household__unit__building__grid=demo.grids[0])
        .exclude(household=pairing.household)
        .first()
    )
    for extra, field in (
        ({"what": ""}, "what"),
        ({"date": "2099-01-01"}, "date"),
        ({"visit": other_hh.pk}, "visit"),
        ({"visit": foreign_visit.pk}, "visit"),
        ({"hours": "30"}, "hours"),
    ):
        r = phone.post(url, {"what": "慰问", **extra}, format="json")
        assert r.status_code == 400 and field in r.json(), (extra, r.content)
    r = phone.post(url, {"what": "慰问", "visit": foreign_visit.pk}, format="json")
    assert r.json()["visit"] == ["not found"]
    assert PairingHelp.objects.filter(pairing=pairing).count() == before + 1
    # another grid's member and neighbours reach neither the list nor the POST
    for role in ("grid5", "bh-001"):
        assert member_client(role).get(url).status_code == 404, role
        assert member_client(role).post(url, {"what": "x"}, format="json").status_code == 404


def test_pairing_help_from_the_batch_and_in_the_feed(demo, member_client):
    from gridsvc.community.models import Pairing, PairingHelp

    pairing = _pairing(demo)
    foreign = Pairing.objects.filter(grid=demo.grids[4]).order_by("id").first()
    phone = member_client("grid1")
    cursor = phone.get(f"{BASE}/changes/").json()["cursor"]
    key = str(uuid.uuid4())
    items = [
        {"kind": "pairing_help", "client_uuid": key,
         "data": {"pairing": pairing.pk, "date": REF, "what": "节日慰问"}},
        {"kind": "pairing_help", "client_uuid": str(uuid.uuid4()),
         "data": {"pairing": foreign.pk, "date": REF, "what": "节日慰问"}},
    ]  # fmt: skip
    count = PairingHelp.objects.count()
    body = _batch(phone, items)
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected"]
    assert body["results"][1]["errors"] == {"pairing": ["not found"]}
    assert PairingHelp.objects.count() == count + 1
    assert [r["status"] for r in _batch(phone, items[:1])["results"]] == ["duplicate"]
    feed = phone.get(f"{BASE}/changes/?since={cursor}").json()
    assert [h["client_uuid"] for h in feed["pairing_help"]] == [key]
    # the feed's pairing help is the caller's territory's only
    full = phone.get(f"{BASE}/changes/").json()["pairing_help"]
    assert full and {h["grid"] for h in full} <= {demo.grids[0].pk, None}
    street = member_client("street").get(f"{BASE}/changes/").json()["pairing_help"]
    assert len(street) > len(full)
    assert member_client("bh-001").get(f"{BASE}/changes/").status_code == 403


# ---------------------------------------------------------------- scoping-matrix entries
def _probe_activity_photo_file(ctx) -> None:  # type: ignore[no-untyped-def]
    """An activity photo's file: a role that cannot read the activity (another grid's, a
    neighbour) gets 404 for a photo that is there."""
    import tempfile

    from django.test import override_settings

    from gridsvc.community.models import Activity
    from gridsvc.community.photos import add_activity_photo

    readable = services.visible(Activity, ctx.member).values("pk")
    foreign = Activity.objects.exclude(pk__in=readable).order_by("id").first()
    assert foreign is not None
    with tempfile.TemporaryDirectory() as media, override_settings(MEDIA_ROOT=media):
        colour = tuple(ctx.role.encode().ljust(3, b"-")[-3:])  # a photo of its own per role
        photo, created = add_activity_photo(
            Member.objects.get(username="street"), foreign, _jpeg_with_gps(colour=colour)
        )
        assert created
        url = f"{BASE}/activities/{foreign.pk}/photos/{photo.pk}/file/"
        assert _client_for("street").get(url).status_code == 200  # it is there
        r = ctx.client.get(url)
        assert r.status_code == 404, (ctx.role, r.status_code)


def _client_for(username: str):  # type: ignore[no-untyped-def]
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(Member.objects.get(username=username))
    return client


def _probe_help_with_foreign_visit(demo, member_client) -> None:  # type: ignore[no-untyped-def]
    from gridsvc.community.models import PairingHelp
    from gridsvc.visits.models import Visit

    pairing = _pairing(demo)
    foreign = Visit.objects.filter(household__unit__building__grid=demo.grids[4]).first()
    before = PairingHelp.objects.count()
    r = member_client("grid1").post(
        f"{BASE}/pairings/{pairing.pk}/help/", {"what": "慰问", "visit": foreign.pk}, format="json"
    )
    assert r.status_code == 400 and r.json()["visit"] == ["not found"], r.content
    assert PairingHelp.objects.count() == before


FIELD_RECORDS_EXPLICIT = {
    f"GET {BASE}/activities/<activity_id>/photos/<pk>/file/": _probe_activity_photo_file,
}
FIELD_RECORDS_BODY_ID_PROBES = {
    ("POST", f"{BASE}/pairings/{{id}}/help/", "visit"): _probe_help_with_foreign_visit,
}
