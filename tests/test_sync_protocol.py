"""The phone sync protocol (docs/sync.md): safe retries with Idempotency-Key, the phone's
clock corrected and flagged (never trusted), gzip request bodies, app versions."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from gridsvc.cases.models import Case
from gridsvc.sync import idempotency
from gridsvc.sync.clock import format_server_time
from gridsvc.sync.models import IdempotencyRecord, VisitClock
from gridsvc.territory.models import Household
from gridsvc.visits.models import Visit, VisitTask

pytestmark = pytest.mark.django_db


def _household(username: str) -> Household:
    task = VisitTask.objects.filter(assigned_member__username=username).order_by("id").first()
    return task.household


def _report(household: Household, title: str) -> dict:
    return {"category": "hazard.fire", "title": title, "household": household.pk}


def _post(client: APIClient, url: str, body: dict, key: str | None = None, **headers):  # type: ignore[no-untyped-def]
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(url, json.dumps(body), content_type="application/json", headers=headers)


# ---------------------------------------------------------------- idempotency
def test_a_retried_case_report_creates_one_case_and_gets_the_first_answer(demo, token_client):
    client = token_client("grid1")
    body = _report(_household("grid1"), "楼道堆物-重试")
    key = str(uuid.uuid4())
    first = _post(client, "/api/v1/cases/", body, key)
    assert first.status_code == 201, first.content
    again = _post(client, "/api/v1/cases/", body, key)
    assert again.status_code == 201
    assert again.content == first.content
    assert again["Content-Type"] == first["Content-Type"]
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Case.objects.filter(title="楼道堆物-重试").count() == 1


def test_the_same_key_with_another_body_is_refused(demo, token_client):
    client = token_client("grid1")
    hh = _household("grid1")
    key = str(uuid.uuid4())
    assert _post(client, "/api/v1/cases/", _report(hh, "第一次"), key).status_code == 201
    r = _post(client, "/api/v1/cases/", _report(hh, "另一件事"), key)
    assert r.status_code == 422
    assert r.json()["code"] == "idempotency_key_reused"
    assert not Case.objects.filter(title="另一件事").exists()
    # ... and on another path
    r = _post(client, "/api/v1/daily-reports/", {"nothing_abnormal": True}, key)
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"


def test_two_members_with_the_same_key_each_get_their_own_answer(demo, token_client):
    key = "same-key-on-two-phones"
    one, two = token_client("grid1"), token_client("grid2")
    a = _post(one, "/api/v1/cases/", _report(_household("grid1"), "一号的事"), key)
    b = _post(two, "/api/v1/cases/", _report(_household("grid2"), "二号的事"), key)
    assert a.status_code == b.status_code == 201, b.content
    assert "Idempotent-Replayed" not in b
    assert a.json()["case"]["id"] != b.json()["case"]["id"]
    assert Case.objects.get(title="二号的事").reported_by.username == "grid2"
    # grid2's retry replays grid2's answer, not grid1's
    again = _post(two, "/api/v1/cases/", _report(_household("grid2"), "二号的事"), key)
    assert again.json() == b.json() and again["Idempotent-Replayed"] == "true"


def test_a_duplicate_while_the_first_is_still_running_gets_409_in_progress(demo, member_client):
    from gridsvc.accounts.models import Member

    member = Member.objects.get(username="grid1")
    body = _report(_household("grid1"), "并发重复")
    raw = json.dumps(body).encode()
    # the first request has claimed the key and is still running
    idempotency.claim(
        member.pk,
        "k-running",
        "POST",
        "/api/v1/cases/",
        idempotency.body_hash("application/json", raw),
    )
    r = member_client("grid1").post(
        "/api/v1/cases/",
        raw,
        content_type="application/json",
        headers={"Idempotency-Key": "k-running"},
    )
    assert r.status_code == 409
    assert r.json()["code"] == "idempotency_in_progress" and r["Retry-After"]
    assert not Case.objects.filter(title="并发重复").exists()


def test_a_first_request_killed_mid_way_leaves_no_key_stuck_and_no_second_case(demo, member_client):
    """A worker or PgBouncer killed mid-request (issue 23's fault script): the key's record is
    written in the request's own transaction, so it dies with it; a retry is not held at 409
    for ten minutes and cannot store the case a second time."""
    import psycopg
    from django.db import connection

    from gridsvc.accounts.models import Member

    member = Member.objects.get(username="grid1")
    raw = json.dumps(_report(_household("grid1"), "进程中断")).encode()
    digest = idempotency.body_hash("application/json", raw)
    client = member_client("grid1")

    def post():  # type: ignore[no-untyped-def]
        return client.post(
            "/api/v1/cases/", raw, content_type="application/json",
            headers={"Idempotency-Key": "k-killed"},
        )  # fmt: skip

    db = connection.settings_dict
    first = psycopg.connect(
        dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"], host=db["HOST"],
        port=db["PORT"],
    )  # fmt: skip
    try:  # the first request: key claimed, its work under way in its open transaction
        first.execute(
            "INSERT INTO sync_idempotencyrecord (member_id, key, method, path, body_hash,"
            " response_headers, created_at) VALUES (%s, 'k-killed', 'POST', '/api/v1/cases/',"
            " %s, '{}', now())",
            [member.pk, digest],
        )
        r = post()  # waits a bounded time, then says the first is still running
        assert r.status_code == 409 and r.json()["code"] == "idempotency_in_progress"
    finally:
        first.close()  # the process dies: PostgreSQL rolls its transaction back
    r = post()  # the retry runs at once
    assert r.status_code == 201, r.content
    again = post()
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.content == r.content
    assert Case.objects.filter(title="进程中断").count() == 1


def test_a_retried_daily_report_replays_and_4xx_answers_are_kept_too(demo, member_client):
    client = member_client("grid3")
    key = str(uuid.uuid4())
    first = _post(client, "/api/v1/daily-reports/", {"nothing_abnormal": True}, key)
    assert first.status_code == 201
    again = _post(client, "/api/v1/daily-reports/", {"nothing_abnormal": True}, key)
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    bad_key = str(uuid.uuid4())
    bad = _post(client, "/api/v1/cases/", {"title": "没有类别"}, bad_key)
    assert bad.status_code == 400
    assert _post(client, "/api/v1/cases/", {"title": "没有类别"}, bad_key).content == bad.content
    assert IdempotencyRecord.objects.filter(key=bad_key, status=400).exists()


def test_requests_without_a_key_or_not_signed_in_are_untouched(demo, member_client):
    r = APIClient().post(
        "/api/v1/cases/", {"title": "x"}, format="json", headers={"Idempotency-Key": "anon"}
    )
    assert r.status_code == 401
    assert not IdempotencyRecord.objects.filter(key="anon").exists()
    client = member_client("grid1")
    hh = _household("grid1")
    assert _post(client, "/api/v1/cases/", _report(hh, "无键")).status_code == 201
    assert _post(client, "/api/v1/cases/", _report(hh, "无键")).status_code == 201
    assert Case.objects.filter(title="无键").count() == 2
    bad = _post(client, "/api/v1/cases/", _report(hh, "坏键"), key="bad key with spaces")
    assert bad.status_code == 400 and bad.json()["code"] == "idempotency_key_invalid"


def _jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("memory_limit", [16 * 1024 * 1024, 600])  # 600: spooled to a file
def test_a_retried_upload_with_another_multipart_boundary_is_a_replay(
    demo, member_client, memory_limit
):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test.client import encode_multipart

    client = member_client("grid1")
    case_id = _post(client, "/api/v1/cases/", _report(_household("grid1"), "附件重试")).json()[
        "case"
    ]["id"]
    url = f"/api/v1/cases/{case_id}/attachments/"
    key = str(uuid.uuid4())
    answers = []
    for boundary in ("first-try-7d9a", "retry-after-timeout-01b3"):
        photo = SimpleUploadedFile("p.jpg", _jpeg(), "image/jpeg")
        body = encode_multipart(boundary, {"file": photo, "role": "photo"})
        assert len(body) > memory_limit or memory_limit > 1000
        with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=memory_limit):
            answers.append(
                client.post(
                    url,
                    body,
                    content_type=f"multipart/form-data; boundary={boundary}",
                    headers={"Idempotency-Key": key},
                )
            )
    assert answers[0].status_code == 201, answers[0].content
    assert answers[1].status_code == 201 and answers[1]["Idempotent-Replayed"] == "true"
    assert Case.objects.get(pk=case_id).attachments.count() == 1


def test_json_key_order_does_not_make_a_retry_another_request(demo, member_client):
    client = member_client("grid1")
    hh = _household("grid1")
    key = str(uuid.uuid4())
    first = f'{{"category": "hazard.fire", "title": "键序", "household": {hh.pk}}}'
    retry = f'{{"household":{hh.pk},"title":"键序","category":"hazard.fire"}}'
    for body in (first, retry):
        r = client.post(
            "/api/v1/cases/",
            body,
            content_type="application/json",
            headers={"Idempotency-Key": key},
        )
        assert r.status_code == 201
    assert r["Idempotent-Replayed"] == "true"
    assert Case.objects.filter(title="键序").count() == 1


def test_token_answers_are_never_stored(demo):
    r = APIClient().post(
        "/api/v1/auth/token/",
        {"username": "grid1", "password": "gridsvc-demo"},
        format="json",
        headers={"Idempotency-Key": "login-key"},
    )
    assert r.status_code == 200
    assert not IdempotencyRecord.objects.filter(key="login-key").exists()


# ---------------------------------------------------------------- clocks
def _visit(household: Household, when: datetime, **extra) -> dict:
    return {
        "client_uuid": str(uuid.uuid4()),
        "household": household.id,
        "client_time": when.isoformat(),
        "purpose": "走访",
        **extra,
    }


def _batch(client, visits: list[dict], device_now: datetime | None = None):  # type: ignore[no-untyped-def]
    headers = {}
    if device_now is not None:
        headers["X-Device-Time"] = device_now.isoformat()
    return _post(client, "/api/v1/visits/batch/", {"visits": visits}, **headers)


@pytest.mark.parametrize("skew", [timedelta(hours=2), timedelta(hours=-2)])
def test_a_skewed_phone_clock_is_corrected_by_its_offset(demo, member_client, skew):
    client = member_client("grid1")
    now = timezone.now()
    made = now - timedelta(minutes=30)  # the visit was made half an hour ago (server clock)
    item = _visit(_household("grid1"), made + skew)
    r = _batch(client, [item], device_now=now + skew)
    assert r.status_code == 200
    (result,) = r.json()["results"]
    assert result["status"] == "accepted", result
    assert result["time_corrected"] is True and result["time_flag"] is None
    visit = Visit.objects.get(client_uuid=item["client_uuid"])
    assert abs(visit.client_time - made) < timedelta(minutes=1)
    clock = VisitClock.objects.get(visit=visit)
    assert clock.sent_time == datetime.fromisoformat(item["client_time"])
    assert abs(clock.offset_ms - skew.total_seconds() * 1000) < 60_000
    assert clock.corrected and clock.flag == ""
    assert abs(int(r["X-Clock-Offset-Ms"]) - skew.total_seconds() * 1000) < 60_000
    # the retry (another offset estimate a moment later) is still a duplicate
    again = _batch(client, [item], device_now=timezone.now() + skew)
    assert again.json()["results"][0]["status"] == "duplicate"


def test_a_time_in_the_future_is_flagged_and_stored_not_refused(demo, member_client):
    client = member_client("grid1")
    item = _visit(_household("grid1"), datetime.fromisoformat("2099-01-01T00:00:00+08:00"))
    before = timezone.now()
    (result,) = _batch(client, [item]).json()["results"]
    assert result["status"] == "accepted", result
    assert result["time_flag"] == "future"
    visit = Visit.objects.get(client_uuid=item["client_uuid"])
    assert before <= visit.client_time <= timezone.now()
    assert VisitClock.objects.get(visit=visit).flag == "future"


def test_a_phone_reset_to_2000_is_flagged_too_old_unless_it_sends_its_clock(demo, member_client):
    client = member_client("grid1")
    reset = datetime.fromisoformat("2000-01-01T09:00:00+08:00")
    lost = _visit(_household("grid1"), reset)
    (result,) = _batch(client, [lost]).json()["results"]
    assert result["status"] == "accepted" and result["time_flag"] == "too_old"
    # the same phone sending its clock: the visit half an hour before the upload
    fixed = _visit(_household("grid1"), reset)
    (result,) = _batch(client, [fixed], device_now=reset + timedelta(minutes=30)).json()["results"]
    assert result["time_flag"] is None and result["time_corrected"] is True
    made = Visit.objects.get(client_uuid=fixed["client_uuid"]).client_time
    assert abs(timezone.now() - timedelta(minutes=30) - made) < timedelta(minutes=1)


def test_a_visit_long_before_its_task_window_is_flagged(demo, member_client):
    task = VisitTask.objects.filter(
        assigned_member__username="grid1", status="open", rule__code="all-households-yearly"
    ).first()
    start = task.period_start
    when = timezone.make_aware(datetime(start.year - 1, 12, 20, 10, 0))
    item = _visit(task.household, when, task=task.id)
    (result,) = _batch(member_client("grid1"), [item]).json()["results"]
    assert result["status"] == "accepted", result
    assert result["time_flag"] == "before_task_window"


def test_every_response_says_the_server_time_and_a_bad_device_time_is_refused(demo, member_client):
    client = member_client("grid1")
    r = client.get("/api/v1/me/")
    stamp = datetime.fromisoformat(r["X-Server-Time"].replace("Z", "+00:00"))
    assert abs(stamp - timezone.now()) < timedelta(minutes=1)
    assert r["X-Server-Time"].endswith("Z") and "." in r["X-Server-Time"]
    assert format_server_time(stamp) == r["X-Server-Time"]
    bad = client.get("/api/v1/me/", headers={"X-Device-Time": "yesterday"})
    assert bad.status_code == 400 and bad.json()["code"] == "bad_device_time"
    ms = client.get("/api/v1/me/", headers={"X-Device-Time": str(int(stamp.timestamp() * 1000))})
    assert ms.status_code == 200 and abs(int(ms["X-Clock-Offset-Ms"])) < 60_000


# ---------------------------------------------------------------- gzip
def test_a_gzipped_batch_is_accepted(demo, member_client):
    item = _visit(_household("grid1"), timezone.now() - timedelta(hours=1))
    r = member_client("grid1").post(
        "/api/v1/visits/batch/",
        gzip.compress(json.dumps({"visits": [item]}).encode()),
        content_type="application/json",
        headers={"Content-Encoding": "gzip"},
    )
    assert r.status_code == 200, r.content
    assert r.json()["summary"]["accepted"] == 1
    assert Visit.objects.filter(client_uuid=item["client_uuid"]).exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100_000)
def test_a_zip_bomb_is_refused_with_413(demo, member_client):
    bomb = gzip.compress(b'{"visits": [' + b" " * 5_000_000 + b"]}")
    assert len(bomb) < 100_000
    r = member_client("grid1").post(
        "/api/v1/visits/batch/",
        bomb,
        content_type="application/json",
        headers={"Content-Encoding": "gzip"},
    )
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"
    other = member_client("grid1").post(
        "/api/v1/visits/batch/",
        b"xx",
        content_type="application/json",
        headers={"Content-Encoding": "br"},
    )
    assert other.status_code == 415
    broken = member_client("grid1").post(
        "/api/v1/visits/batch/",
        b"not gzip",
        content_type="application/json",
        headers={"Content-Encoding": "gzip"},
    )
    assert broken.status_code == 400 and broken.json()["code"] == "bad_gzip"


def test_a_gzipped_retry_with_the_same_key_is_a_replay(demo, member_client):
    client = member_client("grid1")
    body = json.dumps(_report(_household("grid1"), "压缩重试")).encode()
    key = str(uuid.uuid4())
    plain = client.post(
        "/api/v1/cases/", body, content_type="application/json", headers={"Idempotency-Key": key}
    )
    zipped = client.post(
        "/api/v1/cases/",
        gzip.compress(body),
        content_type="application/json",
        headers={"Idempotency-Key": key, "Content-Encoding": "gzip"},
    )
    assert plain.status_code == zipped.status_code == 201
    assert zipped["Idempotent-Replayed"] == "true"
    assert Case.objects.filter(title="压缩重试").count() == 1


# ---------------------------------------------------------------- versions
@override_settings(GRIDSVC_MIN_APP_VERSION="2.3")
def test_a_too_old_app_gets_426_with_the_minimum_version(demo, member_client):
    client = member_client("grid1")
    old = client.get("/api/v1/me/", headers={"X-App-Version": "2.2.9"})
    assert old.status_code == 426
    assert old.json() == {
        "detail": old.json()["detail"],
        "code": "app_too_old",
        "min_version": "2.3",
        "app_version": "2.2.9",
    }
    assert old["X-Min-App-Version"] == "2.3"
    assert client.get("/api/v1/me/", headers={"X-App-Version": "2.3.0-beta"}).status_code == 200
    assert client.get("/api/v1/me/", headers={"X-App-Version": "10.0"}).status_code == 200
    assert client.get("/api/v1/me/").status_code == 200  # web page, GIS clients: no header
    bad = client.get("/api/v1/me/", headers={"X-App-Version": "latest"})
    assert bad.status_code == 400 and bad.json()["code"] == "bad_app_version"
