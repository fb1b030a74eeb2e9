"""Accounts: members (成员) of the grid organisation who log in.

A member is anyone who holds or has held a position in the 五位一体 chain (community cadre,
grid member 网格员, property manager 物业经理, building head 楼长, unit head 单元长 ...) or
works at the street office. What a member may see follows from their positions
(see :mod:`gridsvc.chain.scope`).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class Member(AbstractUser):
    """A user account. ``display_name`` is the person's name as shown in the app."""

    display_name = models.CharField(max_length=64, blank=True)
    phone = models.CharField(max_length=20, blank=True)

    class Meta:
        verbose_name = "member"

    def __str__(self) -> str:
        return self.display_name or self.username


class Device(models.Model):
    """A phone or browser a member logged in from; revoking it ends its tokens (注销设备).

    Revocation is final: a revoked row is never re-enabled. Signing in again with the same
    ``device_id`` makes a new row (the unique constraint covers live devices only), so tokens
    issued to the revoked row stay dead.
    """

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="devices")
    device_id = models.CharField(max_length=64)
    name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_login_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["member", "device_id"],
                condition=models.Q(revoked_at__isnull=True),
                name="device_unique_live",
            )
        ]

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def __str__(self) -> str:
        return f"{self.member} / {self.name or self.device_id}"


class SpentRefreshToken(models.Model):
    """A refresh token spent by rotation (换发): when, and for which device.

    A phone whose refresh response was lost sends the spent token again. Within
    ``GRIDSVC["REFRESH_REUSE_GRACE_SECONDS"]`` of the rotation that is a retry and gets a
    working pair; later it is treated as theft and the device is revoked
    (:mod:`gridsvc.accounts.tokens`). A token blacklisted by logout has no row here.
    """

    jti = models.CharField(max_length=255, unique=True)
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.CASCADE)
    spent_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.jti} @ {self.spent_at:%Y-%m-%d %H:%M:%S}"


class LoginThrottleCount(models.Model):
    """Password checks counted against one client address (登录限流计数), shared by every
    worker (:mod:`gridsvc.accounts.throttle`).

    One row per ``(scope, address, period)``: ``current`` counts in the fixed window
    ``window_number`` (``time // period``), ``previous`` in the window before it. A row is
    only ever changed by one ``INSERT … ON CONFLICT … DO UPDATE … RETURNING`` (the window
    rolls over inside the statement) or one ``UPDATE``, each under the row's lock, so two
    workers never both read 7 and write 8. ``stale_after`` (seconds since the epoch): from
    then on the row counts nothing and may be pruned.
    """

    scope = models.CharField(max_length=16)
    address = models.CharField(max_length=100)
    period = models.PositiveIntegerField()
    window_number = models.BigIntegerField()
    current = models.PositiveIntegerField(default=0)
    previous = models.PositiveIntegerField(default=0)
    stale_after = models.BigIntegerField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "address", "period"], name="login_throttle_count_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.address}: {self.previous}+{self.current}"
