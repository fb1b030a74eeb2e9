"""Refresh-token rotation with a grace window for lost responses (刷新令牌宽限期).

Refresh tokens rotate: each refresh spends the old token (blacklist) and hands out a new
pair. A phone on a poor network may never see the answer, so it sends the spent token again:

- within ``GRIDSVC["REFRESH_REUSE_GRACE_SECONDS"]`` (60 s) of the rotation it is a retry and
  gets a fresh working pair for the same device (no lock-out);
- later it is treated as theft (someone else holds a copy): the device is revoked, so every
  access and refresh token of that device dies at once, and the answer is 401
  ``refresh_reused``. The member logs in again on their phone.

A token spent by logout is never given a pair again (401 ``token_not_valid``).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenBackendError, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import RefreshToken

from .authentication import DEVICE_CLAIM
from .models import Device, SpentRefreshToken


class RefreshReused(Exception):
    """A spent refresh token came back after the grace window: the device was revoked."""


def grace_seconds() -> int:
    return int(getattr(settings, "GRIDSVC", {}).get("REFRESH_REUSE_GRACE_SECONDS", 60))


def token_lifetimes(refresh: RefreshToken | None = None) -> dict[str, int]:
    """``expires_in`` (access) and ``refresh_expires_in`` in seconds, for a token answer."""
    access = int(api_settings.ACCESS_TOKEN_LIFETIME.total_seconds())
    if refresh is not None and "exp" in refresh.payload:
        left = int(refresh.payload["exp"] - timezone.now().timestamp())
    else:
        left = int(api_settings.REFRESH_TOKEN_LIFETIME.total_seconds())
    return {"expires_in": access, "refresh_expires_in": max(left, 0)}


def record_spent(token: RefreshToken) -> None:
    """Remember that ``token`` was spent by rotation now (idempotent for racing retries)."""
    device_pk = token.get(DEVICE_CLAIM)
    SpentRefreshToken.objects.get_or_create(
        jti=token[api_settings.JTI_CLAIM],
        defaults={
            "device_id": device_pk if Device.objects.filter(pk=device_pk).exists() else None,
            "spent_at": timezone.now(),
        },
    )


def decode_spent(raw: str) -> RefreshToken | None:
    """The refresh token ``raw`` if its signature and expiry are good but it is blacklisted;
    None for any other token (the caller re-raises its own error)."""
    try:
        token = RefreshToken(raw, verify=False)
        token.get_token_backend().decode(raw, verify=True)  # signature and expiry
        token.check_exp()
    except (TokenError, TokenBackendError):
        return None
    if token.get(api_settings.TOKEN_TYPE_CLAIM) != "refresh":
        return None
    if not BlacklistedToken.objects.filter(token__jti=token.get(api_settings.JTI_CLAIM)).exists():
        return None
    return token


def reissue_within_grace(token: RefreshToken) -> RefreshToken | None:
    """A fresh refresh token for a spent ``token`` re-sent within the grace window.

    None when the token was not spent by rotation (e.g. logout). Raises
    :class:`RefreshReused` (after revoking the device) when the window has passed.
    """
    spent = SpentRefreshToken.objects.filter(jti=token[api_settings.JTI_CLAIM]).first()
    if spent is None:
        return None
    if timezone.now() - spent.spent_at > timedelta(seconds=grace_seconds()):
        revoke_for_reuse(token)
        raise RefreshReused
    user_model = get_user_model()
    user = user_model.objects.filter(
        **{api_settings.USER_ID_FIELD: token[api_settings.USER_ID_CLAIM]}
    ).first()
    if user is None or not api_settings.USER_AUTHENTICATION_RULE(user):
        return None
    fresh = RefreshToken.for_user(user)
    if token.get(DEVICE_CLAIM) is not None:
        fresh[DEVICE_CLAIM] = token[DEVICE_CLAIM]
    return fresh


def revoke_for_reuse(token: RefreshToken) -> None:
    """Theft: revoke the device the spent token belongs to (all its tokens die)."""
    from gridsvc.audit.models import AuditEntry
    from gridsvc.audit.services import record

    device = Device.objects.filter(pk=token.get(DEVICE_CLAIM), revoked_at__isnull=True).first()
    if device is None:
        return
    device.revoked_at = timezone.now()
    device.save(update_fields=["revoked_at"])
    record(
        device.member,
        AuditEntry.Action.REVOKE_DEVICE,
        object_type="device",
        object_id=device.pk,
        reason="refresh token re-used after the grace window (possible theft)",
    )
