"""Published keys never work in production (system checks ``gridsvc.E001``-``E003``).

The development secret key, field-encryption key and hash key are written in
``gridsvc/settings.py`` for DEBUG and tests; anyone who reads the repository knows them, so a
server using them lets anyone sign an admin JWT or decrypt ID numbers. These checks refuse
them, and missing or unusable field keys:

- ``manage.py check --deploy`` reports them as errors (deploy-tagged check);
- at start-up (:meth:`AccountsConfig.ready`) they stop the process outside DEBUG and tests
  (gunicorn runs no system checks), unless ``GRIDSVC_ALLOW_DEV_KEYS=1`` is set for a
  benchmark on synthetic data — never honoured with ``GRIDSVC_ENV=production``.
"""

from __future__ import annotations

import os
import sys

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured


def _published(name: str) -> str:
    return str(getattr(settings, name, "") or "")


def key_errors() -> list[Error]:
    """What is wrong with the configured keys: published development values or missing ones."""
    errors: list[Error] = []
    secret = str(settings.SECRET_KEY or "")
    if not secret or secret == _published("DEV_SECRET") or secret.startswith("dev-only"):
        errors.append(
            Error(
                "DJANGO_SECRET_KEY is the published development secret (or empty)",
                hint="set DJANGO_SECRET_KEY to a long random value "
                "(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')",
                id="gridsvc.E001",
            )
        )
    keys = list(getattr(settings, "FIELD_ENCRYPTION_KEYS", []) or [])
    if not keys:
        errors.append(
            Error(
                "no field-encryption keys: GRIDSVC_FIELD_KEYS is not set",
                hint="set GRIDSVC_FIELD_KEYS to one or more Fernet keys, newest first",
                id="gridsvc.E002",
            )
        )
    elif _published("DEV_FIELD_KEY") in keys:
        errors.append(
            Error(
                "GRIDSVC_FIELD_KEYS contains the published development field key",
                hint="generate a key (python3 -c 'import base64,os; "
                "print(base64.urlsafe_b64encode(os.urandom(32)).decode())'), prepend it and "
                "run manage.py rotate_field_keys before removing the old one",
                id="gridsvc.E002",
            )
        )
    else:
        from cryptography.fernet import Fernet

        for i, key in enumerate(keys):
            try:
                Fernet(key.encode())
            except (ValueError, TypeError):
                errors.append(
                    Error(f"GRIDSVC_FIELD_KEYS key #{i + 1} is not a Fernet key", id="gridsvc.E002")
                )
    hash_key = str(getattr(settings, "ID_HASH_KEY", "") or "")
    if not hash_key or hash_key == _published("DEV_HASH_KEY"):
        errors.append(
            Error(
                "GRIDSVC_HASH_KEY is the published development hash key (or empty)",
                hint="set GRIDSVC_HASH_KEY to a long random value",
                id="gridsvc.E003",
            )
        )
    return errors


@register(Tags.security, deploy=True)
def check_keys(app_configs=None, **kwargs) -> list[Error]:  # type: ignore[no-untyped-def]
    """``check --deploy``: published or missing keys are errors."""
    return key_errors()


def refuse_published_keys_at_startup() -> None:
    """Stop the process when it would run outside DEBUG/tests with published or missing keys."""
    if settings.DEBUG or getattr(settings, "TESTING", False):
        return
    if sys.argv[1:2] == ["check"]:
        return  # ``manage.py check --deploy`` lists the same problems as errors
    production = bool(getattr(settings, "PRODUCTION", False))
    if not production and os.environ.get("GRIDSVC_ALLOW_DEV_KEYS") == "1":
        return
    errors = key_errors()
    if errors:
        raise ImproperlyConfigured(
            "refusing to start with published or missing keys: "
            + "; ".join(f"{e.id} {e.msg}" for e in errors)
        )
