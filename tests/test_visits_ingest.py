"""Visit logs from the phone: closing tasks, GPS checks, CRS conversion, photos, batches,
scoping and masking of location tracks."""

from __future__ import annotations

import base64
import io
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pyproj import Geod

from geo.crs import from_wgs84
from gridsvc.territory.models import Household
from gridsvc.visits.models import Visit, VisitTask

pytestmark = pytest.mark.django_db
TZ = ZoneInfo("Asia/Shanghai")
GEOD = Geod(ellps="WGS84")
WHEN = datetime(2026, 11, 20, 10, 30, tzinfo=TZ).isoformat()


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _open_task(username: str, rule: str = "all-households-yearly") -> VisitTask:
    return (
        VisitTask.objects.filter(
            assigned_member__username=username, status="open", rule__code=rule, period="2026"
        )
        .select_related("household__unit__building")
        .order_by("id")
        .first()
    )


def _near(household: Household, metres: float, azimuth: float = 45.0) -> tuple[float, float]:
    p = household.unit.building.point
    lon, lat, _ = GEOD.fwd(p.x, p.y, azimuth, metres)
    return lon, lat


def _visit(household: Household, **extra) -> dict:
    lon, lat = _near(household, 0)
    body = {
        "client_uuid": str(uuid.uuid4()),
        "household": household.id,
        "client_time": WHEN,
        "lon": lon,
        "lat": lat,
        "accuracy_m": 8,
        "purpose": "年度入户走访",
        "notes": "家中一切正常",
    }
    body.update(extra)
    return body


def test_a_visit_closes_the_matching_open_task(demo, member_client):
    task = _open_task("grid1")
    client = member_client("grid1")
    r = client.post("/api/v1/visits/", _visit(task.household), format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["result"]["closed_tasks"] == [task.id]
    assert body["far_off"] is False and body["distance_m"] == 0
    if _has("geo.accuracy"):
        assert body["accuracy_grade"]
    task.refresh_from_db()
    assert task.status == "done" and task.done_by_id == body["id"]
    visit = Visit.objects.get(pk=body["id"])
    assert visit.server_time > visit.client_time


def test_a_far_off_visit_is_flagged_not_rejected(demo, member_client):
    task = _open_task("grid1")
    lon, lat = _near(task.household, 600)
    r = member_client("grid1").post(
        "/api/v1/visits/", _visit(task.household, lon=lon, lat=lat), format="json"
    )
    assert r.status_code == 201, r.content
    assert r.json()["far_off"] is True
    assert r.json()["distance_m"] > 400  # 600 m from the building's point, less its footprint
    task.refresh_from_db()
    assert task.status == "done"


def test_gcj02_input_is_converted_to_wgs84(demo, member_client):
    task = _open_task("grid1")
    lon, lat = _near(task.household, 20)
    g_lon, g_lat = from_wgs84(lon, lat, "gcj02")
    assert GEOD.inv(lon, lat, g_lon, g_lat)[2] > 100, "GCJ-02 is offset by hundreds of metres"
    r = member_client("grid1").post(
        "/api/v1/visits/",
        _visit(task.household, lon=g_lon, lat=g_lat, crs="gcj02"),
        format="json",
    )
    assert r.status_code == 201, r.content
    visit = Visit.objects.get(pk=r.json()["id"])
    assert visit.input_crs == "gcj02"
    assert GEOD.inv(lon, lat, visit.location.x, visit.location.y)[2] < 1.0
    assert visit.far_off is False


def test_bad_input_names_the_field(demo, member_client):
    task = _open_task("grid1")
    client = member_client("grid1")
    cases = [
        ({"client_uuid": "nope"}, "client_uuid"),
        ({"lat": 95}, "lat"),
        ({"crs": "mars"}, "crs"),
        ({"client_time": "yesterday"}, "client_time"),
        # before any phone's epoch (schemathesis: echoed back with an offset in seconds,
        # +08:05:43, which no ISO 8601 date-time can carry)
        ({"client_time": "0706-01-29T10:18:58"}, "client_time"),
        ({"client_time": "1969-12-31T23:59:59+08:00"}, "client_time"),
        ({"household": 99_999_999}, "household"),
        ({"findings": [{"description": "no category"}]}, "findings"),
        ({"photos": [{"data": base64.b64encode(b"GIF89a....").decode()}]}, "photos"),
        ({"task": 99_999_999}, "task"),
    ]
    before = Visit.objects.count()
    for extra, field in cases:
        body = _visit(task.household)
        body.update(extra)
        r = client.post("/api/v1/visits/", body, format="json")
        assert r.status_code == 400, (extra, r.content)
        assert field in r.json(), (extra, r.json())
    assert Visit.objects.count() == before


def _jpeg_with_gps(lon: float, lat: float) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (32, 24), (120, 160, 200))
    exif = Image.Exif()

    def dms(v: float):
        d = int(v)
        m = int((v - d) * 60)
        s = round(((v - d) * 60 - m) * 60, 4)
        return (float(d), float(m), float(s))

    exif.get_ifd(0x8825).update({1: "N", 2: dms(lat), 3: "E", 4: dms(lon)})
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def test_photo_checked_and_exif_gps_read(demo, member_client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    task = _open_task("grid1")
    lon, lat = _near(task.household, 10)
    photo = base64.b64encode(_jpeg_with_gps(lon, lat)).decode()
    body = _visit(task.household, photos=[{"data": photo}])
    del body["lon"], body["lat"], body["accuracy_m"]  # no GPS fix: the photo's EXIF is used
    r = member_client("grid1").post("/api/v1/visits/", body, format="json")
    assert r.status_code == 201, r.content
    visit = Visit.objects.get(pk=r.json()["id"])
    assert visit.location_source == "photo_exif"
    photo_row = visit.photos.get()
    assert photo_row.content_type == "image/jpeg"
    assert GEOD.inv(lon, lat, photo_row.exif_point.x, photo_row.exif_point.y)[2] < 1.0
    # too big
    big = base64.b64encode(b"\xff\xd8\xff" + b"0" * (5 * 1024 * 1024)).decode()
    r = member_client("grid1").post(
        "/api/v1/visits/", _visit(task.household, photos=[{"data": big}]), format="json"
    )
    assert r.status_code == 400 and "photos" in r.json()


def test_multipart_upload_with_photo(demo, member_client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    from django.core.files.uploadedfile import SimpleUploadedFile

    task = _open_task("grid1")
    body = _visit(task.household)
    body["photos"] = SimpleUploadedFile("a.jpg", _jpeg_with_gps(103.77, 36.06), "image/jpeg")
    r = member_client("grid1").post("/api/v1/visits/", body, format="multipart")
    assert r.status_code == 201, r.content
    assert len(r.json()["photos"]) == 1


def test_batch_with_duplicate_conflict_and_bad_item(demo, member_client):
    client = member_client("grid1")
    t1 = _open_task("grid1")
    first = _visit(t1.household)
    r = client.post("/api/v1/visits/batch/", {"visits": [first]}, format="json")
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "accepted"
    stored = Visit.objects.count()

    other = (
        VisitTask.objects.filter(assigned_member__username="grid1", status="open", period="2026")
        .exclude(household=t1.household)
        .order_by("-id")
        .first()
    )
    fresh = _visit(other.household)
    conflicting = dict(first, notes="另一条记录,同一UUID")
    bad = dict(_visit(other.household), household="abc")
    r = client.post(
        "/api/v1/visits/batch/", {"visits": [first, conflicting, bad, fresh]}, format="json"
    )
    assert r.status_code == 200, r.content
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["duplicate", "conflict", "rejected", "accepted"]
    assert "client_uuid" in results[1]["errors"]
    assert "household" in results[2]["errors"]
    assert r.json()["summary"] == {"accepted": 1, "duplicate": 1, "conflict": 1, "rejected": 1}
    assert Visit.objects.count() == stored + 1
    assert Visit.objects.get(client_uuid=first["client_uuid"]).notes == first["notes"]


def test_batch_over_500_is_refused(demo, member_client):
    household = Household.objects.first()
    items = [_visit(household) for _ in range(501)]
    r = member_client("grid1").post("/api/v1/visits/batch/", {"visits": items}, format="json")
    assert r.status_code == 400 and "visits" in r.json()


def test_grid1_cannot_log_or_see_grid2_visits(demo, member_client):
    task2 = _open_task("grid2")
    r = member_client("grid1").post("/api/v1/visits/", _visit(task2.household), format="json")
    assert r.status_code == 400 and "household" in r.json()

    theirs = Visit.objects.filter(member__username="grid2").first()
    grid1 = member_client("grid1")
    assert grid1.get(f"/api/v1/visits/{theirs.id}/").status_code == 404
    listed = grid1.get(f"/api/v1/visits/?household={theirs.household_id}").json()
    assert listed["count"] == 0
    mine = grid1.get("/api/v1/visits/?page_size=5").json()["results"]
    assert mine and all(v["member"] != theirs.member_id for v in mine)


def test_gps_points_are_masked_except_for_the_visitor_and_the_street(demo, member_client):
    visit = Visit.objects.filter(member__username="grid1", location__isnull=False).first()
    url = f"/api/v1/visits/{visit.id}/"
    own = member_client("grid1").get(url).json()
    assert own["lon"] is not None and own["location_masked"] is False
    street = member_client("street").get(url).json()
    assert street["lon"] is not None
    cadre = member_client("cadre1").get(url).json()
    assert cadre["lon"] is None and cadre["lat"] is None and cadre["location_masked"] is True
    assert cadre["distance_m"] is not None  # the check result stays visible


def test_a_finding_opens_a_routed_case_in_the_same_request(demo, member_client):
    from gridsvc.cases.models import Case

    task = _open_task("grid1")
    finding = {"category": "hazard.fire", "description": "楼道堆物,堵塞消防通道", "open_case": True}
    note = {"category": "tidy", "description": "门口整洁", "open_case": False}
    r = member_client("grid1").post(
        "/api/v1/visits/", _visit(task.household, findings=[finding, note]), format="json"
    )
    assert r.status_code == 201, r.content
    visit = Visit.objects.get(pk=r.json()["id"])
    assert len(visit.case_ids) == 1
    case = Case.objects.get(pk=visit.case_ids[0])
    assert case.source == "visit" and case.household_id == task.household_id
    assert case.category.code == "hazard.fire" and case.handler_id is not None
    assert visit.findings[0]["case_number"] == case.number and "case_id" not in visit.findings[1]


def test_a_finding_with_no_case_category_rejects_only_its_visit(demo, member_client):
    from gridsvc.cases.models import Case

    t1 = _open_task("grid1")
    t2 = (
        VisitTask.objects.filter(assigned_member__username="grid1", status="open", period="2026")
        .exclude(household=t1.household)
        .order_by("-id")
        .first()
    )
    bad = {"category": "something_else", "description": "?", "open_case": True}
    before = Case.objects.count()
    r = member_client("grid1").post(
        "/api/v1/visits/batch/",
        {"visits": [_visit(t1.household, findings=[bad]), _visit(t2.household)]},
        format="json",
    )
    assert r.status_code == 200, r.content
    items = r.json()["results"]
    assert items[0]["status"] == "rejected" and "findings" in items[0]["errors"]
    assert items[1]["status"] == "accepted"
    assert Case.objects.count() == before
    assert not Visit.objects.filter(client_uuid=items[0]["client_uuid"]).exists()
