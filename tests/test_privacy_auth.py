"""Accounts hardening (issue 15 items 4, 8, 9, 10, 12): final revocation, lockout that a
stranger cannot use against the owner, shared login throttles, refused published keys,
login timing, audit-log scope and immutable unmask grants."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.cache import caches
from django.db import connection
from django.test import Client, override_settings
from rest_framework.test import APIClient

from gridsvc.accounts.models import Device, Member

pytestmark = pytest.mark.django_db

PASSWORD = "gridsvc-demo"
ROOT = Path(__file__).resolve().parent.parent
ATTACKER = {"REMOTE_ADDR": "203.0.113.9", "HTTP_USER_AGENT": "curl/8.5"}
OWNER = {"REMOTE_ADDR": "198.51.100.7", "HTTP_USER_AGENT": "GridApp/2.1 (Android 14)"}


def api_login(username: str, password: str = PASSWORD, device: str = "phone-1", **client):
    r = APIClient().post(
        "/api/v1/auth/token/",
        {"username": username, "password": password, "device": device},
        format="json",
        **client,
    )
    return r.status_code, r.json()


def bearer(token: str) -> APIClient:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return c


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# ----------------------------------------------------------------- 4. revocation is final
def test_signing_in_again_with_a_revoked_device_id_does_not_revive_its_tokens(demo):
    status, stolen = api_login("grid1", device="lost-phone")
    assert status == 200
    me = bearer(stolen["access"])
    assert me.post(f"/api/v1/auth/devices/{stolen['device']}/revoke/").status_code == 200

    # the thief (or the owner) signs in again with the same device id
    status, again = api_login("grid1", device="lost-phone")
    assert status == 200
    assert again["device"] != stolen["device"]
    assert Device.objects.get(pk=stolen["device"]).revoked_at is not None

    # the stolen tokens stay dead
    assert bearer(stolen["access"]).get("/api/v1/me/").status_code == 401
    r = APIClient().post(
        "/api/v1/auth/token/refresh/", {"refresh": stolen["refresh"]}, format="json"
    )
    assert r.status_code == 401
    # the new sign-in works
    assert bearer(again["access"]).get("/api/v1/me/").status_code == 200
    # and signing in on a live device keeps one row
    status, third = api_login("grid1", device="lost-phone")
    assert third["device"] == again["device"]


# ------------------------------------------- 8. lockout cannot be used against the owner
def test_a_stranger_cannot_lock_the_owner_out_of_the_api(demo):
    for _ in range(4):
        assert api_login("grid4", password="guess-123456", **ATTACKER)[0] == 401
    status, body = api_login("grid4", password="guess-123456", **ATTACKER)
    assert status == 429 and "locked" in body["detail"]
    assert api_login("grid4", **ATTACKER)[0] == 429  # the guessing client stays locked
    status, body = api_login("grid4", **OWNER)  # the owner on her own phone is not
    assert status == 200, body


def test_a_stranger_cannot_lock_the_owner_out_of_the_web_page(demo):
    stranger = Client(**ATTACKER)
    codes = []
    for _ in range(5):
        r = stranger.post("/login/", {"username": "grid4", "password": "guess-123456"})
        codes.append(r.status_code)
        assert "_auth_user_id" not in stranger.session
    # four wrong passwords re-show the form; the fifth locks this client out
    assert codes == [200, 200, 200, 200, 429], codes
    r = stranger.post("/login/", {"username": "grid4", "password": PASSWORD})
    assert "_auth_user_id" not in stranger.session  # locked for the guessing client
    owner = Client(**OWNER)
    r = owner.post("/login/", {"username": "grid4", "password": PASSWORD})
    assert r.status_code == 302 and owner.session.get("_auth_user_id")


def test_a_stranger_cannot_lock_the_owner_out_of_basic_auth(demo):
    stranger = APIClient(**ATTACKER)
    codes = []
    for _ in range(5):
        r = stranger.get("/ogc/collections", HTTP_AUTHORIZATION=basic("grid4", "guess-123456"))
        codes.append(r.status_code)
    assert codes == [401, 401, 401, 401, 429], codes  # the fifth locks this client out
    r = stranger.get("/ogc/collections", HTTP_AUTHORIZATION=basic("grid4", PASSWORD))
    assert r.status_code == 429 and int(r["Retry-After"]) > 0  # locked for the guessing client
    owner = APIClient(**OWNER)
    r = owner.get("/ogc/collections", HTTP_AUTHORIZATION=basic("grid4", PASSWORD))
    assert r.status_code == 200, r.content


@override_settings(LOGIN_FAILURE_RATE="6/min")
def test_failed_logins_are_throttled_per_address_on_every_path(demo):
    # six different usernames (no single one gets locked), a spoofed X-Forwarded-For each time
    for i, name in enumerate(["grid1", "grid2", "grid3", "grid5", "grid6", "grid7"]):
        status, _ = api_login(
            name, password="guess-123456", HTTP_X_FORWARDED_FOR=f"10.9.9.{i}", **ATTACKER
        )
        assert status == 401
    # the address has spent its failures: even a right password is refused there, on the
    # API, the web login and Basic auth
    status, body = api_login("cadre1", **ATTACKER)
    assert status == 429 and "address" in body["detail"]
    web = Client(**ATTACKER)
    web.post("/login/", {"username": "cadre1", "password": PASSWORD})
    assert "_auth_user_id" not in web.session
    r = APIClient(**ATTACKER).get("/ogc/collections", HTTP_AUTHORIZATION=basic("cadre1", PASSWORD))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    # other addresses are not affected
    assert api_login("cadre1", **OWNER)[0] == 200
    # the counts live in the database every gunicorn worker reads, not in one process: one
    # row per address whose two windows hold the six failures and the three refused attempts
    # (a refused attempt counts too)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT previous + current FROM accounts_loginthrottlecount"
            " WHERE scope = 'failure' AND address = %s",
            ["203.0.113.9"],
        )
        assert cur.fetchall() == [(9,)]


def test_login_throttle_counts_are_shared_between_workers(demo):
    backend = caches["default"]
    assert backend.__class__.__module__ == "django.core.cache.backends.db"
    assert api_login("grid1", **OWNER)[0] == 200
    with connection.cursor() as cur:  # what another worker process would read
        cur.execute(
            "SELECT current FROM accounts_loginthrottlecount"
            " WHERE scope = 'api-login' AND address = %s",
            [OWNER["REMOTE_ADDR"]],
        )
        assert cur.fetchall() == [(1,)]


# ----------------------------------------------------------- 9. published keys refused
PUBLISHED = {
    "DEBUG": False,
    "SECRET_KEY": settings.DEV_SECRET,
    "FIELD_ENCRYPTION_KEYS": [settings.DEV_FIELD_KEY],
    "ID_HASH_KEY": settings.DEV_HASH_KEY,
}
GOOD = {
    "DEBUG": False,
    "SECRET_KEY": "a-long-random-production-secret-" + "x9" * 20,
    "FIELD_ENCRYPTION_KEYS": [base64.urlsafe_b64encode(b"k" * 32).decode()],
    "ID_HASH_KEY": "a-long-random-production-hash-key-42",
}


def _deploy_error_ids() -> set[str]:
    from django.core.checks import run_checks

    return {
        e.id
        for e in run_checks(include_deployment_checks=True)
        if (e.id or "").startswith("gridsvc.")
    }


def test_deploy_check_refuses_published_and_missing_keys():
    with override_settings(**PUBLISHED):
        assert {"gridsvc.E001", "gridsvc.E002", "gridsvc.E003"} <= _deploy_error_ids()
    with override_settings(**{**GOOD, "FIELD_ENCRYPTION_KEYS": []}):
        assert _deploy_error_ids() == {"gridsvc.E002"}
    with override_settings(**{**GOOD, "FIELD_ENCRYPTION_KEYS": ["not-a-fernet-key"]}):
        assert _deploy_error_ids() == {"gridsvc.E002"}
    with override_settings(**GOOD):
        assert _deploy_error_ids() == set()


def test_published_keys_stop_the_server_outside_debug():
    from django.core.exceptions import ImproperlyConfigured

    from gridsvc.accounts.checks import refuse_published_keys_at_startup

    with override_settings(**PUBLISHED, TESTING=False), pytest.raises(ImproperlyConfigured):
        refuse_published_keys_at_startup()
    with override_settings(**GOOD, TESTING=False):
        refuse_published_keys_at_startup()


def test_check_deploy_fails_in_production_with_the_published_field_key():
    env = {k: v for k, v in os.environ.items() if k not in ("GRIDSVC_TESTING", "DJANGO_DEBUG")}
    env.update(
        GRIDSVC_ENV="production",
        DJANGO_SECRET_KEY="a-long-random-production-secret-9f8e7d6c5b4a3-" + "q" * 10,
        GRIDSVC_FIELD_KEYS=settings.DEV_FIELD_KEY,
        GRIDSVC_HASH_KEY=settings.DEV_HASH_KEY,
        DJANGO_ALLOWED_HOSTS="grid.example.org",
    )
    r = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode != 0
    assert "gridsvc.E002" in r.stderr + r.stdout and "gridsvc.E003" in r.stderr + r.stdout
    # and the server itself refuses to start with them
    r = subprocess.run(
        [sys.executable, "manage.py", "showmigrations", "accounts"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode != 0 and "published" in r.stderr


def test_make_demo_generates_its_own_stable_private_secrets(tmp_path):
    from cryptography.fernet import Fernet

    target = tmp_path / "secrets.env"
    script = ROOT / "scripts" / "demo_secrets.sh"
    subprocess.run(["bash", str(script), str(target)], check=True, capture_output=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    first = target.read_text()
    values = dict(
        line.split("=", 1) for line in first.splitlines() if line and not line.startswith("#")
    )
    assert set(values) >= {"DJANGO_SECRET_KEY", "GRIDSVC_FIELD_KEYS", "GRIDSVC_HASH_KEY"}
    assert (
        values["DJANGO_SECRET_KEY"] != settings.DEV_SECRET
        and len(values["DJANGO_SECRET_KEY"]) >= 50
    )
    assert values["GRIDSVC_FIELD_KEYS"] != settings.DEV_FIELD_KEY
    Fernet(values["GRIDSVC_FIELD_KEYS"].encode())
    assert values["GRIDSVC_HASH_KEY"] != settings.DEV_HASH_KEY
    subprocess.run(["bash", str(script), str(target)], check=True, capture_output=True)
    assert target.read_text() == first  # stable across runs


# ------------------------------------------------------------ 10. login timing
class CountingHasher(MD5PasswordHasher):
    """The test hasher, counting how often a password is hashed."""

    calls = 0

    def encode(self, password, salt):  # type: ignore[no-untyped-def]
        CountingHasher.calls += 1
        return super().encode(password, salt)


@override_settings(PASSWORD_HASHERS=["tests.test_privacy_auth.CountingHasher"])
def test_login_hashes_once_whether_or_not_the_phone_number_is_a_members(demo):
    member = Member.objects.get(username="grid2")
    member.phone = "13912345678"
    member.save()

    def hashes(login: str, password: str) -> int:
        CountingHasher.calls = 0
        api_login(login, password=password)
        return CountingHasher.calls

    assert hashes("13900000000", "guess-123456") == 1  # nobody has this phone
    assert hashes("13912345678", "guess-123456") == 1  # a member's phone, wrong password
    assert hashes("nobody-here", "guess-123456") == 1  # unknown username
    assert hashes("grid3", "guess-123456") == 1  # a member's username, wrong password
    assert hashes("13912345678", PASSWORD) == 1  # right password by phone


# ------------------------------------------------- 12. database roles and the audit trail
def _app_role_connection():
    """A connection to the test database as the application's run-time role (made by
    scripts/setup.sh: gridsvc_app, DML only)."""
    import psycopg

    s = connection.settings_dict
    return psycopg.connect(
        host=s["HOST"],
        port=s["PORT"],
        dbname=s["NAME"],
        user=os.environ.get("GRIDSVC_APP_DB_USER", "gridsvc_app"),
        password=os.environ.get("GRIDSVC_APP_DB_PASSWORD", "gridsvc_app"),
        options="-c lock_timeout=3000",
    )


def test_neither_database_role_is_a_superuser(db):
    with connection.cursor() as cur:
        cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert cur.fetchone()[0] is False
        cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'gridsvc_app'")
        row = cur.fetchone()
        assert row is not None, "role gridsvc_app missing: run scripts/setup.sh"
        assert row[0] is False


def test_the_application_role_cannot_rewrite_or_silence_the_audit_trail(db):
    import psycopg

    refused = [
        "UPDATE audit_auditentry SET reason = 'rewritten'",
        "DELETE FROM audit_auditentry",
        "TRUNCATE audit_auditentry",
        "ALTER TABLE audit_auditentry DISABLE TRIGGER ALL",
        "DROP TRIGGER audit_entry_no_update_delete ON audit_auditentry",
        "SET session_replication_role = replica",
        "TRUNCATE audit_unmaskgrant",
        "ALTER TABLE audit_unmaskgrant DISABLE TRIGGER ALL",
    ]
    with _app_role_connection() as conn:
        for sql in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
            conn.rollback()
        # what the application needs still works: read and append
        conn.execute("SELECT count(*) FROM audit_auditentry").fetchone()
        conn.execute(
            "INSERT INTO audit_auditentry (at, action, object_type, object_id, fields, reason,"
            " detail) VALUES (now(), 'other', '', '', '[]', 'role test', '{}')"
        )
        conn.rollback()


def test_an_unmask_grant_cannot_be_extended_or_rewritten(demo):
    from datetime import timedelta

    from django.db import DatabaseError, transaction
    from django.utils import timezone

    from gridsvc.audit.models import UnmaskGrant
    from gridsvc.audit.services import grant_unmask

    grant = grant_unmask(Member.objects.get(username="street"), "核实身份 test", minutes=10)
    rows = UnmaskGrant.objects.filter(pk=grant.pk)
    later = grant.expires_at + timedelta(days=365)
    for change in (
        {"expires_at": later},
        {"created_at": grant.created_at - timedelta(days=1)},
        {"reason": "something else"},
        {"member": Member.objects.get(username="grid1")},
    ):
        with pytest.raises(DatabaseError), transaction.atomic():
            rows.update(**change)
    assert rows.get().expires_at == grant.expires_at
    # revoking is the one change allowed, once
    rows.update(revoked_at=timezone.now())
    for change in ({"revoked_at": None}, {"revoked_at": timezone.now() + timedelta(days=1)}):
        with pytest.raises(DatabaseError), transaction.atomic():
            rows.update(**change)
    with pytest.raises(DatabaseError), transaction.atomic():
        rows.delete()
    assert not rows.get().active


def test_the_audit_log_is_limited_to_the_callers_street(demo, member_client):
    from gridsvc.audit.models import AuditEntry
    from gridsvc.chain.models import Position
    from gridsvc.territory.models import Community, Resident, Street

    other = Street.objects.create(code="620103098", name="别的街道")
    Community.objects.create(street=other, code="620103098001", name="别的社区")
    outsider = Member.objects.create_user("street-b", password="lanzhou-grid-2026!")
    Position.objects.create(position_type="street_dispatcher", member=outsider, street=other)
    resident = Resident.objects.filter(household__unit__building__grid__community=demo.community)[0]

    ours_by_actor = AuditEntry.objects.create(
        actor=Member.objects.get(username="grid1"), action="export", object_type="ledger"
    )
    ours_about = AuditEntry.objects.create(
        actor=None, action="other", object_type="resident", object_id=str(resident.pk)
    )
    theirs = AuditEntry.objects.create(actor=outsider, action="export", object_type="ledger")
    snooped = AuditEntry.objects.create(
        actor=outsider, action="unmasked_read", object_type="resident", object_id=str(resident.pk)
    )

    def ids(username: str) -> set[int]:
        seen = set()
        for kind in ("ledger", "resident"):
            r = member_client(username).get(f"/api/v1/audit/?object_type={kind}&page_size=500")
            assert r.status_code == 200
            seen |= {e["id"] for e in r.json()["results"]}
        return seen

    mine = ids("street")
    assert {ours_by_actor.pk, ours_about.pk, snooped.pk} <= mine and theirs.pk not in mine
    seen_by_b = ids("street-b")
    assert {theirs.pk, snooped.pk} <= seen_by_b
    assert ours_by_actor.pk not in seen_by_b and ours_about.pk not in seen_by_b
    assert member_client("street-b").get(f"/api/v1/audit/{ours_by_actor.pk}/").status_code == 404
    admin = Member.objects.filter(is_superuser=True).first() or Member.objects.create_superuser(
        "root-test", password="lanzhou-grid-2026!"
    )
    everything = ids(admin.username)
    assert {ours_by_actor.pk, ours_about.pk, theirs.pk, snooped.pk} <= everything
