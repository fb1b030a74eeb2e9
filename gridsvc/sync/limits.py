"""The limits a phone must respect, in one place, so that an app can check before it sends
(a 6 MB photo is refused before a byte of it goes over a poor network).

Served at ``GET /api/v1/sync/limits/`` (:mod:`api.limits`); the figures are read from the
modules that enforce them, so the answer cannot drift from the checks.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone


def transport_limits() -> dict:
    """Every size, count and lifetime limit of the sync protocol (docs/sync.md, Limits)."""
    from api.cases import MAX_PHOTO_BYTES as CASE_FILE_BYTES
    from api.pagination import MAX_PAGE_SIZE
    from geo.crs import SUPPORTED_CRS
    from gridsvc.layers import offline
    from gridsvc.layers.services import TILE_CRS
    from gridsvc.sync.idempotency import ttl
    from gridsvc.sync.versions import minimum_version
    from gridsvc.uploads import DOCUMENT_TYPES, IMAGE_TYPES
    from gridsvc.visits import ingest
    from gridsvc.visits.sync import FEED_LIMIT

    jwt = getattr(settings, "SIMPLE_JWT", {})
    access = jwt.get("ACCESS_TOKEN_LIFETIME")
    refresh = jwt.get("REFRESH_TOKEN_LIFETIME")
    minimum = minimum_version()
    return {
        "server_time": timezone.now().isoformat(timespec="milliseconds"),
        "request_body_max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
        "request_content_encodings": ["gzip"],
        "visit_batch_max_items": ingest.MAX_BATCH,
        "visit_photo": {
            "max_bytes": ingest.MAX_PHOTO_BYTES,
            "max_per_visit": ingest.MAX_PHOTOS,
            "content_types": ["image/jpeg", "image/png"],
        },
        "visit_findings_max": ingest.MAX_FINDINGS,
        "case_photo": {"max_bytes": CASE_FILE_BYTES, "content_types": sorted(IMAGE_TYPES)},
        "case_attachment": {
            "max_bytes": CASE_FILE_BYTES,
            "content_types": sorted({**IMAGE_TYPES, **DOCUMENT_TYPES}),
        },
        "feed_limit_max": FEED_LIMIT,
        "page_size": {"default": settings.REST_FRAMEWORK.get("PAGE_SIZE"), "max": MAX_PAGE_SIZE},
        "idempotency": {"key_max_length": 255, "ttl_seconds": int(ttl().total_seconds())},
        "tokens": {
            "access_seconds": int(access.total_seconds()) if access else None,
            "refresh_seconds": int(refresh.total_seconds()) if refresh else None,
        },
        "min_app_version": minimum,
        "coordinate_systems": list(SUPPORTED_CRS),
        "offline_package": {
            "crs": list(TILE_CRS),
            "zooms": [offline.ZOOMS[0], offline.ZOOMS[-1]],
            "layers": list(offline.LAYERS),
            "max_tiles": offline.MAX_TILES,
            "range_requests": True,
        },
    }
