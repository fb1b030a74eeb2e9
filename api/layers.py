"""Map layers API. Rules and SQL live in :mod:`gridsvc.layers.services`; views translate.

Site root (``root_urlpatterns``):

- ``GET /tiles/{layer}/{z}/{x}/{y}.mvt`` — vector tile of ``grids``, ``compounds``,
  ``buildings``, ``households``, ``places``, ``cases``, ``visits`` or ``heatmap`` (case hexagon
  bins; same filters as the GeoJSON heatmap). ETag/Last-Modified, 304 on If-None-Match /
  If-Modified-Since, gzip when accepted.
- ``GET /tiles/{layer}.json`` — TileJSON 3.0.0 (query string passed on to the tile URLs).
- ``/ogc/`` — OGC API - Features Part 1 Core (read-only): landing page, ``conformance``,
  ``collections``, ``collections/{id}``, ``collections/{id}/items`` (bbox, limit, offset,
  datetime, the layer's filters), ``collections/{id}/items/{fid}``.

Under /api/v1/ (``urlpatterns``):

- ``GET layers/`` and ``GET layers/{layer}/`` — GeoJSON with ``bbox``, ``crs``, ``zoom`` or
  ``tolerance`` (simplification), the layer's filters, ``page``/``page_size``.
- ``GET heatmap/cases/`` — hexagon bins with counts; ``GET choropleth/grids/`` — per-grid figures.
- ``GET offline/grids/{id}/`` — offline package metadata; ``.../package`` — the zip
  (If-None-Match → 304).

Every request is limited to the caller's territory; tiles and OGC API also accept HTTP Basic
(for GDAL/QGIS), besides the JWT bearer token and the web page's session.
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils import timezone
from django.utils.http import http_date, parse_http_date_safe
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.authentication import BasicAuthentication
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from gridsvc.layers import offline
from gridsvc.layers import services as S
from gridsvc.layers.models import OfflinePackage
from gridsvc.territory.models import Grid

from .limits import LimitsView
from .pagination import GeoPagination
from .schema import OfflinePackageMetaSerializer
from .scoping import request_scope

MVT = "application/vnd.mapbox-vector-tile"
GEOJSON = "application/geo+json"
OGC_LIMIT_DEFAULT = 10
OGC_LIMIT_MAX = 10_000
OGC_CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def _q(
    name: str, description: str, type_: Any = str, enum: list[str] | None = None
) -> OpenApiParameter:
    return OpenApiParameter(name, type_, OpenApiParameter.QUERY, description=description, enum=enum)


CRS_PARAM = _q(
    "crs",
    "coordinates of bbox and output: wgs84 (default), gcj02, bd09, cgcs2000",
    enum=["wgs84", "gcj02", "bd09", "cgcs2000"],
)
BBOX_PARAM = _q("bbox", "minlon,minlat,maxlon,maxlat (in crs)")
TILE_CRS_PARAM = _q(
    "crs",
    "tile grid and coordinates: wgs84 (default; cgcs2000 = wgs84) or gcj02 (web mercator over "
    "GCJ-02, for Amap/Tencent basemaps); anything else is a 400",
    enum=list(S.TILE_CRS),
)
WINDOW_PARAMS = [
    _q("since", "on/after: date YYYY-MM-DD or ISO date-time (alias: from)"),
    _q("until", "on/before: a date is inclusive (alias: to)"),
    _q("from", "alias of since"),
    _q("to", "alias of until"),
]
CASE_FILTER_PARAMS = [
    *WINDOW_PARAMS,
    _q("category", "category codes or ids, comma-separated (sub-categories included)"),
    _q("status", "case states, comma-separated, or open / done (alias: state)"),
    _q("state", "alias of status"),
    _q("kind", "dispute or hazard", enum=["dispute", "hazard"]),
]


def _layer_filter_params() -> list[OpenApiParameter]:
    seen: dict[str, OpenApiParameter] = {p.name: p for p in CASE_FILTER_PARAMS}
    for layer in S.LAYERS.values():
        for name, desc in layer.filters.items():
            if name not in seen:
                t = bool if name == "far_off" else (str if name in ("code", "kind") else int)
                seen[name] = _q(name, f"{desc} (layers: filter where it applies)", t)
    return list(seen.values())


class LayersView(APIView):
    """JSON out whatever the Accept header says (tiles and files are plain HttpResponses);
    :class:`~gridsvc.layers.services.ParamError` → 400 naming the parameter (api.errors)."""

    renderer_classes = [JSONRenderer]

    def perform_content_negotiation(self, request, force=False):  # type: ignore[no-untyped-def]
        return (JSONRenderer(), JSONRenderer.media_type)

    def initial(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().initial(request, *args, **kwargs)
        for key, value in request.query_params.lists():
            if any("\x00" in v for v in value) or "\x00" in key:
                raise ValidationError({key.replace("\x00", ""): "invalid character"})


class GisClientView(LayersView):
    """Also HTTP Basic, for GIS clients (GDAL/QGIS) that cannot fetch a JWT."""

    authentication_classes = [*api_settings.DEFAULT_AUTHENTICATION_CLASSES, BasicAuthentication]


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags


# ====================================================================== tiles
class TileView(GisClientView):
    @extend_schema(
        operation_id="tile",
        summary="Vector tile (MVT) of a layer",
        description="Built in PostGIS (ST_AsMVT), limited to your territory, cached until the "
        "data under it changes. Below a layer's minzoom the tile is empty. Case layers and the "
        "heatmap take the case filters.",
        parameters=[
            OpenApiParameter("layer", str, OpenApiParameter.PATH, enum=list(S.TILE_LAYERS)),
            OpenApiParameter("z", int, OpenApiParameter.PATH, description=f"0..{S.MAX_ZOOM}"),
            OpenApiParameter("x", int, OpenApiParameter.PATH),
            OpenApiParameter("y", int, OpenApiParameter.PATH),
            TILE_CRS_PARAM,
            *CASE_FILTER_PARAMS,
            _q("grid", "visits/cases: only this grid", int),
            _q("far_off", "visits: only far-off visits (true/false)", bool),
        ],
        responses={
            (200, MVT): OpenApiTypes.BINARY,
            304: OpenApiResponse(description="not modified (If-None-Match / If-Modified-Since)"),
        },
        tags=["layers"],
    )
    def get(self, request, layer: str, z: int, x: int, y: int):  # type: ignore[no-untyped-def]
        if layer not in S.TILE_LAYERS:
            raise NotFound({"layer": f"unknown layer: one of {', '.join(S.TILE_LAYERS)}"})
        S.check_tile(z, x, y)
        ldef = S.LAYERS.get(layer)
        q = S.parse_layer_query(ldef, request.query_params)
        q.crs = S.parse_tile_crs(request.query_params.get("crs"))
        tile = S.get_tile(layer, z, x, y, request_scope(request), q)
        etag = f'"{tile.etag}"'
        headers = {
            "ETag": etag,
            "Last-Modified": http_date(tile.created_at.timestamp()),
            "Cache-Control": f"private, max-age={tile.max_age}",
            "Vary": "Accept-Encoding, Authorization, Cookie",
            "X-Tile-Cache": "hit" if tile.cached else "miss",
            "X-Tile-Features": str(tile.features),
        }
        inm = request.headers.get("If-None-Match")
        ims = parse_http_date_safe(request.headers.get("If-Modified-Since") or "")
        if _etag_matches(inm, etag) or (
            not inm and ims is not None and int(tile.created_at.timestamp()) <= ims
        ):
            resp = HttpResponse(status=304)
        elif tile.gz and "gzip" in request.headers.get("Accept-Encoding", ""):
            resp = HttpResponse(tile.gz, content_type=MVT)
            resp["Content-Encoding"] = "gzip"
        else:
            resp = HttpResponse(tile.data, content_type=MVT)
        for k, v in headers.items():
            resp[k] = v
        return resp


class TileJSONView(GisClientView):
    @extend_schema(
        operation_id="tilejson",
        summary="TileJSON 3.0.0 of a layer",
        parameters=[
            OpenApiParameter("layer", str, OpenApiParameter.PATH, enum=list(S.TILE_LAYERS)),
            TILE_CRS_PARAM,
        ],
        responses={200: OpenApiTypes.OBJECT},
        tags=["layers"],
    )
    def get(self, request, layer: str):  # type: ignore[no-untyped-def]
        if layer not in S.TILE_LAYERS:
            raise NotFound({"layer": f"unknown layer: one of {', '.join(S.TILE_LAYERS)}"})
        S.parse_layer_query(S.LAYERS.get(layer), request.query_params)  # validate the filters
        crs = S.parse_tile_crs(request.query_params.get("crs"))
        base = request.build_absolute_uri("/tiles/")
        return Response(
            S.tilejson(
                layer,
                request_scope(request),
                base,
                request.META.get("QUERY_STRING", ""),
                crs=crs,
            )
        )


# ====================================================================== GeoJSON layers
class LayerListView(LayersView):
    @extend_schema(
        operation_id="layers_list",
        summary="Map layers",
        responses={200: OpenApiTypes.OBJECT},
        tags=["layers"],
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        out = []
        for layer in S.LAYERS.values():
            out.append(
                {
                    "id": layer.name,
                    "title": layer.title,
                    "description": layer.description,
                    "geometry_type": layer.geometry_type,
                    "fields": layer.fields,
                    "filters": layer.filters,
                    "geojson": request.build_absolute_uri(f"/api/v1/layers/{layer.name}/"),
                    "tiles": request.build_absolute_uri(
                        f"/tiles/{layer.name}/{{z}}/{{x}}/{{y}}.mvt"
                    ),
                    "tilejson": request.build_absolute_uri(f"/tiles/{layer.name}.json"),
                    "ogc": request.build_absolute_uri(f"/ogc/collections/{layer.name}"),
                }
            )
        return Response({"layers": out})


class LayerFeaturesView(LayersView):
    pagination_class = GeoPagination

    @extend_schema(
        operation_id="layer_features",
        summary="A layer as GeoJSON (bbox, filters, paging, simplification, crs)",
        parameters=[
            OpenApiParameter("layer", str, OpenApiParameter.PATH, enum=list(S.LAYERS)),
            BBOX_PARAM,
            CRS_PARAM,
            _q("zoom", "simplify for this web-map zoom (half a pixel)", float),
            _q("tolerance", "simplification tolerance in metres (overrides zoom)", float),
            _q("page", "page number", int),
            _q("page_size", "features per page (≤ 500)", int),
            *_layer_filter_params(),
        ],
        responses={200: OpenApiTypes.OBJECT},
        tags=["layers"],
    )
    def get(self, request, layer: str):  # type: ignore[no-untyped-def]
        if layer not in S.LAYERS:
            raise NotFound({"layer": f"unknown layer: one of {', '.join(S.LAYERS)}"})
        ldef = S.LAYERS[layer]
        params = request.query_params
        crs = S.parse_crs(params.get("crs"))
        bbox = S.parse_bbox(params.get("bbox"), crs)
        zoom = S.parse_float(params.get("zoom"), "zoom", 0, S.MAX_ZOOM)
        tol_m = S.parse_float(params.get("tolerance"), "tolerance", 0, 10_000)
        q = S.parse_layer_query(ldef, params)
        qs = S.features_queryset(
            ldef, request_scope(request), q, bbox=bbox, tolerance=S.tolerance_deg(zoom, tol_m)
        )
        paginator = self.pagination_class()
        rows = paginator.paginate_queryset(qs, request, view=self)
        features = [S.row_to_feature(r, ldef.fields, crs) for r in rows or []]
        resp = paginator.get_paginated_response({"type": "FeatureCollection", "features": features})
        resp.data["crs"] = crs
        return resp


# ====================================================================== heatmap, choropleth
class HeatmapView(LayersView):
    @extend_schema(
        operation_id="heatmap_cases",
        summary="Case heatmap: hexagon bins with counts (GeoJSON)",
        description="Cells of ST_HexagonGrid (EPSG:3857, edge from the zoom) touching bbox that "
        "hold cases of your territory in the window; count = cases in the whole cell.",
        parameters=[
            BBOX_PARAM,
            _q("zoom", f"web-map zoom 0..{S.MAX_ZOOM} (hexagon size; default 15)", float),
            CRS_PARAM,
            *CASE_FILTER_PARAMS,
        ],
        responses={200: OpenApiTypes.OBJECT},
        tags=["layers"],
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        params = request.query_params
        crs = S.parse_crs(params.get("crs"))
        scope = request_scope(request)
        bbox = S.parse_bbox(params.get("bbox"), crs) or S.scope_extent(scope)
        zoom = S.parse_float(params.get("zoom"), "zoom", 0, S.MAX_ZOOM)
        q = S.parse_layer_query(None, params)
        if bbox is None:  # nothing in the territory
            bbox = (0.0, 0.0, 0.0, 0.0)
        data = S.heatmap(scope, q, bbox, 15.0 if zoom is None else zoom, crs)
        data["bbox"] = list(bbox)
        return Response(data)


class ChoroplethView(LayersView):
    @extend_schema(
        operation_id="choropleth_grids",
        summary="Per-grid figures for a choropleth (GeoJSON grids)",
        description="open, overdue (open and past due), resolved, resolution_rate, visits_done "
        "per grid of your territory, over cases reported (and visits made) in the window.",
        parameters=[
            CRS_PARAM,
            _q("zoom", "simplify the grid outlines for this zoom", float),
            _q("tolerance", "simplification tolerance in metres", float),
            *CASE_FILTER_PARAMS,
        ],
        responses={200: OpenApiTypes.OBJECT},
        tags=["layers"],
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        params = request.query_params
        crs = S.parse_crs(params.get("crs"))
        zoom = S.parse_float(params.get("zoom"), "zoom", 0, S.MAX_ZOOM)
        tol_m = S.parse_float(params.get("tolerance"), "tolerance", 0, 10_000)
        q = S.parse_layer_query(None, params)
        return Response(
            S.choropleth(request_scope(request), q, tolerance=S.tolerance_deg(zoom, tol_m), crs=crs)
        )


# ====================================================================== offline packages
def _package_grid(request, grid_id: int) -> Grid:  # type: ignore[no-untyped-def]
    scope = request_scope(request)
    grid = get_object_or_404(scope.filter(Grid.objects.select_related("community")), pk=grid_id)
    if not S.covers_grid(scope, grid):
        raise PermissionDenied("offline packages are for members who hold the whole grid")
    return grid


def _package_meta(request, package: OfflinePackage, queued: bool) -> dict:  # type: ignore[no-untyped-def]
    grid = package.grid
    ready = bool(package.file)
    query = "" if package.crs == "wgs84" else f"?crs={package.crs}"
    return {
        "grid": grid.id,
        "crs": package.crs,
        "code": grid.code,
        "name": grid.name,
        "status": package.status,
        "stale": offline.is_stale(grid.id),
        "build_queued": queued,
        "size": package.size if ready else None,
        "etag": package.etag if ready else None,
        "built_at": package.built_at.isoformat() if package.built_at else None,
        "build_ms": package.build_ms if ready else None,
        "zooms": [package.minzoom, package.maxzoom] if ready else None,
        "layers": list(offline.LAYERS),
        "tiles": package.tiles if ready else None,
        "households": package.households if ready else None,
        "download": request.build_absolute_uri(f"/api/v1/offline/grids/{grid.id}/package{query}"),
        "error": package.error or None,
    }


PACKAGE_CRS_PARAM = _q(
    "crs",
    "wgs84 (default) or gcj02 (tiles in the GCJ-02 web-mercator grid and household points in "
    "GCJ-02, for Amap/Tencent basemaps): a package of its own with its own ETag",
    enum=list(S.TILE_CRS),
)


class OfflineMetaView(LayersView):
    @extend_schema(
        operation_id="offline_grid",
        summary="Offline package of a grid: metadata (asks for a build when missing or stale)",
        parameters=[PACKAGE_CRS_PARAM],
        responses={200: OfflinePackageMetaSerializer},
        tags=["layers"],
    )
    def get(self, request, grid_id: int):  # type: ignore[no-untyped-def]
        crs = S.parse_tile_crs(request.query_params.get("crs"))
        grid = _package_grid(request, grid_id)
        package, queued = offline.request_package(grid, crs)
        return Response(_package_meta(request, package, queued))


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """``Range: bytes=a-b`` (one range; ``a-`` and ``-n`` too) → (first, last) inclusive;
    None when absent or not one byte range (the whole body is sent, RFC 9110 §14.2); False
    when unsatisfiable (416)."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first_s == "":  # the last n bytes
            n = int(last_s)
            if n <= 0:
                return False
            return max(0, size - n), size - 1
        first = int(first_s)
        last = int(last_s) if last_s else size - 1
    except ValueError:
        return None
    if first < 0 or (last_s and last < first):
        return None
    if first >= size:
        return False
    return first, min(last, size - 1)


def _file_slice(f, first: int, length: int, chunk: int = 64 * 1024):  # type: ignore[no-untyped-def]
    try:
        f.seek(first)
        left = length
        while left > 0:
            data = f.read(min(chunk, left))
            if not data:
                break
            left -= len(data)
            yield data
    finally:
        f.close()


class OfflinePackageView(LayersView):
    @extend_schema(
        operation_id="offline_grid_package",
        summary="Offline package of a grid: the zip (MBTiles + households GeoJSON)",
        description="ETag; If-None-Match → 304. 202 while the first build is queued. "
        "Content-Length always; resume with Range: bytes=N- (206 + Content-Range), with "
        "If-Range: <etag> so that a rebuilt package comes whole (200). Never gzipped again "
        "(a zip is compressed already).",
        parameters=[
            PACKAGE_CRS_PARAM,
            OpenApiParameter("Range", str, OpenApiParameter.HEADER, description="bytes=N-"),
            OpenApiParameter("If-Range", str, OpenApiParameter.HEADER, description="the ETag"),
        ],
        responses={
            (200, "application/zip"): OpenApiTypes.BINARY,
            (206, "application/zip"): OpenApiTypes.BINARY,
            202: OpenApiTypes.OBJECT,
            304: OpenApiResponse(description="not modified"),
            416: OpenApiResponse(description="range not satisfiable (Content-Range: bytes */size)"),
        },
        tags=["layers"],
    )
    def get(self, request, grid_id: int):  # type: ignore[no-untyped-def]
        crs = S.parse_tile_crs(request.query_params.get("crs"))
        grid = _package_grid(request, grid_id)
        package, queued = offline.request_package(grid, crs)
        if not package.file:
            resp = Response(_package_meta(request, package, queued), status=202)
            resp["Retry-After"] = "10"
            return resp
        last_modified = http_date(package.built_at.timestamp())
        headers = {
            "ETag": package.etag,
            "Cache-Control": "private, no-cache",
            "Last-Modified": last_modified,
            "Accept-Ranges": "bytes",
            "X-Package-Stale": "1" if offline.is_stale(grid.id) else "0",
            "X-Package-Crs": package.crs,
        }
        size = package.size
        rng = _byte_range(request.headers.get("Range"), size)
        if_range = (request.headers.get("If-Range") or "").strip()
        if rng is not None and if_range and if_range not in (package.etag, last_modified):
            rng = None  # the package changed since the part the phone holds: send it whole
        suffix = "" if crs == "wgs84" else f"-{crs}"
        if _etag_matches(request.headers.get("If-None-Match"), package.etag):
            resp = HttpResponse(status=304)
        elif rng is False:
            resp = HttpResponse(status=416)
            resp["Content-Range"] = f"bytes */{size}"
        elif rng is not None:
            first, last = rng
            resp = StreamingHttpResponse(
                _file_slice(package.file.open("rb"), first, last - first + 1),
                status=206,
                content_type="application/zip",
            )
            resp["Content-Range"] = f"bytes {first}-{last}/{size}"
            resp["Content-Length"] = str(last - first + 1)
            resp["Content-Disposition"] = f'attachment; filename="grid-{grid.code}{suffix}.zip"'
        else:
            resp = FileResponse(
                package.file.open("rb"),
                content_type="application/zip",
                as_attachment=True,
                filename=f"grid-{grid.code}{suffix}.zip",
            )
            resp["Content-Length"] = str(size)
        for k, v in headers.items():
            resp[k] = v
        return resp


# ====================================================================== OGC API - Features
def _ogc_base(request) -> str:  # type: ignore[no-untyped-def]
    return request.build_absolute_uri("/ogc")


def _collection(request, layer: S.LayerDef, scope) -> dict:  # type: ignore[no-untyped-def]
    base = _ogc_base(request)
    ext = S.scope_extent(scope) or (-180.0, -90.0, 180.0, 90.0)
    out: dict[str, Any] = {
        "id": layer.name,
        "title": layer.title,
        "description": layer.description,
        "itemType": "feature",
        "crs": [CRS84],
        "extent": {"spatial": {"bbox": [[round(v, 7) for v in ext]], "crs": CRS84}},
        "links": [
            {
                "href": f"{base}/collections/{layer.name}",
                "rel": "self",
                "type": "application/json",
                "title": layer.title,
            },
            {
                "href": f"{base}/collections/{layer.name}/items",
                "rel": "items",
                "type": GEOJSON,
                "title": f"{layer.title} items",
            },
            {
                "href": request.build_absolute_uri(f"/tiles/{layer.name}.json"),
                "rel": "alternate",
                "type": "application/json",
                "title": "TileJSON (vector tiles)",
            },
        ],
    }
    if layer.temporal:
        out["extent"]["temporal"] = {
            "interval": [[None, None]],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    return out


class OGCLandingView(GisClientView):
    @extend_schema(
        operation_id="ogc_landing",
        summary="OGC API - Features: landing page",
        responses={200: OpenApiTypes.OBJECT},
        tags=["ogc"],
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        base = _ogc_base(request)
        return Response(
            {
                "title": "gridsvc OGC API - Features",
                "description": "Map layers of your territory (read-only). Authenticate with "
                "the JWT bearer token, the web session or HTTP Basic.",
                "links": [
                    {
                        "href": f"{base}/",
                        "rel": "self",
                        "type": "application/json",
                        "title": "this document",
                    },
                    {
                        "href": request.build_absolute_uri("/api/schema/"),
                        "rel": "service-desc",
                        "type": "application/vnd.oai.openapi+json;version=3.0",
                        "title": "the API definition",
                    },
                    {
                        "href": request.build_absolute_uri("/api/docs/"),
                        "rel": "service-doc",
                        "type": "text/html",
                        "title": "the API documentation",
                    },
                    {
                        "href": f"{base}/conformance",
                        "rel": "conformance",
                        "type": "application/json",
                        "title": "conformance classes",
                    },
                    {
                        "href": f"{base}/collections",
                        "rel": "data",
                        "type": "application/json",
                        "title": "collections",
                    },
                ],
            }
        )


class OGCConformanceView(GisClientView):
    @extend_schema(
        operation_id="ogc_conformance",
        summary="OGC API - Features: conformance",
        responses={200: OpenApiTypes.OBJECT},
        tags=["ogc"],
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        return Response({"conformsTo": OGC_CONFORMANCE})


class OGCCollectionsView(GisClientView):
    @extend_schema(
        operation_id="ogc_collections",
        summary="OGC API - Features: collections",
        responses={200: OpenApiTypes.OBJECT},
        tags=["ogc"],
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        scope = request_scope(request)
        base = _ogc_base(request)
        return Response(
            {
                "links": [
                    {
                        "href": f"{base}/collections",
                        "rel": "self",
                        "type": "application/json",
                        "title": "collections",
                    }
                ],
                "collections": [_collection(request, ldef, scope) for ldef in S.LAYERS.values()],
            }
        )


def _ogc_layer(collection_id: str) -> S.LayerDef:
    if collection_id not in S.LAYERS:
        raise NotFound({"collectionId": f"no such collection: one of {', '.join(S.LAYERS)}"})
    return S.LAYERS[collection_id]


class OGCCollectionView(GisClientView):
    @extend_schema(
        operation_id="ogc_collection",
        summary="OGC API - Features: a collection",
        parameters=[
            OpenApiParameter("collection_id", str, OpenApiParameter.PATH, enum=list(S.LAYERS))
        ],
        responses={200: OpenApiTypes.OBJECT},
        tags=["ogc"],
    )
    def get(self, request, collection_id: str):  # type: ignore[no-untyped-def]
        return Response(_collection(request, _ogc_layer(collection_id), request_scope(request)))


def _geojson_response(data: dict, status: int = 200) -> Response:
    resp = Response(data, status=status)
    resp.content_type = GEOJSON
    return resp


class OGCItemsView(GisClientView):
    @extend_schema(
        operation_id="ogc_items",
        summary="OGC API - Features: items of a collection",
        parameters=[
            OpenApiParameter("collection_id", str, OpenApiParameter.PATH, enum=list(S.LAYERS)),
            _q("bbox", "minlon,minlat,maxlon,maxlat (CRS84)"),
            _q("limit", f"1..{OGC_LIMIT_MAX} (default {OGC_LIMIT_DEFAULT})", int),
            _q("offset", "skip this many items", int),
            _q(
                "datetime",
                "RFC 3339 instant or interval (a/b, ../b, a/..): cases by reported "
                "time, visits by visit time",
            ),
            _q("f", "json (the only format)", enum=["json"]),
            *[p for p in _layer_filter_params() if p.name not in ("from", "to", "state")],
        ],
        responses={(200, GEOJSON): OpenApiTypes.OBJECT},
        tags=["ogc"],
    )
    def get(self, request, collection_id: str):  # type: ignore[no-untyped-def]
        ldef = _ogc_layer(collection_id)
        params = request.query_params
        known = {"bbox", "limit", "offset", "datetime", "f", "bbox-crs", *ldef.filters}
        for key in params:
            if key not in known:
                raise ValidationError(
                    {key: f"unknown parameter for {ldef.name}: {', '.join(sorted(known))}"}
                )
        if params.get("f") not in (None, "", "json"):
            raise ValidationError({"f": "json is the only format"})
        if params.get("bbox-crs") not in (None, "", CRS84):
            raise ValidationError({"bbox-crs": f"only {CRS84}"})
        raw_bbox = params.get("bbox")
        if raw_bbox and len(raw_bbox.split(",")) == 6:  # minx,miny,minz,maxx,maxy,maxz
            p = raw_bbox.split(",")
            raw_bbox = ",".join([p[0], p[1], p[3], p[4]])
        bbox = S.parse_bbox(raw_bbox)
        limit = S.parse_int(params.get("limit"), "limit", 1, OGC_LIMIT_MAX, OGC_LIMIT_DEFAULT)
        offset = S.parse_int(params.get("offset"), "offset", 0, 10**9, 0)
        when = S.parse_datetime_interval(params.get("datetime")) if ldef.temporal else (None, None)
        if params.get("datetime") and not ldef.temporal:
            raise ValidationError({"datetime": f"{ldef.name} has no time"})
        q = S.parse_layer_query(ldef, params)
        q.all_time = bool(params.get("datetime"))  # the interval replaces the default window
        qs = S.features_queryset(ldef, request_scope(request), q, bbox=bbox, datetime_range=when)
        rows = list(qs[offset : offset + limit + 1])  # type: ignore[operator]
        more = len(rows) > limit
        rows = rows[:limit]
        features = [S.row_to_feature(r, ldef.fields) for r in rows]
        base = f"{_ogc_base(request)}/collections/{ldef.name}/items"

        def link(rel: str, new_offset: int) -> dict:
            qd = params.copy()
            qd["offset"] = str(new_offset)
            qd["limit"] = str(limit)
            return {"href": f"{base}?{qd.urlencode()}", "rel": rel, "type": GEOJSON}

        links = [
            {"href": request.build_absolute_uri(), "rel": "self", "type": GEOJSON},
            {
                "href": f"{_ogc_base(request)}/collections/{ldef.name}",
                "rel": "collection",
                "type": "application/json",
            },
        ]
        if more:
            links.append(link("next", offset + limit))
        if offset > 0:
            links.append(link("prev", max(0, offset - limit)))
        return _geojson_response(
            {
                "type": "FeatureCollection",
                "features": features,
                "numberReturned": len(features),
                "timeStamp": timezone.now().isoformat(timespec="seconds"),
                "links": links,
            }
        )


class OGCItemView(GisClientView):
    @extend_schema(
        operation_id="ogc_item",
        summary="OGC API - Features: one item",
        parameters=[
            OpenApiParameter("collection_id", str, OpenApiParameter.PATH, enum=list(S.LAYERS)),
            OpenApiParameter("feature_id", int, OpenApiParameter.PATH),
        ],
        responses={(200, GEOJSON): OpenApiTypes.OBJECT},
        tags=["ogc"],
    )
    def get(self, request, collection_id: str, feature_id: int):  # type: ignore[no-untyped-def]
        ldef = _ogc_layer(collection_id)
        if feature_id > 2**62:
            raise NotFound({"featureId": "no such feature"})
        qs = S.features_queryset(
            ldef, request_scope(request), S.LayerQuery(all_time=True), feature_id=feature_id
        )
        row = qs.first()
        if row is None:
            raise NotFound({"featureId": "no such feature in your territory"})
        feature = S.row_to_feature(row, ldef.fields)
        base = _ogc_base(request)
        feature["links"] = [
            {"href": request.build_absolute_uri(), "rel": "self", "type": GEOJSON},
            {
                "href": f"{base}/collections/{ldef.name}",
                "rel": "collection",
                "type": "application/json",
            },
        ]
        return _geojson_response(feature)


# ====================================================================== routes
urlpatterns: list = [
    path("sync/limits/", LimitsView.as_view(), name="sync-limits"),
    path("layers/", LayerListView.as_view(), name="layers"),
    path("layers/<str:layer>/", LayerFeaturesView.as_view(), name="layer-features"),
    path("heatmap/cases/", HeatmapView.as_view(), name="heatmap-cases"),
    path("choropleth/grids/", ChoroplethView.as_view(), name="choropleth-grids"),
    path("offline/grids/<int:grid_id>/", OfflineMetaView.as_view(), name="offline-grid"),
    path(
        "offline/grids/<int:grid_id>/package",
        OfflinePackageView.as_view(),
        name="offline-grid-package",
    ),
]
root_urlpatterns: list = [
    path("tiles/<str:layer>/<int:z>/<int:x>/<int:y>.mvt", TileView.as_view(), name="tile"),
    path("tiles/<str:layer>.json", TileJSONView.as_view(), name="tilejson"),
    path("ogc/", OGCLandingView.as_view(), name="ogc"),
    path("ogc/conformance", OGCConformanceView.as_view(), name="ogc-conformance"),
    path("ogc/collections", OGCCollectionsView.as_view(), name="ogc-collections"),
    path("ogc/collections/<str:collection_id>", OGCCollectionView.as_view(), name="ogc-collection"),
    path("ogc/collections/<str:collection_id>/items", OGCItemsView.as_view(), name="ogc-items"),
    path(
        "ogc/collections/<str:collection_id>/items/<int:feature_id>",
        OGCItemView.as_view(),
        name="ogc-item",
    ),
]


def register(router) -> None:  # type: ignore[no-untyped-def]
    """No viewsets: the layer endpoints are plain views (``urlpatterns``)."""


__all__ = ["register", "root_urlpatterns", "urlpatterns"]
