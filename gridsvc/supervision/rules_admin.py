"""A ModelAdmin base for rule tables: every save and delete goes into the rules history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin

from .rules import client_ip, delete_rule, save_rule

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = admin.ModelAdmin


class RuleAdmin(_ModelAdmin):
    """Saves and deletes through :mod:`gridsvc.supervision.rules` (history + recompute)."""

    def save_model(self, request: Any, obj: Any, form: Any, change: bool) -> None:
        save_rule(request.user, obj, ip=client_ip(request))

    def delete_model(self, request: Any, obj: Any) -> None:
        delete_rule(request.user, obj, ip=client_ip(request))

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        for obj in queryset:
            delete_rule(request.user, obj, ip=client_ip(request))
