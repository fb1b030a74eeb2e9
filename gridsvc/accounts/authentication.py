"""JWT authentication that honours per-device revocation.

Tokens carry a ``dev`` claim (the Device row). A revoked device's access tokens stop working
at once and its refresh tokens cannot be refreshed.

Every API request authenticates, so the user row, the device check and the positions the
user holds now (their territory scope, :mod:`gridsvc.chain.scope`) are **one** query, prepared
on the connection (:mod:`gridsvc.prepared`): the user row with an ``EXISTS`` on a revoked
device and an array of the held positions' territory ids.
The scope is kept on the user object for the request (``scope_for(request.user)`` reads it
instead of querying again).
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.utils import get_md5_hash_password

from .models import Device

DEVICE_CLAIM = "dev"


def device_revoked(device_pk: int | None) -> bool:
    if device_pk is None:
        return False
    return Device.objects.filter(pk=device_pk, revoked_at__isnull=False).exists()


_SQL: tuple[str, list[str]] | None = None


def _user_scope_sql(user_model: Any) -> tuple[str, list[str]]:
    """The one statement (built once per process) and the member's field names, in order."""
    global _SQL
    if _SQL is None:
        from gridsvc.chain.models import Position
        from gridsvc.territory.models import Unit

        fields = list(user_model._meta.concrete_fields)
        cols = ", ".join(f'm."{f.column}"' for f in fields)
        _SQL = (
            f"""SELECT {cols},
  EXISTS (SELECT 1 FROM {Device._meta.db_table} d
          WHERE d.id = %(dev)s AND d.revoked_at IS NOT NULL),
  ARRAY(SELECT ARRAY[p.street_id, p.community_id, p.grid_id, p.compound_id, p.building_id,
                     p.unit_id, u.building_id]
        FROM {Position._meta.db_table} p LEFT JOIN {Unit._meta.db_table} u ON u.id = p.unit_id
        WHERE p.member_id = m.id AND p.valid_from <= %(now)s
          AND (p.valid_to IS NULL OR p.valid_to > %(now)s))
FROM {user_model._meta.db_table} m WHERE m.id = %(uid)s""",
            [f.attname for f in fields],
        )
    return _SQL


def load_user_with_scope(user_model: Any, user_id: int, device_pk: int | None):  # type: ignore[no-untyped-def]
    """``(user, device revoked?)`` in one query, the user's current scope attached; None when
    there is no such user."""
    from gridsvc.chain.scope import attach_scope
    from gridsvc.prepared import fetchone

    sql, names = _user_scope_sql(user_model)
    row = fetchone(sql, {"uid": user_id, "dev": device_pk, "now": timezone.now()})
    if row is None:
        return None, False
    n = len(names)
    user = user_model.from_db(connection.alias, names, row[:n])
    attach_scope(user, row[n + 1] or [])
    return user, bool(row[n])


class DeviceJWTAuthentication(JWTAuthentication):
    def get_user(self, validated_token):  # type: ignore[no-untyped-def]
        device_pk = validated_token.get(DEVICE_CLAIM)
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as e:
            raise InvalidToken(_("Token contained no recognizable user identification")) from e
        try:
            uid = int(user_id)
            dev = None if device_pk is None else int(device_pk)
        except (TypeError, ValueError):
            return super().get_user(validated_token)
        if api_settings.USER_ID_FIELD != "id":  # pragma: no cover - ours is the id
            return super().get_user(validated_token)
        user, revoked = load_user_with_scope(self.user_model, uid, dev)
        if user is None:
            # No such user (a deleted member's devices are gone too): the original order of
            # checks, with their exact errors.
            if device_revoked(dev):
                raise AuthenticationFailed(
                    "this device has been signed out", code="device_revoked"
                ) from None
            return super().get_user(validated_token)
        if revoked:
            raise AuthenticationFailed("this device has been signed out", code="device_revoked")
        if api_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise AuthenticationFailed(_("User is inactive"), code="user_inactive")
        if api_settings.CHECK_REVOKE_TOKEN and validated_token.get(
            api_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            raise AuthenticationFailed(
                _("The user's password has been changed."), code="password_changed"
            )
        return user
