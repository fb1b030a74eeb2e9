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
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt.serializers import (
    TokenObtainPairSerializer,
    TokenRefreshSerializer,
)
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from gridsvc.accounts.authentication import DEVICE_CLAIM, device_revoked
from gridsvc.accounts.models import Device
from gridsvc.accounts.throttle import failure_rate, was_throttled
from gridsvc.audit.models import AuditEntry
from gridsvc.audit.services import record


class DeviceTokenObtainSerializer(TokenObtainPairSerializer):
    device = serializers.CharField(
        max_length=64, required=False, default="default", help_text="stable id of this phone"
    )
    device_name = serializers.CharField(max_length=100, required=False, default="")

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
        return data


class DeviceTokenRefreshSerializer(TokenRefreshSerializer):
    def validate(self, attrs: dict) -> dict:
        token = RefreshToken(attrs["refresh"], verify=False)
        if device_revoked(token.get(DEVICE_CLAIM)):
            raise AuthenticationFailed("this device has been signed out", code="device_revoked")
        return super().validate(attrs)


class LoginView(TokenObtainPairView):
    """Log in with username (or phone) and password; returns access + refresh tokens."""

    serializer_class = DeviceTokenObtainSerializer
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    def post(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return super().post(request, *args, **kwargs)
        except AuthenticationFailed:
            if was_throttled(request):
                return Response(
                    {"detail": "too many failed logins from this address: try again later"},
                    status=status.HTTP_429_TOO_MANY_REQUESTS,
                    headers={"Retry-After": str(failure_rate()[1])},
                )
            locked = getattr(request, "axes_locked_out", False) or getattr(
                request._request, "axes_locked_out", False
            )
            if locked:
                return Response(
                    {
                        "detail": "too many failed logins: this account is locked on this "
                        "device for 15 minutes"
                    },
                    status=status.HTTP_429_TOO_MANY_REQUESTS,
                )
            raise


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
