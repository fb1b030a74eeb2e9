"""JWT authentication that honours per-device revocation.

Tokens carry a ``dev`` claim (the Device row). A revoked device's access tokens stop working
at once and its refresh tokens cannot be refreshed.

Every API request authenticates, so the user row, the device check and the positions the
user holds now (their territory scope, :mod:`gridsvc.chain.scope`) are **one** query, prepared
on the connection (:mod:`gridsvc.prepared`): the user row with an ``EXISTS`` on a revoked
device and an array of the held positions' territory ids.
The scope is kept on the user object for the request (``scope_for(request.user)`` reads it
instead of querying again).

What else a request would pay for the caller, done once (issue 19):

- **a verified token is not verified again** in this process: the signature and claims of an
  access token's exact bytes are checked once (PyJWT: base64, JSON, HMAC); later requests
  with the same bytes only re-check its expiry and type (:func:`_cached_access_token`), so
  an expired token is refused as before. Revocation is not cached: the device and the user
  are read by the query above on every request.
- **one authentication per request**: the Idempotency-Key middleware authenticates before
  DRF does; the second call with the same header answers the first one's user (kept on the
  ``HttpRequest``), not a second query.
- **a rider**: a view whose own statement does not depend on the caller (the chain for a
  point or a reference) hands it to :func:`ride_with_caller` before authentication; it is
  sent *in the caller's statement* (one round trip, one prepared statement), and its row
  is read by the view only once the caller passed every check (device, active, password).
"""

from __future__ import annotations

import re
from typing import Any

from django.db import connection
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken
from rest_framework_simplejwt.utils import aware_utcnow, get_md5_hash_password

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


class Rider:
    """A statement sent with the caller's query (one round trip): ``sql`` is a SELECT giving
    at most one row, ``params`` its ``%(name)s`` parameters (``now``, when not given, is the
    caller query's time); it may read the caller's row as ``u`` (``u.id``,
    ``u.is_superuser``). After authentication ``row`` is that row (None: no row) and ``ran``
    is True; a request authenticated otherwise (session, forced) leaves ``ran`` False and
    the view runs the statement itself. ``generic``: the combined statement runs with its
    generic plan, planned once per connection (:func:`gridsvc.prepared.fetchone_generic`,
    still one round trip), for a rider PostgreSQL would otherwise plan on every run."""

    __slots__ = ("sql", "params", "row", "ran", "generic")

    def __init__(self, sql: str, params: dict[str, Any], generic: bool = False) -> None:
        self.sql, self.params, self.generic = sql, params, generic
        self.row: tuple | None = None
        self.ran = False


_RIDER_ATTR = "_gridsvc_auth_rider"


def ride_with_caller(
    request: Any, sql: str, params: dict[str, Any], generic: bool = False
) -> Rider:
    """Hand ``sql`` to this request's JWT authentication (call it before authenticating,
    e.g. in a view's ``initial``): it comes back in :attr:`Rider.row`."""
    rider = Rider(sql, params, generic)
    setattr(getattr(request, "_request", request), _RIDER_ATTR, rider)
    return rider


_COMBINED: dict[str, str] = {}
_PARAM = re.compile(r"%\((\w+)\)s")


def _with_rider(user_sql: str, rider_sql: str) -> str:
    """The caller's statement and the rider's in one: a row of the caller's columns (NULL
    when there is no such user) then the rider's (NULL when it has no row); the rider's
    parameters are renamed ``r_<name>``. Built once per rider statement."""
    sql = _COMBINED.get(rider_sql)
    if sql is None:
        renamed = _PARAM.sub(lambda m: f"%(r_{m.group(1)})s", rider_sql)
        sql = _COMBINED[rider_sql] = (
            "SELECT u.*, r.* FROM (SELECT 1) one\n"
            f"LEFT JOIN ({user_sql}) u ON true\n"
            f"LEFT JOIN LATERAL ({renamed}) r ON true"
        )
    return sql


def load_user_with_scope(user_model: Any, user_id: int, device_pk: int | None,
                         rider: Rider | None = None):  # type: ignore[no-untyped-def]  # fmt: skip
    """``(user, device revoked?)`` in one query, the user's current scope attached; None when
    there is no such user. With a ``rider`` its statement runs in the same query and its row
    is kept on it."""
    from gridsvc.chain.scope import attach_scope
    from gridsvc.prepared import fetchone, fetchone_generic

    sql, names = _user_scope_sql(user_model)
    params: dict[str, Any] = {"uid": user_id, "dev": device_pk, "now": timezone.now()}
    n = len(names)
    if rider is None:
        row = fetchone(sql, params)
    else:
        params["r_now"] = params["now"]
        params.update({f"r_{k}": v for k, v in rider.params.items()})
        run = fetchone_generic if rider.generic else fetchone
        both = run(_with_rider(sql, rider.sql), params)
        assert both is not None  # (SELECT 1) LEFT JOIN …: always one row
        rest = both[n + 2 :]
        rider.row = None if all(v is None for v in rest) else tuple(rest)
        rider.ran = True
        row = None if both[0] is None else both[: n + 2]
    if row is None:
        return None, False
    user = user_model.from_db(connection.alias, names, row[:n])
    attach_scope(user, row[n + 1] or [])
    return user, bool(row[n])


# access tokens whose signature and claims were verified in this process: raw bytes → payload
# (with the keys they were verified under). Bounded; a full cache is emptied, not grown.
_VERIFIED: dict[bytes, dict[str, Any]] = {}
_VERIFIED_MAX = 10_000
_VERIFIED_UNDER: tuple | None = None


def _verifying_settings() -> tuple:
    return (
        api_settings.SIGNING_KEY,
        api_settings.VERIFYING_KEY,
        api_settings.ALGORITHM,
        api_settings.AUDIENCE,
        api_settings.ISSUER,
        api_settings.JWK_URL,
        api_settings.LEEWAY,
        tuple(api_settings.AUTH_TOKEN_CLASSES),
    )


def _cached_access_token(raw_token: bytes) -> AccessToken | None:
    """The token of ``raw_token`` when these exact bytes were verified before under the same
    keys and it is still valid now (expiry, type: :meth:`Token.verify`); else None."""
    global _VERIFIED_UNDER
    payload = _VERIFIED.get(raw_token)
    if payload is None:
        return None
    under = _verifying_settings()
    if under != _VERIFIED_UNDER:
        _VERIFIED.clear()
        _VERIFIED_UNDER = under
        return None
    token = AccessToken.__new__(AccessToken)
    token.token = raw_token  # type: ignore[assignment]
    token.current_time = aware_utcnow()
    token.payload = dict(payload)
    try:
        token.verify()
    except TokenError:
        _VERIFIED.pop(raw_token, None)
        return None  # verified again in full: the error is the one it always was
    return token


def _remember_verified(raw_token: bytes, token: Any) -> None:
    global _VERIFIED_UNDER
    if type(token) is not AccessToken:
        return
    under = _verifying_settings()
    if under != _VERIFIED_UNDER or len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
        _VERIFIED_UNDER = under
    _VERIFIED[bytes(raw_token)] = dict(token.payload)


_DONE_ATTR = "_gridsvc_jwt_auth"


class DeviceJWTAuthentication(JWTAuthentication):
    _rider: Rider | None = None

    def authenticate(self, request):  # type: ignore[no-untyped-def]
        """As simplejwt's, once per request: a second call with the same header (DRF after
        the Idempotency-Key middleware) answers the first one's user and token."""
        header = self.get_header(request)
        if header is None:
            return None
        raw_token = self.get_raw_token(header)
        if raw_token is None:
            return None
        http: HttpRequest = getattr(request, "_request", request)
        done = getattr(http, _DONE_ATTR, None)
        if done is not None and done[0] == raw_token:
            return done[1], done[2]
        validated_token = self.get_validated_token(raw_token)
        self._rider = getattr(http, _RIDER_ATTR, None)
        try:
            user = self.get_user(validated_token)
        finally:
            self._rider = None
        setattr(http, _DONE_ATTR, (raw_token, user, validated_token))
        return user, validated_token

    def get_validated_token(self, raw_token):  # type: ignore[no-untyped-def]
        token = _cached_access_token(raw_token)
        if token is not None:
            return token
        token = super().get_validated_token(raw_token)
        _remember_verified(raw_token, token)
        return token

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
        rider, self._rider = self._rider, None  # a rider rides once
        user, revoked = load_user_with_scope(self.user_model, uid, dev, rider)
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
