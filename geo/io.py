"""Reading and writing boundary layers with geopandas + pyogrio (no Django).

- :func:`read_layer`: shapefile (``.shp`` or a ``.zip`` holding one), GeoPackage, GeoJSON, or
  CSV with a WKT column; picks the layer; codes read as text.
- :func:`to_wgs84`: bring a layer to WGS84 (EPSG:4326) from any CRS pyproj knows — CGCS2000
  (EPSG:4490), the CGCS2000 Gauss-Kruger zones (高斯-克吕格投影, e.g. EPSG:4544/4545 = 3-degree
  zones with central meridian 102°E/105°E), UTM … — and, when the caller says the data is in
  GCJ-02 (火星坐标, Amap/Tencent), undo that offset coordinate by coordinate with
  :func:`geo.crs.transform_array`. It also judges the CRS: missing, or declared geographic
  while the numbers are metres (a wrong CRS), or lying outside China after reprojection.
- :func:`write_layer`: GeoPackage, GeoJSON or a zipped shapefile.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pyproj import CRS
from pyproj.exceptions import CRSError

from geo.lazy import lazy

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd
    import pyogrio
    import shapely
else:  # imported on first use: not with the URLconf (0.6 s, every worker's first request)
    gpd = lazy("geopandas")
    pd = lazy("pandas")
    pyogrio = lazy("pyogrio")
    shapely = lazy("shapely")

WGS84 = "EPSG:4326"
WKT_COLUMNS = ("wkt", "geometry", "geom", "the_geom", "shape", "几何", "空间信息")
FORMATS = {"gpkg": "GPKG", "geojson": "GeoJSON", "shp": "ESRI Shapefile"}
MEDIA_TYPES = {
    "gpkg": "application/geopackage+sqlite3",
    "geojson": "application/geo+json",
    "shp": "application/zip",
}
# Rough bounding box of China (lon/lat), used to flag a wrong CRS after reprojection.
CHINA_LONLAT = (73.0, 3.0, 136.0, 54.0)


class LayerError(ValueError):
    """The file cannot be read as a layer (message says why, for the data manager)."""


@dataclass
class CrsReport:
    """What was found about a layer's CRS and what was done with it."""

    source: str | None = None  # e.g. "EPSG:4545"
    source_name: str = ""
    assumed: bool = False  # no CRS in the file: one was assumed
    gcj02: bool = False
    stated: str | None = None  # the CRS the person named (parse_crs vocabulary)
    offset: str | None = None  # "gcj02" | "bd09": undone after reprojection
    target: str = WGS84
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "source_name": self.source_name,
            "assumed": self.assumed,
            "gcj02": self.gcj02,
            "stated": self.stated,
            "offset": self.offset,
            "target": self.target,
            "errors": self.errors,
            "warnings": self.warnings,
        }


def list_layers(path: str | Path) -> list[str]:
    """Layer names of a vector dataset (one for GeoJSON/shapefile)."""
    return [str(row[0]) for row in pyogrio.list_layers(_ogr_path(path))]


def _ogr_path(path: str | Path) -> str:
    p = Path(path)
    if p.suffix.lower() == ".zip":
        with zipfile.ZipFile(p) as zf:
            shps = [n for n in zf.namelist() if n.lower().endswith(".shp")]
        if not shps:
            raise LayerError("the zip file holds no .shp shapefile")
        return f"/vsizip/{p}/{shps[0]}"
    return str(p)


def _pick_layer(path: str | Path, layer: str | None, hints: Iterable[str]) -> str | None:
    try:
        layers = list_layers(path)
    except Exception as exc:  # pyogrio.errors.DataSourceError and friends
        raise LayerError(f"cannot open {Path(path).name}: {exc}") from exc
    if layer is not None:
        if layer not in layers:
            raise LayerError(f"no layer {layer!r} in the file; layers: {', '.join(layers)}")
        return layer
    if len(layers) <= 1:
        return layers[0] if layers else None
    lowered = {name.lower(): name for name in layers}
    for hint in hints:
        if hint.lower() in lowered:
            return lowered[hint.lower()]
    raise LayerError(f"the file has several layers, choose one with --layer: {', '.join(layers)}")


def read_layer(
    path: str | Path, layer: str | None = None, *, hints: Iterable[str] = ()
) -> gpd.GeoDataFrame:
    """Read one layer. CSV files need a WKT column (``wkt``, ``geometry``, ``geom`` …).

    Attribute columns are kept as read, except that integer-like numbers become text (codes in
    shapefiles are often stored as numbers). ``hints`` are layer names to prefer when a
    GeoPackage holds several layers and none was named.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".csv", ".txt"):
        return _read_csv(p)
    name = _pick_layer(p, layer, hints)
    try:
        gdf = pyogrio.read_dataframe(_ogr_path(p), layer=name)
    except Exception as exc:
        raise LayerError(f"cannot read {p.name}: {exc}") from exc
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry is None:
        raise LayerError(f"{p.name} has no geometry column")
    gdf = _codes_as_text(gdf)
    gdf.attrs["crs_declared"] = gdf.crs is not None and _declares_crs(p)
    return gdf


def _declares_crs(path: Path) -> bool:
    """Whether the file itself names its CRS. GDAL gives every GeoJSON EPSG:4326, as RFC 7946
    says; only a (pre-RFC) ``crs`` member is a declaration that a stated CRS must agree with."""
    if path.suffix.lower() not in (".geojson", ".json"):
        return True
    tail = b""
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            if b'"crs"' in tail + chunk:
                return True
            tail = chunk[-4:]
    return False


def _read_csv(path: Path) -> gpd.GeoDataFrame:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - both encodings failed
        raise LayerError("CSV is neither UTF-8 nor GB18030 text")
    by_lower = {c.lower().strip(): c for c in df.columns}
    col = next((by_lower[c] for c in WKT_COLUMNS if c in by_lower), None)
    if col is None:
        raise LayerError(f"CSV needs a WKT geometry column named one of: {', '.join(WKT_COLUMNS)}")
    geoms = []
    for i, text in enumerate(df[col], start=2):
        try:
            geoms.append(shapely.from_wkt(text) if text.strip() else None)
        except shapely.errors.GEOSException as exc:
            raise LayerError(f"CSV line {i}: bad WKT in column {col!r}: {exc}") from exc
    gdf = gpd.GeoDataFrame(df.drop(columns=[col]), geometry=geoms, crs=None)
    gdf.attrs["crs_declared"] = False
    return gdf


def _codes_as_text(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    for col in gdf.columns:
        if col == gdf.geometry.name:
            continue
        s = gdf[col]
        if pd.api.types.is_integer_dtype(s):
            gdf[col] = s.astype("Int64").astype(str).replace("<NA>", "")
        elif pd.api.types.is_float_dtype(s):
            vals = s.to_numpy(dtype=float, na_value=np.nan)
            finite = vals[~np.isnan(vals)]
            if finite.size and np.all(finite == np.round(finite)):
                gdf[col] = [("" if np.isnan(v) else str(int(v))) for v in vals]
    return gdf


def _looks_lonlat(bounds: np.ndarray) -> bool:
    minx, miny, maxx, maxy = bounds
    return bool(
        -180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90
    )


#: The coordinate systems with an offset (no EPSG code): longitude/latitude on the WGS84 frame
#: plus the offset the Chinese map SDKs add; undone vertex by vertex with :mod:`geo.crs`.
OFFSET_DATUMS = ("gcj02", "bd09")
CRS_VOCABULARY = "wgs84, gcj02, bd09, cgcs2000 or an EPSG code (EPSG:4545)"


@dataclass(frozen=True)
class StatedCrs:
    """A CRS named by a person: a pyproj CRS (lon/lat WGS84 for the offset datums) and the
    offset to undo, if any."""

    name: str  # canonical: wgs84 | gcj02 | bd09 | cgcs2000 | EPSG:nnnn
    crs: CRS
    offset: str | None = None  # "gcj02" | "bd09"


def parse_crs(value: str) -> StatedCrs:
    """One CRS vocabulary for every endpoint and command: the names of :mod:`geo.crs`
    (``wgs84``, ``gcj02``, ``bd09``, ``cgcs2000``, case-insensitive, with their aliases such as
    ``GCJ-02``, ``CRS84``) or any EPSG code (``EPSG:4545``, ``epsg:4490`` or ``4545``).

    :raises LayerError: for anything else, naming what is accepted.
    """
    from geo.crs import UnsupportedCRS, normalize_crs

    text = str(value or "").strip()
    try:
        name = normalize_crs(text)
    except UnsupportedCRS:
        name = ""
    if name == "wgs84":
        return StatedCrs("wgs84", CRS.from_epsg(4326))
    if name == "cgcs2000":
        return StatedCrs("cgcs2000", CRS.from_epsg(4490))
    if name in OFFSET_DATUMS:
        return StatedCrs(name, CRS.from_epsg(4326), name)
    m = re.fullmatch(r"(?:epsg:)?(\d{4,6})", text.lower())
    if m:
        try:
            return StatedCrs(f"EPSG:{int(m.group(1))}", CRS.from_epsg(int(m.group(1))))
        except CRSError:
            raise LayerError(f"unknown CRS {text!r}: EPSG knows no code {m.group(1)}") from None
    raise LayerError(f"unknown CRS {text!r}: use {CRS_VOCABULARY}")


def _same_crs(a: CRS, b: CRS) -> bool:
    ea, eb = a.to_epsg(), b.to_epsg()
    if ea and eb:
        return ea == eb
    return a.equals(b, ignore_axis_order=True)


def to_wgs84(
    gdf: gpd.GeoDataFrame,
    *,
    assume_crs: str | None = None,
    gcj02: bool = False,
    crs: str | None = None,
    declared: bool | None = None,
) -> tuple[gpd.GeoDataFrame, CrsReport]:
    """Reproject ``gdf`` to WGS84 and judge its CRS (see the module doc).

    ``crs`` (or its older name ``assume_crs``) is the CRS the person says the file is in, in
    the vocabulary of :func:`parse_crs`. When the file declares none (a CSV, a shapefile
    without .prj, a GeoJSON without a ``crs`` member) it is used; when the file declares one,
    the two must agree (``gcj02``/``bd09`` agree with a declared WGS84 or CGCS2000, as such
    files are labelled that way: the offset has no EPSG code), else it is an error. ``gcj02``
    is the same as ``crs="gcj02"``. Without a stated CRS, lon/lat-looking numbers in an
    undeclared file are taken as WGS84 (a warning, except for GeoJSON, whose standard says
    so) and metre-looking numbers are an error. ``declared``: whether the file itself named
    its CRS (default: it did if the frame has one). Errors in the report mean the geometry
    must not be imported.
    """
    rep = CrsReport(gcj02=gcj02)
    geoms = gdf.geometry
    nonempty = geoms[~(geoms.isna() | geoms.is_empty)]
    bounds = np.asarray(nonempty.total_bounds) if len(nonempty) else np.zeros(4)
    stated_text = crs or assume_crs
    stated: StatedCrs | None = None
    try:
        stated = parse_crs(stated_text) if stated_text else None
    except LayerError as exc:
        rep.errors.append(str(exc))
        return gdf, rep
    if gcj02:
        if stated is not None and stated.offset not in (None, "gcj02"):
            rep.errors.append(f"--gcj02 contradicts the stated CRS {stated.name}")
            return gdf, rep
        if stated is not None and stated.offset is None and stated.crs.is_projected:
            rep.errors.append("--gcj02 applies to longitude/latitude data, not to a projected CRS")
            return gdf, rep
        if stated is None or stated.offset is None:
            stated = StatedCrs("gcj02", CRS.from_epsg(4326), "gcj02")
    offset = stated.offset if stated else None
    rep.gcj02 = offset == "gcj02"
    rep.stated = stated.name if stated else None
    rep.offset = offset
    file_crs = gdf.crs
    if declared is None:
        declared = file_crs is not None
    implicit = file_crs is not None and not declared  # GeoJSON without a crs member
    if declared:
        fcrs = CRS.from_user_input(file_crs)
        if stated is not None and not _agrees(fcrs, stated):
            fe = fcrs.to_epsg()
            rep.errors.append(
                f"CRS disagreement: the file declares {f'EPSG:{fe}' if fe else fcrs.name} "
                f"({fcrs.name}) but {stated.name} was stated; fix the file or the stated CRS"
            )
            return gdf, rep
        target_crs = fcrs
    elif stated is not None:
        target_crs = stated.crs
        rep.assumed = True
        if not implicit:
            rep.warnings.append(f"the file declares no CRS: {stated.name} assumed as told")
    elif _looks_lonlat(bounds):
        target_crs = CRS.from_epsg(4326)
        rep.assumed = True
        if not implicit:
            rep.warnings.append(
                "missing CRS: the file declares none; WGS84 longitude/latitude assumed"
            )
    else:
        rep.errors.append(
            "missing CRS: the file declares none and the coordinates are not "
            f"longitude/latitude (x {bounds[0]:.0f}…{bounds[2]:.0f}); add a .prj or state the "
            "CRS (--crs EPSG:xxxx, e.g. EPSG:4545 for CGCS2000 3-degree Gauss-Kruger CM 105E)"
        )
        return gdf, rep
    gdf = gdf.set_crs(target_crs, allow_override=True)
    pcrs = CRS.from_user_input(gdf.crs)
    epsg = pcrs.to_epsg()
    rep.source = f"EPSG:{epsg}" if epsg else pcrs.to_string()
    rep.source_name = pcrs.name
    if pcrs.is_geographic and not _looks_lonlat(bounds):
        rep.errors.append(
            f"wrong CRS: the file says {rep.source} ({pcrs.name}, degrees) but the coordinates "
            f"are metres (x {bounds[0]:.0f}…{bounds[2]:.0f}); fix the .prj or give --crs"
        )
        return gdf, rep
    if offset and pcrs.is_projected:
        rep.errors.append(f"{offset} applies to longitude/latitude data, not to a projected CRS")
        return gdf, rep
    out = gdf.to_crs(WGS84) if epsg != 4326 else gdf.copy()
    if offset:
        out = out.set_geometry(offset_to_wgs84(out.geometry.values, offset), crs=WGS84)
    ob = np.asarray(out.geometry[~(out.geometry.isna() | out.geometry.is_empty)].total_bounds)
    if len(nonempty) and not _inside(ob, CHINA_LONLAT):
        rep.errors.append(
            f"wrong CRS: after reprojection from {rep.source} the layer lies outside China "
            f"(lon {ob[0]:.3f}…{ob[2]:.3f}, lat {ob[1]:.3f}…{ob[3]:.3f}); check the CRS or zone"
        )
    return out, rep


def _agrees(declared: CRS, stated: StatedCrs) -> bool:
    """A file's declared CRS agrees with the stated one: the same CRS, or an offset datum
    stated for a file labelled WGS84/CGCS2000 longitude/latitude."""
    if stated.offset:
        return declared.to_epsg() in (4326, 4490) or (
            declared.is_geographic and "WGS 84" in declared.name
        )
    if declared.to_epsg() == 4326 and stated.crs.to_epsg() == 4326:
        return True
    return _same_crs(declared, stated.crs)


def _inside(bounds: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    return bool(
        bounds[0] >= box[0] and bounds[1] >= box[1] and bounds[2] <= box[2] and bounds[3] <= box[3]
    )


def offset_to_wgs84(geoms: np.ndarray, offset: str) -> np.ndarray:
    """Undo the GCJ-02 or BD-09 offset on every vertex (vectorised, via :mod:`geo.crs`)."""
    from geo.crs import transform_array

    def conv(xy: np.ndarray) -> np.ndarray:
        x, y = transform_array(xy[:, 0], xy[:, 1], offset, "wgs84")
        return np.column_stack([x, y])

    out: np.ndarray = shapely.transform(np.asarray(geoms), conv)
    return out


def gcj02_to_wgs84(geoms: np.ndarray) -> np.ndarray:
    """Undo the GCJ-02 offset on every vertex."""
    return offset_to_wgs84(geoms, "gcj02")


def write_layer(gdf: gpd.GeoDataFrame, path: str | Path, fmt: str, layer: str) -> Path:
    """Write ``gdf`` as ``fmt`` (gpkg | geojson | shp). A shapefile is written into a zip at
    ``path`` (its .shp/.shx/.dbf/.prj/.cpg, UTF-8). Returns ``path``."""
    if fmt not in FORMATS:
        raise LayerError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    path = Path(path)
    if fmt != "shp":
        pyogrio.write_dataframe(gdf, path, layer=layer, driver=FORMATS[fmt])
        return path
    with tempfile.TemporaryDirectory() as tmp:
        shp = Path(tmp) / f"{layer}.shp"
        pyogrio.write_dataframe(gdf, shp, driver=FORMATS[fmt], encoding="UTF-8")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for part in sorted(Path(tmp).iterdir()):
                zf.write(part, part.name)
    return path
