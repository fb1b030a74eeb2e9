"""Accounts and privacy: JWT per device, rotation, lockout, masking, unmask grants, audit."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, transaction
from rest_framework.test import APIClient

from gridsvc.accounts.models import Member
from gridsvc.audit.models import AuditEntry
from gridsvc.territory.models import Resident

pytestmark = pytest.mark.django_db

PASSWORD = "gridsvc-demo"


def login(username: str, password: str = PASSWORD, device: str = "phone-1") -> tuple[int, dict]:
    r = APIClient().post(
        "/api/v1/auth/token/",
        {"username": username, "password": password, "device": device},
        format="json",
    )
    return r.status_code, r.json()


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_login_by_phone_number(demo):
    m = Member.objects.get(username="grid2")
    m.phone = "13912345678"
    m.save()
    status, body = login("13912345678")
    assert status == 200 and bearer(body["access"]).get("/api/v1/me/").json()["username"] == "grid2"


def test_refresh_rotates_and_old_refresh_is_dead(demo):
    _, body = login("grid1")
    client = APIClient()
    r1 = client.post("/api/v1/auth/token/refresh/", {"refresh": body["refresh"]}, format="json")
    assert r1.status_code == 200 and r1.json()["refresh"] != body["refresh"]
    # re-used within the grace window (a lost answer) it still works (issue 16 item 6) …
    r2 = client.post("/api/v1/auth/token/refresh/", {"refresh": body["refresh"]}, format="json")
    assert r2.status_code == 200
    # … after the window it is dead (and the device with it: tests/test_sync_contract.py)
    from datetime import timedelta

    from django.utils import timezone

    from gridsvc.accounts.models import SpentRefreshToken

    SpentRefreshToken.objects.update(spent_at=timezone.now() - timedelta(minutes=5))
    r3 = client.post("/api/v1/auth/token/refresh/", {"refresh": body["refresh"]}, format="json")
    assert r3.status_code == 401


def test_revoking_a_device_signs_it_out_but_not_the_others(demo):
    _, lost = login("grid1", device="lost-phone")
    _, other = login("grid1", device="tablet")
    me = bearer(other["access"])
    devices = me.get("/api/v1/auth/devices/").json()["results"]
    lost_id = next(d["id"] for d in devices if d["device_id"] == "lost-phone")
    assert me.post(f"/api/v1/auth/devices/{lost_id}/revoke/").status_code == 200
    assert bearer(lost["access"]).get("/api/v1/me/").status_code == 401
    refresh = APIClient().post(
        "/api/v1/auth/token/refresh/", {"refresh": lost["refresh"]}, format="json"
    )
    assert refresh.status_code == 401
    assert me.get("/api/v1/me/").status_code == 200


def test_logout_blacklists_the_refresh_token(demo):
    _, body = login("grid3")
    assert (
        APIClient()
        .post("/api/v1/auth/logout/", {"refresh": body["refresh"]}, format="json")
        .status_code
        == 205
    )
    r = APIClient().post("/api/v1/auth/token/refresh/", {"refresh": body["refresh"]}, format="json")
    assert r.status_code == 401
    bad = APIClient().post("/api/v1/auth/logout/", {"refresh": "garbage"}, format="json")
    assert bad.status_code == 400 and "refresh" in bad.json()


def test_lockout_after_repeated_failures(demo):
    for _ in range(4):
        status, _ = login("grid4", password="wrong-password")
        assert status == 401
    status, body = login("grid4", password="wrong-password")  # 5th failure locks
    assert status == 429 and "locked" in body["detail"]
    status, _ = login("grid4")  # right password, but locked out now
    assert status == 429
    status, _ = login("grid5")  # other accounts unaffected
    assert status == 200


def test_password_rules_reject_short_and_common_passwords():
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    for bad in ("short1", "password123", "1234567890"):
        with pytest.raises(ValidationError):
            validate_password(bad)
    validate_password("lanzhou-grid-2026!")


def test_unmask_needs_a_grant_and_a_role_that_may(demo, member_client):
    street = member_client("street")
    assert street.get("/api/v1/residents/?unmask=1").status_code == 403
    grid1 = member_client("grid1")
    r = grid1.post("/api/v1/privacy/grants/", {"reason": "核实身份", "minutes": 10}, format="json")
    assert r.status_code == 403
    r = street.post("/api/v1/privacy/grants/", {"reason": "x"}, format="json")
    assert r.status_code == 400 and "reason" in r.json()
    r = street.post("/api/v1/privacy/grants/", {"reason": "minutes", "minutes": 999}, format="json")
    assert r.status_code == 400 and "minutes" in r.json()


def test_unmasked_reads_are_audited_one_entry_per_resident(demo, member_client):
    street = member_client("street")
    r = street.post(
        "/api/v1/privacy/grants/",
        {"reason": "矛盾调解核实当事人身份", "minutes": 15},
        format="json",
    )
    assert r.status_code == 201, r.content
    before = AuditEntry.objects.filter(action="unmasked_read").count()
    page = street.get("/api/v1/residents/?unmask=1&page_size=3&tag=community_correction").json()
    rows = page["results"]
    assert len(rows) == 3
    stored = Resident.objects.get(pk=rows[0]["id"])
    assert rows[0]["id_number"] == stored.id_number and rows[0]["phone"] == stored.phone
    assert rows[0]["ethnicity"] == stored.ethnicity and "community_correction" in rows[0]["tags"]
    entries = AuditEntry.objects.filter(action="unmasked_read").order_by("id")[before:]
    assert sorted(int(e.object_id) for e in entries) == sorted(r["id"] for r in rows)
    assert all(e.reason == "矛盾调解核实当事人身份" for e in entries)
    masked = street.get(f"/api/v1/residents/{stored.pk}/").json()
    assert masked["id_number"] != stored.id_number


def test_audit_log_refuses_update_and_delete(demo):
    entry = AuditEntry.objects.create(action="other", reason="test")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(reason="rewritten")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.get(pk=entry.pk).reason == "test"


def test_audit_log_is_for_the_street_only(demo, member_client):
    assert member_client("grid1").get("/api/v1/audit/").status_code == 403
    assert member_client("street").get("/api/v1/audit/").status_code == 200


def test_security_headers(demo, member_client):
    r = member_client("street").get("/api/v1/me/")
    assert r["X-Content-Type-Options"] == "nosniff"
    assert r["X-Frame-Options"] == "DENY"
    assert r["Referrer-Policy"] == "same-origin"


def test_check_deploy_passes_in_production_settings(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("GRIDSVC_TESTING", "DJANGO_DEBUG")}
    env.update(
        GRIDSVC_ENV="production",
        DJANGO_SECRET_KEY="k" * 10 + "a-long-random-production-secret-9f8e7d6c5b4a3",
        GRIDSVC_FIELD_KEYS="cHJvZHVjdGlvbi1maWVsZC1rZXktbm90LXB1Ymxpc2g=",
        GRIDSVC_HASH_KEY="production-hash-key-not-published-anywhere",
        DJANGO_ALLOWED_HOSTS="grid.example.org",
    )
    r = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
