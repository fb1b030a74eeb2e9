"""Accounts API: JWT login per device (rotating refresh tokens), logout, device list and
revocation. Login attempts are throttled per address and locked out per client (django-axes),
see :mod:`gridsvc.accounts.throttle`."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import AuthenticationFailed as TokenAuthFailed
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import (
    TokenObtainPairSerializer,
    TokenRefreshSerializer,
)
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from gridsvc.accounts.authentication import DEVICE_CLAIM, device_revoked
from gridsvc.accounts.lockout import login_refusal
from gridsvc.accounts.models import Device
from gridsvc.accounts.throttle import LoginRateThrottle
from gridsvc.accounts.tokens import (
    RefreshReused,
    decode_spent,
    record_spent,
    reissue_within_grace,
    token_lifetimes,
)
from gridsvc.audit.models import AuditEntry
from gridsvc.audit.services import record


class TokenPairSerializer(serializers.Serializer):
    """The answer of login and refresh (schema only)."""

    access = serializers.CharField(help_text="access token (Bearer), lives `expires_in` s")
    refresh = serializers.CharField(
        help_text="refresh token: store it before using `access`; spent by the next refresh"
    )
    device = serializers.IntegerField(help_text="the Device row these tokens belong to")
    token_type = serializers.ChoiceField(choices=["Bearer"])
    expires_in = serializers.IntegerField(help_text="seconds the access token lives")
    refresh_expires_in = serializers.IntegerField(help_text="seconds the refresh token lives")


class DeviceTokenObtainSerializer(TokenObtainPairSerializer):
    device = serializers.CharField(
        max_length=64, required=False, default="default", help_text="stable id of this phone"
    )
    device_name = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default=""
    )

    def validate(self, attrs: dict) -> dict:
        data = super().validate(attrs)  # authenticates (axes counts failures)
        # A revoked device is never re-enabled: signing in again with its id makes a new
        # device row, so tokens issued to the revoked one stay dead.
        device, _ = Device.objects.get_or_create(
            member=self.user,
            device_id=attrs.get("device") or "default",
            revoked_at__isnull=True,
        )
        device.name = attrs.get("device_name") or device.name
        device.last_login_at = timezone.now()
        device.save()
        refresh = self.get_token(self.user)
        refresh[DEVICE_CLAIM] = device.pk
        data["refresh"] = str(refresh)
        data["access"] = str(refresh.access_token)
        data["device"] = device.pk
        data["token_type"] = "Bearer"
        data.update(token_lifetimes(refresh))
        return data


class DeviceTokenRefreshSerializer(TokenRefreshSerializer):
    """Rotation with a grace window (:mod:`gridsvc.accounts.tokens`): the spent token sent
    again within ``REFRESH_REUSE_GRACE_SECONDS`` gets a fresh pair; later it revokes the
    device."""

    def validate(self, attrs: dict) -> dict:
        token = RefreshToken(attrs["refresh"], verify=False)
        if device_revoked(token.get(DEVICE_CLAIM)):
            raise TokenAuthFailed("this device has been signed out", code="device_revoked")
        try:
            data = super().validate(attrs)  # verifies signature, expiry, blacklist; rotates
        except TokenError:
            return self._spent_again(attrs["refresh"])
        record_spent(token)
        fresh = RefreshToken(data["refresh"], verify=False)
        return self._answer(fresh)

    def _spent_again(self, raw: str) -> dict:
        token = decode_spent(raw)
        if token is None:
            RefreshToken(raw)  # raises the ordinary TokenError (bad, expired, logged out)
        try:
            fresh = reissue_within_grace(token)
        except RefreshReused:
            raise TokenAuthFailed(
                "this refresh token was already used: the device has been signed out, log in again",
                code="refresh_reused",
            ) from None
        if fresh is None:
            RefreshToken(raw)
        return self._answer(fresh)

    @staticmethod
    def _answer(refresh: RefreshToken) -> dict:
        return {
            "access": str(refresh.access_token),
            "refresh": str(refresh),
            "device": refresh.get(DEVICE_CLAIM),
            "token_type": "Bearer",
            **token_lifetimes(refresh),
        }


@extend_schema(responses={200: TokenPairSerializer})
class LoginView(TokenObtainPairView):
    """Log in with username (or phone) and password; returns access + refresh tokens."""

    serializer_class = DeviceTokenObtainSerializer
    # requests per address, successes included (DRF rate "login"), counted atomically
    throttle_classes = [LoginRateThrottle]

    def post(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return super().post(request, *args, **kwargs)
        except AuthenticationFailed:
            # refused unchecked (the address throttle, or axes' lockout of this username on
            # this client — also the failure that just locked it): 429 with the real wait
            refusal = login_refusal(request)
            if refusal is None:
                raise
            return Response(
                {"detail": refusal.detail},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers=refusal.headers,
            )


@extend_schema(responses={200: TokenPairSerializer})
class RefreshView(TokenRefreshView):
    """Exchange a refresh token for a new pair (the old refresh token is blacklisted)."""

    serializer_class = DeviceTokenRefreshSerializer


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class LogoutView(APIView):
    """Blacklist a refresh token (log out this device's session)."""

    permission_classes = [AllowAny]

    @extend_schema(request=LogoutSerializer, responses={205: None})
    def post(self, request):  # type: ignore[no-untyped-def]
        ser = LogoutSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            RefreshToken(ser.validated_data["refresh"]).blacklist()
        except Exception:
            raise serializers.ValidationError({"refresh": "not a valid refresh token"}) from None
        return Response(status=status.HTTP_205_RESET_CONTENT)


class DeviceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = ["id", "device_id", "name", "created_at", "last_login_at", "revoked_at"]
        read_only_fields = fields


class DeviceViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Your devices; revoke one to sign it out everywhere (a lost phone)."""

    serializer_class = DeviceSerializer
    queryset = Device.objects.none()

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Device.objects.none()
        return Device.objects.filter(member=self.request.user)

    @extend_schema(request=None, responses=DeviceSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):  # type: ignore[no-untyped-def]
        device = self.get_object()
        if device.revoked_at is None:
            device.revoked_at = timezone.now()
            device.save(update_fields=["revoked_at"])
            record(
                request.user,
                AuditEntry.Action.REVOKE_DEVICE,
                object_type="device",
                object_id=device.pk,
            )
        return Response(DeviceSerializer(device).data)
