"""Encryption at rest for sensitive personal information (敏感个人信息, PIPL art. 28).

Values are encrypted with Fernet (AES-128-CBC + HMAC) using keys from
``settings.FIELD_ENCRYPTION_KEYS`` (newest first). Old keys keep decrypting, so a key is
rotated by prepending a new one and running ``manage.py rotate_field_keys``.
ID numbers are also stored as a keyed hash (HMAC-SHA256) so they can be searched for
without decrypting every row.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("GRIDSVC_FIELD_KEYS is not set")
    return MultiFernet([Fernet(k.encode()) for k in keys])


def fernet() -> MultiFernet:
    """The MultiFernet for the configured keys (cached per key set)."""
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:  # pragma: no cover - wrong key configuration
        raise ImproperlyConfigured("cannot decrypt a sensitive field: wrong key?") from exc


def keys_read_stored_data() -> bool | None:
    """Whether the configured keys decrypt what is stored: one encrypted value (a resident's
    ID number) is tried. None when nothing encrypted is stored yet. False means every read of
    a sensitive field would fail (``GRIDSVC_FIELD_KEYS`` is not the key set the data was
    written with: another checkout's ``var/secrets.env``, a lost or mistyped key).

    The resident model is looked up by its label: the fields it is made of are this
    module's (territory.models imports them), so this module does not import it back."""
    from django.apps import apps
    from django.db import connection

    Resident = apps.get_model("territory", "Resident")
    table = connection.ops.quote_name(Resident._meta.db_table)
    with connection.cursor() as cur:
        cur.execute(f"SELECT id_number FROM {table} WHERE id_number <> '' LIMIT 1")
        row = cur.fetchone()
    if row is None:
        return None
    try:
        fernet().decrypt(str(row[0]).encode("ascii"))
    except (InvalidToken, ValueError):
        return False
    return True


def keyed_hash(value: str) -> str:
    """HMAC-SHA256 of a normalised value, for exact-match search on encrypted columns."""
    if not settings.ID_HASH_KEY:
        raise ImproperlyConfigured("GRIDSVC_HASH_KEY is not set")
    normalised = value.strip().upper()
    return hmac.new(settings.ID_HASH_KEY.encode(), normalised.encode(), hashlib.sha256).hexdigest()


class EncryptedTextField(models.TextField):
    """A text column stored encrypted; Python sees plain text.

    Encrypted columns cannot be filtered or sorted in SQL: pair them with a keyed-hash
    column where lookups are needed.
    """

    description = "Text encrypted at rest (Fernet)"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value: Any) -> str | None:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))


def rotate_token(token: str) -> str:
    """Re-encrypt one stored token with the newest key."""
    return fernet().rotate(token.encode("ascii")).decode("ascii")
