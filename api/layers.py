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
from drf_spectacular.authentication import BasicScheme
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.authentication import BasicAuthentication
from rest_framework.exceptions import (
    AuthenticationFailed,
    NotFound,
    PermissionDenied,
    Throttled,
    ValidationError,
)
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from gridsvc.accounts.authentication import Rider, ride_with_caller
from gridsvc.accounts.lockout import login_refusal
from gridsvc.dbrouter import PRIMARY, read_alias
from gridsvc.layers import offline
from gridsvc.layers import services as S
from gridsvc.layers.models import OfflinePackage
from gridsvc.territory.models import Grid

from . import layer_params as P
from .limits import LimitsView
from .pagination import GeoPagination
from .schema import OfflinePackageMetaSerializer
from .scoping import request_scope

MVT = "application/vnd.mapbox-vector-tile"
GEOJSON = "application/geo+json"
OGC_LIMIT_DEFAULT = P.OGC_LIMIT_DEFAULT
OGC_LIMIT_MAX = P.OGC_LIMIT_MAX
OGC_CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
CRS84 = P.CRS84


def _path(name: str, type_: Any = str, **kwargs: Any) -> OpenApiParameter:
    return OpenApiParameter(name, type_, OpenApiParameter.PATH, **kwargs)


LAYER_PATH = _path("layer", enum=list(S.LAYERS))
TILE_LAYER_PATH = _path("layer", enum=list(S.TILE_LAYERS))
COLLECTION_PATH = _path("collection_id", enum=list(S.LAYERS))
GRID_PATH = _path("grid_id", {"type": "integer", "minimum": 1})
TILE_INDEX = {"type": "integer", "minimum": 0, "maximum": (1 << S.MAX_ZOOM) - 1}


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


class ThrottledBasicAuthentication(BasicAuthentication):
    """HTTP Basic whose refusal of a throttled address or of a username locked on this client
    (:mod:`gridsvc.accounts.lockout`) is a 429 with ``Retry-After``, as on the API and web
    logins, not a 401 that a GIS client would answer by asking for the password again."""

    def authenticate_credentials(self, userid, password, request=None):  # type: ignore[no-untyped-def]
        try:
            return super().authenticate_credentials(userid, password, request)
        except AuthenticationFailed:
            refusal = login_refusal(request) if request is not None else None
            if refusal is not None:
                raise Throttled(refusal.retry_after or None, detail=refusal.detail) from None
            raise


class ThrottledBasicScheme(BasicScheme):
    """The OpenAPI security scheme of :class:`ThrottledBasicAuthentication`: HTTP Basic."""

    target_class = ThrottledBasicAuthentication


class GisClientView(LayersView):
    """Also HTTP Basic, for GIS clients (GDAL/QGIS) that cannot fetch a JWT."""

    authentication_classes = [
        *api_settings.DEFAULT_AUTHENTICATION_CLASSES,
        ThrottledBasicAuthentication,
    ]


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags


def _known(request) -> list[str]:  # type: ignore[no-untyped-def]
    """The ETags the client holds (If-None-Match): a cached tile among them is answered 304
    without its bytes."""
    inm = request.headers.get("If-None-Match")
    return [t.strip().removeprefix("W/").strip('"') for t in inm.split(",")] if inm else []


def _not_modified_since(request, created: float) -> bool:  # type: ignore[no-untyped-def]
    """If-Modified-Since names ``created`` or later (none: False, nothing parsed)."""
    header = request.META.get("HTTP_IF_MODIFIED_SINCE")
    ims = parse_http_date_safe(header) if header else None
    return ims is not None and int(created) <= ims


# ====================================================================== tiles
class TileView(GisClientView):
    _held: Rider | None = None
    _guess: tuple[str, Rider] | None = None
    _client: str | None = None

    def initial(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        # a phone's tile (JWT, no query string): the cache row of the variant its last tile
        # of the layer had rides in the caller's query (gridsvc.accounts.authentication.
        # Rider; gridsvc.layers.services.guessed_variant), a cached tile — 200 or 304 — is
        # one statement; its first tile revalidated (If-None-Match): the cached variants
        # among the ETags it holds ride instead
        layer, z, x, y = (kwargs.get(k) for k in ("layer", "z", "x", "y"))
        auth = request.META.get("HTTP_AUTHORIZATION")
        if auth and not request.query_params and layer in S.TILE_LAYERS and S.valid_tile(z, x, y):
            self._client = auth  # the variant of this tile is remembered by it
            known = _known(request)
            # only where the tile cache is read on the primary anyway: with a standby serving
            # this request's reads, the cache row stays a read of the standby (a rider runs on
            # the primary — moving every cached tile's read there, and the answer's
            # X-Gridsvc-Read-From would name a standby that was not read)
            on_primary = read_alias() == PRIMARY
            variant = S.guessed_variant(auth, layer) if on_primary else None
            if variant is not None:
                statement = S.guessed_tile_statement(layer, z, x, y, known, variant)
                self._guess = variant, ride_with_caller(request, *statement)
            elif known:
                statement = S.held_tile_statement(layer, z, x, y, known)
                self._held = ride_with_caller(request, *statement)
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="tile",
        summary="Vector tile (MVT) of a layer",
        description="Built in PostGIS (ST_AsMVT), limited to your territory, cached until the "
        "data under it changes. Below a layer's minzoom the tile is empty. Case layers and the "
        "heatmap take the case filters.",
        parameters=[
            TILE_LAYER_PATH,
            _path("z", {"type": "integer", "minimum": 0, "maximum": S.MAX_ZOOM}),
            _path("x", TILE_INDEX, description="0..2^z - 1"),
            _path("y", TILE_INDEX, description="0..2^z - 1"),
            P.TileCrsParams,
            P.all_filter_params(),
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
        name = layer if layer != "heatmap" else None
        # without a query string (a phone's every tile) no serializer is run: parsing nothing
        # gives no values (tests/test_request_cost_fixed.py)
        q = (
            P.layer_query(name, request.query_params)
            if request.query_params
            else S.layer_query(S.LAYERS[name] if name else None, {})
        )
        # without a crs (a phone's every tile) the default, not a serializer run per tile
        crs = (
            P.parse(P.TileCrsParams, request.query_params)["crs"] if "crs" in request.GET else None
        )
        q.crs = S.tile_crs(crs)
        inm = request.headers.get("If-None-Match")
        held = self._held if self._held is not None and self._held.ran else None
        guess = None
        if self._guess is not None and self._guess[1].ran:
            guess = self._guess[0], self._guess[1].row
        tile = S.get_tile(
            layer,
            z,
            x,
            y,
            request_scope(request),
            q,
            known=_known(request),
            held=held.row if held is not None else None,
            client=self._client,
            guess=guess,
        )
        etag = f'"{tile.etag}"'
        created = tile.created_at.timestamp()
        headers = {
            "ETag": etag,
            "Last-Modified": http_date(created),
            "Cache-Control": f"private, max-age={tile.max_age}",
            "Vary": "Accept-Encoding, Authorization, Cookie",
            "X-Tile-Cache": "hit" if tile.cached else "miss",
            "X-Tile-Features": str(tile.features),
        }
        if _etag_matches(inm, etag) or (not inm and _not_modified_since(request, created)):
            resp = HttpResponse(status=304)
        elif tile.gz and "gzip" in request.headers.get("Accept-Encoding", ""):
            resp = HttpResponse(tile.gz, content_type=MVT)
            resp["Content-Encoding"] = "gzip"
        else:
            resp = HttpResponse(tile.data, content_type=MVT)
        for k, v in headers.items():
            resp[k] = v
        # a tile's body is gzip already or served raw to a client that takes no gzip, and
        # its Vary names Accept-Encoding: the gzip middleware would change nothing
        resp.gzip_exempt = True
        return resp


class TileJSONView(GisClientView):
    @extend_schema(
        operation_id="tilejson",
        summary="TileJSON 3.0.0 of a layer",
        parameters=[TILE_LAYER_PATH, P.TileCrsParams, P.all_filter_params()],
        responses={200: OpenApiTypes.OBJECT},
        tags=["layers"],
    )
    def get(self, request, layer: str):  # type: ignore[no-untyped-def]
        if layer not in S.TILE_LAYERS:
            raise NotFound({"layer": f"unknown layer: one of {', '.join(S.TILE_LAYERS)}"})
        P.layer_query(layer if layer != "heatmap" else None, request.query_params)  # validate
        crs = S.tile_crs(P.parse(P.TileCrsParams, request.query_params)["crs"])
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
                    "labels": {p.name: p.label for p in layer.props if p.map},
                    "filters": layer.filter_descriptions,
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
        parameters=[LAYER_PATH, P.FeaturesParams, P.all_filter_params()],
        responses={200: OpenApiTypes.OBJECT},
        tags=["layers"],
    )
    def get(self, request, layer: str):  # type: ignore[no-untyped-def]
        if layer not in S.LAYERS:
            raise NotFound({"layer": f"unknown layer: one of {', '.join(S.LAYERS)}"})
        ldef = S.LAYERS[layer]
        values = P.parse(P.FeaturesParams, request.query_params)
        crs = values["crs"]
        bbox = S.bbox_wgs84(values.get("bbox"), crs)
        q = P.layer_query(layer, request.query_params)
        tolerance = S.tolerance_deg(values.get("zoom"), values.get("tolerance"))
        qs = S.features_queryset(ldef, request_scope(request), q, bbox=bbox, tolerance=tolerance)
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
        parameters=[P.HeatmapParams, P.layer_filter_params(None)],
        responses={200: OpenApiTypes.OBJECT},
        tags=["layers"],
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        values = P.parse(P.HeatmapParams, request.query_params)
        crs = values["crs"]
        scope = request_scope(request)
        q = P.layer_query(None, request.query_params)
        bbox = S.bbox_wgs84(values.get("bbox"), crs) or S.scope_extent(scope)
        if bbox is None:  # nothing in the territory
            bbox = (0.0, 0.0, 0.0, 0.0)
        data = S.heatmap(scope, q, bbox, values["zoom"], crs)
        data["bbox"] = list(bbox)
        return Response(data)


class ChoroplethView(LayersView):
    @extend_schema(
        operation_id="choropleth_grids",
        summary="Per-grid figures for a choropleth (GeoJSON grids)",
        description="open, overdue (open and past due), resolved, resolution_rate, visits_done "
        "per grid of your territory, over cases reported (and visits made) in the window.",
        parameters=[P.SimplifyParams, P.layer_filter_params(None)],
        responses={200: OpenApiTypes.OBJECT},
        tags=["layers"],
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        values = P.parse(P.SimplifyParams, request.query_params)
        q = P.layer_query(None, request.query_params)
        tolerance = S.tolerance_deg(values.get("zoom"), values.get("tolerance"))
        return Response(
            S.choropleth(request_scope(request), q, tolerance=tolerance, crs=values["crs"])
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


class OfflineMetaView(LayersView):
    @extend_schema(
        operation_id="offline_grid",
        summary="Offline package of a grid: metadata (asks for a build when missing or stale)",
        parameters=[GRID_PATH, P.PackageParams],
        responses={200: OfflinePackageMetaSerializer},
        tags=["layers"],
    )
    def get(self, request, grid_id: int):  # type: ignore[no-untyped-def]
        crs = S.tile_crs(P.parse(P.PackageParams, request.query_params)["crs"])
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
            GRID_PATH,
            P.PackageParams,
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
        crs = S.tile_crs(P.parse(P.PackageParams, request.query_params)["crs"])
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
        parameters=[COLLECTION_PATH],
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
        parameters=[COLLECTION_PATH, P.ogc_items_schema_params()],
        responses={(200, GEOJSON): OpenApiTypes.OBJECT},
        tags=["ogc"],
    )
    def get(self, request, collection_id: str):  # type: ignore[no-untyped-def]
        ldef = _ogc_layer(collection_id)
        params = request.query_params
        values = P.parse_ogc_items(ldef.name, params)
        bbox = S.bbox_wgs84(values.get("bbox"))
        limit, offset = values["limit"], values["offset"]
        when = values.get("datetime") or (None, None)
        q = S.layer_query(ldef, values)
        q.all_time = "datetime" in values  # the interval replaces the default window
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
        parameters=[COLLECTION_PATH, _path("feature_id", {"type": "integer", "minimum": 1})],
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
