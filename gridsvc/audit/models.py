"""Audit: an append-only log of reads of sensitive personal information and of exports,
and the break-the-glass grants (临时授权) that allow unmasking.

The database itself refuses UPDATE and DELETE on ``audit_auditentry`` (trigger in migration
0002), so not even the application's own account can rewrite history.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEntry(models.Model):
    """One audited action: an unmasked read, an export, a grant, a login lockout ..."""

    class Action(models.TextChoices):
        UNMASKED_READ = "unmasked_read", "查看敏感信息"
        EXPORT = "export", "导出"
        GRANT = "grant", "临时授权"
        REVOKE_DEVICE = "revoke_device", "注销设备"
        OTHER = "other", "其他"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    action = models.CharField(max_length=32, choices=Action.choices)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    fields = models.JSONField(default=list, blank=True)
    reason = models.TextField(blank=True)
    grant = models.ForeignKey(
        "UnmaskGrant", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.object_type}:{self.object_id}"


class UnmaskGrant(models.Model):
    """A time-limited permission to see sensitive fields in clear, with a stated reason."""

    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="unmask_grants"
    )
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["member", "expires_at"])]

    @property
    def active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and self.created_at <= now < self.expires_at

    def __str__(self) -> str:
        return f"{self.member} until {self.expires_at:%H:%M}: {self.reason[:30]}"
