"""Territory scoping for API views: every queryset goes through the caller's scope."""

from __future__ import annotations

from django.db.models import QuerySet

from gridsvc.chain.scope import Scope, scope_for


def request_scope(request) -> Scope:  # type: ignore[no-untyped-def]
    """The caller's scope, computed once per request."""
    scope = getattr(request, "_gridsvc_scope", None)
    if scope is None:
        scope = scope_for(request.user)
        request._gridsvc_scope = scope
    return scope


class ScopedQuerysetMixin:
    """ViewSet mixin: ``base_queryset`` is filtered by the caller's territory scope.

    Objects outside the scope are simply not there: lists omit them, details are 404.
    """

    base_queryset: QuerySet

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return self.base_queryset.none()
        return request_scope(self.request).filter(self.base_queryset.all())
