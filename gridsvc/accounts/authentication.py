"""JWT authentication that honours per-device revocation.

Tokens carry a ``dev`` claim (the Device row). A revoked device's access tokens stop working
at once and its refresh tokens cannot be refreshed.

Every API request authenticates, so the device check and the user lookup are one query: the
user row with an ``EXISTS`` on a revoked device (was two queries).
"""

from __future__ import annotations

from django.db.models import Exists
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


class DeviceJWTAuthentication(JWTAuthentication):
    def get_user(self, validated_token):  # type: ignore[no-untyped-def]
        device_pk = validated_token.get(DEVICE_CLAIM)
        if device_pk is None:
            return super().get_user(validated_token)
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as e:
            raise InvalidToken(_("Token contained no recognizable user identification")) from e
        try:
            user = self.user_model.objects.annotate(
                _gridsvc_device_revoked=Exists(
                    Device.objects.filter(pk=device_pk, revoked_at__isnull=False)
                )
            ).get(**{api_settings.USER_ID_FIELD: user_id})
        except self.user_model.DoesNotExist:
            # No such user (a deleted member's devices are gone too): the original order of
            # checks, with their exact errors.
            if device_revoked(device_pk):
                raise AuthenticationFailed(
                    "this device has been signed out", code="device_revoked"
                ) from None
            return super().get_user(validated_token)
        if user.__dict__.pop("_gridsvc_device_revoked"):
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
