"""API for the visits domain. `register(router)` adds viewsets under /api/v1/;
`urlpatterns` are extra /api/v1/ paths; `root_urlpatterns` are mounted at the site root."""

from __future__ import annotations

urlpatterns: list = []
root_urlpatterns: list = []


def register(router) -> None:  # type: ignore[no-untyped-def]
    """Register this domain's viewsets on the /api/v1/ router."""
