"""The service says so when its field keys cannot read the stored personal data (a second
checkout's ``make demo`` made new keys; a deployment given a mistyped or lost
``GRIDSVC_FIELD_KEYS``): ``/health`` answers 503 ``"keys": "wrong"`` instead of 200 while every
resident read fails, and ``load_demo`` refuses to call such a database "already loaded"."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from gridsvc.crypto import keys_read_stored_data

pytestmark = pytest.mark.django_db


def test_health_reports_keys_ok_with_the_right_keys(demo):
    r = Client().get("/health")
    assert r.status_code == 200
    assert r.json()["keys"] == "ok"
    assert keys_read_stored_data() is True


def test_other_keys_make_health_503_and_load_demo_refuse(demo, settings):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # not the data's key
    assert keys_read_stored_data() is False
    r = Client().get("/health")
    assert r.status_code == 503
    body = r.json()
    assert body["keys"] == "wrong" and "GRIDSVC_FIELD_KEYS" in body["detail"]
    with pytest.raises(CommandError, match="other field keys"):
        call_command("load_demo")


def test_an_old_key_kept_for_rotation_still_reads(demo, settings):
    """Rotation prepends a new key: the data written under the old one still reads."""
    settings.FIELD_ENCRYPTION_KEYS = [
        Fernet.generate_key().decode(),
        *settings.FIELD_ENCRYPTION_KEYS,
    ]
    assert keys_read_stored_data() is True
    assert Client().get("/health").status_code == 200
