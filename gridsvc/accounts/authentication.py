"""JWT authentication that honours per-device revocation.

Tokens carry a ``dev`` claim (the Device row). A revoked device's access tokens stop working
at once and its refresh tokens cannot be refreshed.
"""

from __future__ import annotations

from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed

from .models import Device

DEVICE_CLAIM = "dev"


def device_revoked(device_pk: int | None) -> bool:
    if device_pk is None:
        return False
    return Device.objects.filter(pk=device_pk, revoked_at__isnull=False).exists()


class DeviceJWTAuthentication(JWTAuthentication):
    def get_user(self, validated_token):  # type: ignore[no-untyped-def]
        if device_revoked(validated_token.get(DEVICE_CLAIM)):
            raise AuthenticationFailed("this device has been signed out", code="device_revoked")
        return super().get_user(validated_token)
