"""Privacy API: break-the-glass unmask grants and the audit log."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from gridsvc.audit.models import AuditEntry, UnmaskGrant
from gridsvc.audit.services import audit_entries_visible, grant_unmask

from .scoping import request_scope


class GrantSerializer(serializers.ModelSerializer):
    minutes = serializers.IntegerField(write_only=True, default=30, min_value=1, max_value=60)
    active = serializers.BooleanField(read_only=True)

    class Meta:
        model = UnmaskGrant
        fields = ["id", "reason", "minutes", "created_at", "expires_at", "revoked_at", "active"]
        read_only_fields = ["created_at", "expires_at", "revoked_at"]


class GrantViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Your unmask grants (临时授权). Create one with a reason to use ``?unmask=1``."""

    serializer_class = GrantSerializer
    queryset = UnmaskGrant.objects.none()

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return UnmaskGrant.objects.none()
        return UnmaskGrant.objects.filter(member=self.request.user)

    def perform_create(self, serializer):  # type: ignore[no-untyped-def]
        from django.core.exceptions import PermissionDenied as DjangoDenied

        try:
            serializer.instance = grant_unmask(
                self.request.user,
                serializer.validated_data["reason"],
                serializer.validated_data.get("minutes", 30),
            )
        except DjangoDenied as exc:
            raise PermissionDenied(str(exc)) from None

    @extend_schema(request=None, responses=GrantSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):  # type: ignore[no-untyped-def]
        from django.utils import timezone

        grant = self.get_object()
        if grant.revoked_at is None:
            grant.revoked_at = timezone.now()
            grant.save(update_fields=["revoked_at"])
        return Response(GrantSerializer(grant).data)


class AuditEntrySerializer(serializers.ModelSerializer):
    actor_name = serializers.CharField(source="actor.__str__", read_only=True, default=None)

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "at",
            "actor",
            "actor_name",
            "action",
            "object_type",
            "object_id",
            "fields",
            "reason",
            "grant",
            "ip",
            "detail",
        ]


class AuditViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit log (append-only), for the street office and superusers: a street sees the
    entries of its own members and about its own residents, households and cases
    (:func:`gridsvc.audit.services.audit_entries_visible`)."""

    serializer_class = AuditEntrySerializer
    filterset_fields = ["action", "actor", "object_type", "object_id"]
    queryset = AuditEntry.objects.none()

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return AuditEntry.objects.none()
        scope = request_scope(self.request)
        if not (scope.everything or scope.street_ids):
            raise PermissionDenied("the audit log is for the street office")
        return audit_entries_visible(scope, AuditEntry.objects.select_related("actor"))
