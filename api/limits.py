"""``GET /api/v1/sync/limits/``: the limits a phone must respect, before it sends anything
(photo and attachment sizes and types, batch sizes, page sizes, token lifetimes, the
minimum app version, offline package coordinate systems). See docs/sync.md, Limits."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from gridsvc.sync.limits import transport_limits


class LimitsView(APIView):
    """What the server accepts: check a photo's size here before uploading it."""

    @extend_schema(
        operation_id="sync_limits",
        summary="Limits of uploads and sync (sizes, counts, lifetimes)",
        responses={200: OpenApiTypes.OBJECT},
        tags=["sync"],
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        return Response(transport_limits())
