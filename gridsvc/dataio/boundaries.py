"""Import street (街道), community (社区), grid (网格), compound (小区) and building (楼栋)
boundaries, with a dry run; through the API a real import is queued for the worker.

The file is read with geopandas/pyogrio (:mod:`geo.io`), brought to WGS84, its geometries
repaired where invalid, and the state the territory WOULD have after the import is checked
(:mod:`geo.topology`): overlaps between grids (or compounds, or footprints), gaps inside the
community, buildings in no grid or in two, duplicate codes. Then, unless it is a dry run and
no blocking error was found, the rows are created or updated in place by code in ONE
transaction, a :class:`~gridsvc.reports.models.BoundaryVersion` is appended for each, and the
buildings' grid/compound are re-derived by PostGIS. Any exception rolls everything back.

Errors block the import: unreadable file, wrong, missing, unknown or disagreeing CRS
(:func:`geo.io.parse_crs` is the one vocabulary), a missing/duplicate code, a geometry that
cannot be repaired, an unknown community or street, a grid code that does not follow the
community code, a street/community code that fails :mod:`gridsvc.territory.codes`, a feature
beyond the sanity limits of its kind (:data:`LIMITS`), features outside the caller's
territory. Everything else (repairs made, overlaps, gaps, unusual sizes, buildings in no grid
or two) is a warning — or an error with ``strict``. A feature whose role says it is an
enclave (:data:`EXCLUSION_ROLES`) is a declared exclusion: not imported, and no gap.

Scope (:func:`import_scope`): a data manager imports only into the streets they hold a
street position over (a superuser or the operator's command line: everywhere). A feature
whose community is another street's, whose inner point lies in another street's community,
whose code belongs to a grid/compound/building outside those streets, or whose parent grid
is outside them, is an error; after an import only the buildings inside those streets have
their grid and compound re-derived, so a boundary drawn over a neighbouring street takes
none of its buildings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from django.conf import settings
from django.contrib.gis.geos import GEOSGeometry
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max, Model
from django.utils import timezone

from geo import topology
from geo.io import LayerError, read_layer, to_wgs84
from gridsvc.reports.models import BoundaryVersion, ImportRun
from gridsvc.territory import codes as admin_codes
from gridsvc.territory.models import Building, Community, Compound, Grid, Street
from gridsvc.territory.services import derive_building_containers

from .access import member_scope
from .progress import ProgressWriter

if TYPE_CHECKING:
    from gridsvc.chain.scope import Scope

KINDS = ("street", "community", "grid", "compound", "building")


def max_features_limit() -> int:
    """Features one boundary file may have through the API (``settings.BOUNDARY_MAX_FEATURES``,
    default 10,000); the checks run within the request."""
    return int(getattr(settings, "BOUNDARY_MAX_FEATURES", 10_000))


Progress = Callable[[int, int, str], None]

# Default column names (case-insensitive), first match wins; override with ``mapping``.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "code": (
        "code",
        "编码",
        "代码",
        "bm",
        "wgbm",
        "网格编码",
        "xqbm",
        "小区编码",
        "ldbm",
        "楼栋编码",
    ),
    "name": ("name", "名称", "mc", "wgmc", "网格名称", "xqmc", "小区名称", "ldmc", "楼栋名称"),
    "community": ("community", "community_code", "sqbm", "社区编码", "社区代码", "所属社区"),
    "parent": ("parent", "parent_code", "sjwgbm", "上级网格", "上级网格编码"),
    "responsible_body": ("responsible_body", "responsible", "zrzt", "责任主体", "责任单位"),
    "property_company": ("property_company", "wygs", "物业公司", "物业"),
    "address": ("address", "dz", "地址"),
    "floors": ("floors", "cs", "层数", "楼层数"),
    "street": ("street", "street_code", "jdbm", "街道编码", "街道代码", "所属街道"),
    "district": ("district", "district_code", "county", "qxbm", "区县编码", "区县代码", "所属区县"),
    "role": ("role", "type", "类型", "性质", "exclude", "exclusion", "enclave", "排除"),
}
# The code column of a street or community file may carry the level's own name.
KIND_CODE_ALIASES: dict[str, tuple[str, ...]] = {
    "street": ("jdbm", "街道编码", "街道代码"),
    "community": ("sqbm", "社区编码", "社区代码"),
}
KIND_FIELDS = {
    "street": ("code", "name", "district", "role"),
    "community": ("code", "name", "street", "role"),
    "grid": ("code", "name", "community", "parent", "responsible_body", "role"),
    "compound": ("code", "name", "community", "property_company", "role"),
    "building": ("code", "name", "address", "floors", "role"),
}
LAYER_HINTS = {
    "street": ("street", "streets", "街道"),
    "community": ("community", "communities", "社区"),
    "grid": ("grid", "grids", "网格"),
    "compound": ("compound", "compounds", "小区"),
    "building": ("building", "buildings", "楼栋"),
}
MODELS = {
    "street": Street,
    "community": Community,
    "grid": Grid,
    "compound": Compound,
    "building": Building,
}
# A feature whose role column says one of these is a declared exclusion (an enclave, 飞地 /
# 插花地, a lake, a barracks …): an area that belongs to no feature of this layer on purpose.
# It is not imported; gaps it covers are not gaps (so --strict accepts them).
EXCLUSION_ROLES = frozenset(
    {"enclave", "exclusion", "exclude", "excluded", "hole", "飞地", "插花地", "排除", "除外", "1"}
)
# Sanity limits by kind (settings.BOUNDARY_LIMITS overrides any of them): a feature larger
# than warn_area_m2 or with more vertices than warn_vertices is a warning, beyond max_* an
# error (a 400 km² "building" is a unit or CRS mistake); smaller than min_area_m2: a warning.
LIMITS: dict[str, dict[str, float]] = {
    "street": {"min_area_m2": 10_000, "warn_area_m2": 1e9, "max_area_m2": 2e10},
    "community": {"min_area_m2": 1_000, "warn_area_m2": 5e7, "max_area_m2": 5e9},
    "grid": {"min_area_m2": 100, "warn_area_m2": 1e7, "max_area_m2": 5e8},
    "compound": {"min_area_m2": 100, "warn_area_m2": 2e6, "max_area_m2": 2e7},
    "building": {"min_area_m2": 4, "warn_area_m2": 20_000, "max_area_m2": 1e6},
}
VERTEX_LIMITS: dict[str, tuple[int, int]] = {  # (warning above, error above)
    "street": (50_000, 500_000),
    "community": (20_000, 200_000),
    "grid": (10_000, 100_000),
    "compound": (10_000, 100_000),
    "building": (2_000, 20_000),
}
# A grid or compound may reach into another street's community by at most this share of its
# area (digitising slivers along a shared edge); more is an error, any of it a warning.
OUTSIDE_TOLERANCE = 0.01
GEOM_FIELD = {
    "street": "boundary",
    "community": "boundary",
    "grid": "boundary",
    "compound": "boundary",
    "building": "footprint",
}


class Report:
    """The dry-run/import report (JSON-serialisable through :meth:`as_dict`)."""

    def __init__(self, kind: str, file_name: str, dry_run: bool, strict: bool) -> None:
        self.data: dict[str, Any] = {
            "kind": kind,
            "file": file_name,
            "layer": None,
            "dry_run": dry_run,
            "strict": strict,
            "features": 0,
            "crs": None,
            "columns": {},
            "errors": [],
            "warnings": [],
            "invalid_geometries": [],
            "duplicates": [],
            "overlaps": [],
            "gaps": [],
            "buildings_in_no_grid": [],
            "buildings_in_two_grids": [],
            "created": [],
            "updated": [],
            "unchanged": [],
            "exclusions": [],
            "limits": [],
            "rederived_buildings": 0,
            "ok": False,
            "applied": False,
        }
        self.strict = strict

    def error(self, check: str, message: str, **extra: Any) -> None:
        self.data["errors"].append({"check": check, "message": message, **extra})

    def warn(self, check: str, message: str, **extra: Any) -> None:
        target = "errors" if self.strict else "warnings"
        self.data[target].append({"check": check, "message": message, **extra})

    @property
    def failed(self) -> bool:
        return bool(self.data["errors"])

    def as_dict(self) -> dict[str, Any]:
        self.data["ok"] = not self.failed
        return self.data


def import_boundaries(
    path: str | Path,
    kind: str,
    *,
    layer: str | None = None,
    dry_run: bool = False,
    gcj02: bool = False,
    community: str | None = None,
    assume_crs: str | None = None,
    mapping: dict[str, str] | None = None,
    strict: bool = False,
    actor=None,  # type: ignore[no-untyped-def]
    file_name: str | None = None,
    progress: Progress | None = None,
    max_features: int | None = None,
    crs: str | None = None,
    street: str | None = None,
    district: str | None = None,
    run: ImportRun | None = None,
) -> dict[str, Any]:
    """Check (and unless ``dry_run``, apply) a boundary file; returns the report dict.

    ``kind``: street (街道), community (社区), grid, compound or building. ``community`` is
    the 12-digit code the features belong to when the file has no community column (for grids
    it defaults to the first 12 digits of the grid code); ``street`` (9 digits) the street of
    a community file's features, ``district`` (6 digits, GB/T 2260) the district of a street
    file's — a 3-digit code in the file is then completed with it
    (:func:`gridsvc.territory.codes.street_code`, :func:`~gridsvc.territory.codes.community_code`).
    ``crs`` (or ``assume_crs``) is the stated CRS (:func:`geo.io.parse_crs`: wgs84, gcj02,
    bd09, cgcs2000, EPSG:nnnn); ``gcj02`` is ``crs="gcj02"``. ``actor`` limits the import to
    their territory (None: an operator at the command line, everything). More than
    ``max_features`` features is an error (``too_large`` in the report) found before any
    check runs. ``run``: the queued :class:`ImportRun` this is (else one is recorded).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    file_name = file_name or Path(path).name
    rep = Report(kind, file_name, dry_run, strict)
    parents = {"community": community, "street": street, "district": district}
    if progress:
        progress(0, 0, "reading")
    try:
        plan = _plan(
            path,
            kind,
            rep,
            layer,
            gcj02,
            parents,
            crs or assume_crs,
            mapping,
            actor,
            max_features,
            progress,
        )
    except LayerError as exc:
        rep.error("file", str(exc))
        plan = None
    if plan is not None and not rep.failed and not dry_run:
        try:
            with transaction.atomic():
                _apply(plan, rep, actor, file_name, progress, run)
            rep.data["applied"] = True
        except Exception as exc:  # any error → nothing written; report it
            rep.data["created"], rep.data["updated"] = [], []
            rep.error("database", f"import rolled back: {type(exc).__name__}: {exc}")
    result = rep.as_dict()
    if not rep.data["applied"]:  # applied runs saved their ImportRun inside the transaction
        _save_run(kind, file_name, actor, dry_run, result, run)
    return result


def _save_run(kind: str, file_name: str, actor, dry_run: bool, result: dict, run=None) -> ImportRun:  # type: ignore[no-untyped-def]
    run = run or ImportRun(kind=kind)
    run.file_name = file_name[:255]
    run.actor = actor if getattr(actor, "pk", None) else None
    run.dry_run = dry_run
    run.ok = result.get("ok", False)
    run.applied = result.get("applied", False)
    run.report = result
    run.save()
    return run


def import_scope(actor) -> Scope:  # type: ignore[no-untyped-def]
    """Where ``actor`` may import boundaries: the streets of their street positions (a
    grid or building position elsewhere adds nothing); ``None`` (the operator) and
    superusers: everywhere."""
    from gridsvc.chain.scope import Scope

    scope = member_scope(actor)
    if scope.everything:
        return scope
    return Scope(street_ids=set(scope.street_ids))


# ---------------------------------------------------------------- planning (read + check)
class Plan:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.rows: list[dict[str, Any]] = []  # code, geom (shapely MultiPolygon), attrs
        self.existing: dict[str, Any] = {}  # code → model instance
        self.scope: Scope | None = None
        self.exclusions: list[Any] = []  # declared enclaves (shapely geometries)
        self.exclusion_rows: list[int] = []

    def data_rows(self, n: int) -> int:
        return self.exclusion_rows[n] if n < len(self.exclusion_rows) else 0


def _columns(columns: list[str], kind: str, mapping: dict[str, str] | None) -> dict[str, str]:
    by_lower = {str(c).strip().lower(): c for c in columns}
    found: dict[str, str] = {}
    unknown = sorted(set(mapping or {}) - set(KIND_FIELDS[kind]))
    if unknown:
        raise LayerError(
            f"cannot map {', '.join(unknown)}: a {kind} file has {', '.join(KIND_FIELDS[kind])}"
        )
    for f in KIND_FIELDS[kind]:
        if mapping and f in mapping:
            if mapping[f] not in columns:
                raise LayerError(f"mapped column {mapping[f]!r} for {f} is not in the file")
            found[f] = mapping[f]
            continue
        aliases = FIELD_ALIASES[f] + (KIND_CODE_ALIASES.get(kind, ()) if f == "code" else ())
        for alias in aliases:
            if alias.lower() in by_lower:
                found[f] = by_lower[alias.lower()]
                break
    return found


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def _plan(
    path,
    kind,
    rep: Report,
    layer,
    gcj02,
    parents,
    stated_crs,
    mapping,
    actor,
    max_features,
    progress=None,
) -> Plan | None:  # type: ignore[no-untyped-def]
    community = parents.get("community")
    gdf = read_layer(path, layer, hints=LAYER_HINTS[kind])
    declared = gdf.attrs.get("crs_declared")
    rep.data["layer"] = layer
    rep.data["features"] = len(gdf)
    if max_features is not None and len(gdf) > max_features:
        rep.data["too_large"] = True
        rep.error(
            "file",
            f"{len(gdf)} features; at most {max_features} per file here: split the file "
            "or ask the operator to import it with the command",
        )
        return None
    if progress:
        progress(0, len(gdf), "checking")
    gdf, crs = to_wgs84(gdf, crs=stated_crs, gcj02=gcj02, declared=declared)
    rep.data["crs"] = crs.as_dict()
    for message in crs.errors:
        rep.error("crs", message)
    for message in crs.warnings:
        rep.data["warnings"].append({"check": "crs", "message": message})
    if crs.errors:
        return None
    cols = _columns(list(gdf.columns.drop(gdf.geometry.name)), kind, mapping)
    rep.data["columns"] = cols
    if "code" not in cols:
        rep.error(
            "columns",
            f"no code column: name one of {', '.join(FIELD_ALIASES['code'])} or map it "
            "(--map code=COLUMN)",
        )
        return None
    records = (
        [
            {f: _text(v) for f, v in zip(cols, vals, strict=True)}
            for vals in zip(*(gdf[c] for c in cols.values()), strict=True)
        ]
        if cols
        else []
    )
    geoms_all = list(gdf.geometry.values)
    metric = topology.Metric(geoms_all)
    # declared exclusions (enclaves) are not features of the layer
    excluded = [i for i, r in enumerate(records) if _is_exclusion(r.get("role", ""))]
    exclusions = _exclusions(excluded, records, geoms_all, metric, rep)
    if excluded:
        drop = set(excluded)
        records = [r for i, r in enumerate(records) if i not in drop]
        geoms_all = [g for i, g in enumerate(geoms_all) if i not in drop]
    codes = [r["code"] for r in records]
    for i, code in enumerate(codes):
        if not code:
            rep.error("code", "feature without a code", row=i + 1)
    geoms = geoms_all
    fixed, repairs = topology.repair_geometries(geoms, codes, metric)
    for r in repairs:
        rep.data["invalid_geometries"].append(r.as_dict())
        if r.method:
            rep.warn("validity", f"{r.code}: {r.reason} → repaired with {r.method}", code=r.code)
        else:
            rep.error("validity", f"{r.code or 'row ' + str(r.index + 1)}: {r.reason}", code=r.code)
    dups = topology.duplicates(codes)
    rep.data["duplicates"] = dups
    for d in dups:
        rep.error("duplicates", f"code {d['code']} appears on rows {d['rows']}", code=d["code"])

    _check_limits(kind, codes, fixed, metric, rep)

    plan = Plan(kind)
    plan.exclusions = exclusions
    plan.exclusion_rows = [e["row"] for e in rep.data["exclusions"]]
    for rec, geom in zip(records, fixed, strict=True):
        plan.rows.append({"code": rec["code"], "geom": geom, "attrs": rec})
    if kind in ("street", "community"):
        _derive_codes(plan, rep, parents)
        codes = [r["code"] for r in plan.rows]
    model = MODELS[kind]
    plan.existing = {o.code: o for o in model.objects.filter(code__in=[c for c in codes if c])}
    scope = import_scope(actor)
    plan.scope = scope
    visible_communities = {
        c.code: c for c in scope.filter(Community.objects.select_related("street"))
    }
    if kind in ("street", "community"):
        _plan_admin(plan, rep, scope)
        _classify(plan, rep)
        _check_topology(plan, rep, metric)
        return plan
    _plan_scope(plan, rep, scope, visible_communities)
    if kind == "grid":
        _plan_grids(plan, rep, community, visible_communities, scope)
    elif kind == "compound":
        _plan_compounds(plan, rep, community, visible_communities)
    else:
        _plan_buildings(plan, rep, scope)
    _classify(plan, rep)
    _check_topology(plan, rep, metric)
    return plan


def _is_exclusion(role: str) -> bool:
    return role.strip().lower() in EXCLUSION_ROLES


def _exclusions(indexes: list[int], records: list, geoms: list, metric, rep: Report) -> list:  # type: ignore[no-untyped-def, type-arg]
    """The declared exclusions (enclaves) as valid polygons, listed in the report."""
    out = []
    for i in indexes:
        geom = topology.polygonal(shapely.make_valid(geoms[i])) if geoms[i] is not None else None
        if geom is None or geom.is_empty:
            rep.error("exclusion", f"exclusion on row {i + 1} has no polygon", row=i + 1)
            continue
        out.append(geom)
        rep.data["exclusions"].append(
            {
                "row": i + 1,
                "code": records[i].get("code", ""),
                "name": records[i].get("name", ""),
                "area_m2": round(float(metric.area([geom])[0]), 2),
            }
        )
    return out


def _limit(kind: str, name: str) -> float:
    override = getattr(settings, "BOUNDARY_LIMITS", {}).get(kind, {})
    if name in override:
        return float(override[name])
    if name in ("warn_vertices", "max_vertices"):
        return float(VERTEX_LIMITS[kind][0 if name == "warn_vertices" else 1])
    return float(LIMITS[kind][name])


def _check_limits(kind: str, codes: list[str], geoms: list, metric, rep: Report) -> None:  # type: ignore[no-untyped-def, type-arg]
    """Sanity limits by kind (:data:`LIMITS`, :data:`VERTEX_LIMITS`): area and vertex count."""
    present = [(i, g) for i, g in enumerate(geoms) if g is not None]
    if not present:
        return
    areas = metric.area([g for _, g in present])
    for (i, geom), area in zip(present, areas, strict=True):
        code = codes[i] or f"row {i + 1}"
        vertices = int(shapely.get_num_coordinates(geom))
        entry = {"code": codes[i], "row": i + 1, "area_m2": round(float(area), 1)}
        entry["vertices"] = vertices
        km2 = area / 1e6
        if area > _limit(kind, "max_area_m2"):
            rep.error(
                "limits",
                f"{kind} {code}: {km2:,.2f} km² is more than a {kind} can be "
                f"({_limit(kind, 'max_area_m2') / 1e6:,.2f} km²): wrong units, CRS or layer?",
                **entry,
            )
        elif area > _limit(kind, "warn_area_m2"):
            rep.warn("limits", f"{kind} {code}: unusually large ({km2:,.2f} km²)", **entry)
        elif area < _limit(kind, "min_area_m2"):
            rep.warn("limits", f"{kind} {code}: unusually small ({area:,.1f} m²)", **entry)
        else:
            entry = {}
        if vertices > _limit(kind, "max_vertices"):
            rep.error(
                "limits",
                f"{kind} {code}: {vertices} vertices, at most "
                f"{int(_limit(kind, 'max_vertices'))}: simplify the geometry",
                code=codes[i],
                row=i + 1,
                vertices=vertices,
            )
        elif vertices > _limit(kind, "warn_vertices"):
            rep.warn("limits", f"{kind} {code}: {vertices} vertices", code=codes[i], row=i + 1)
        if entry:
            rep.data["limits"].append(entry)


def _covering_codes(
    model: type[Street | Community],
    geoms: list,  # type: ignore[type-arg]
) -> list[str | None]:
    """The code of the ``model`` row (a street, a community) whose boundary covers each
    geometry's inner point, the first by code; None where none does (one SQL statement)."""
    table = model._meta.db_table
    wkb = [shapely.to_wkb(g.representative_point()) if g is not None else None for g in geoms]
    if not wkb:
        return []
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT w.i, (SELECT a.code FROM {table} a
                         WHERE a.boundary && p.g AND ST_Covers(a.boundary, p.g)
                         ORDER BY a.code LIMIT 1)
            FROM unnest(%s::bytea[]) WITH ORDINALITY AS w(b, i),
                 LATERAL (SELECT ST_SetSRID(ST_GeomFromWKB(w.b), 4326) AS g) p
            ORDER BY w.i
            """,
            [wkb],
        )
        return [row[1] for row in cur.fetchall()]


def _streets_at(geoms: list) -> list[str | None]:  # type: ignore[type-arg]
    """The street covering each geometry's inner point (one SQL statement)."""
    return _covering_codes(Street, geoms)


def _derive_codes(plan: Plan, rep: Report, parents: dict) -> None:  # type: ignore[type-arg]
    """Street and community codes: completed from a 3-digit sequence and checked
    (:func:`~gridsvc.territory.codes.street_code`, :func:`~gridsvc.territory.codes.community_code`).
    A community's street: its street column, else ``--street``, else the street its inner
    point lies in, else the first nine digits of its code."""
    spatial = (
        _streets_at([r["geom"] for r in plan.rows])
        if plan.kind == "community"
        else [None] * len(plan.rows)
    )
    for i, (row, at) in enumerate(zip(plan.rows, spatial, strict=True)):
        raw = row["code"]
        if not raw:
            continue
        try:
            if plan.kind == "street":
                district = row["attrs"].get("district") or parents.get("district")
                row["code"] = admin_codes.street_code(raw, district or None)
            else:
                given = row["attrs"].get("street") or parents.get("street")
                if given:
                    given = admin_codes.street_code(given)
                elif not (raw.isdigit() and len(raw) == 12):
                    given = at
                row["code"] = admin_codes.community_code(raw, given or None)
                row["street"] = row["code"][:9]
        except ValidationError as exc:
            rep.error("code", f"{plan.kind} {raw}: {'; '.join(exc.messages)}", row=i + 1)
            row["code_error"] = True
    dups = topology.duplicates([r["code"] for r in plan.rows])
    known = {d["code"] for d in rep.data["duplicates"]}
    for d in dups:
        if d["code"] not in known:
            rep.data["duplicates"].append(d)
            rep.error("duplicates", f"code {d['code']} appears on rows {d['rows']}", code=d["code"])


def _plan_admin(plan: Plan, rep: Report, scope: Scope) -> None:
    """Streets: only the operator or a superuser (a street is above every data manager).
    Communities: in a street of the caller's; an existing community keeps its street."""
    if plan.kind == "street":
        if not scope.everything:
            for i, row in enumerate(plan.rows):
                rep.error(
                    "scope",
                    f"street {row['code']}: streets are imported by the operator (command line) "
                    "or a superuser",
                    row=i + 1,
                )
        return
    streets = {
        s.code: s for s in Street.objects.filter(code__in=[r.get("street") for r in plan.rows])
    }
    for i, row in enumerate(plan.rows):
        if row.get("code_error") or not row["code"]:
            continue
        sc = row.get("street")
        street = streets.get(sc or "")
        existing = plan.existing.get(row["code"])
        if street is None:
            rep.error("street", f"community {row['code']}: street {sc} does not exist", row=i + 1)
        elif not scope.everything and street.pk not in scope.street_ids:
            rep.error(
                "scope",
                f"community {row['code']}: street {sc} is outside your territory",
                row=i + 1,
            )
        elif existing is not None and existing.street_id != street.pk:
            rep.error(
                "street",
                f"community {row['code']} belongs to another street: its code cannot move",
                row=i + 1,
            )
        else:
            row["street_obj"] = street


def _communities_at(geoms: list) -> list[str | None]:  # type: ignore[type-arg]
    """The community covering each geometry's inner point (one SQL statement)."""
    return _covering_codes(Community, geoms)


def _plan_scope(plan: Plan, rep: Report, scope: Scope, visible: dict) -> None:  # type: ignore[type-arg]
    """Grids and compounds stay inside the caller's streets: an existing row with the same
    code must be theirs, and the feature's inner point must not lie in another street's
    community. (Buildings: :func:`_plan_buildings`.)"""
    if scope.everything or plan.kind == "building":
        return
    model = MODELS[plan.kind]
    theirs = set(
        scope.filter(
            model.objects.filter(pk__in=[o.pk for o in plan.existing.values()])
        ).values_list("code", flat=True)
    )
    geoms = [r["geom"] for r in plan.rows]
    spatial = _communities_at(geoms)
    beyond = _area_outside(geoms, scope.street_ids)
    for i, (row, at, (out_m2, area_m2)) in enumerate(zip(plan.rows, spatial, beyond, strict=True)):
        code = row["code"]
        if code in plan.existing and code not in theirs:
            rep.error("scope", f"{plan.kind} {code}: code cannot be used here", row=i + 1)
        elif (at is not None and at not in visible) or (
            out_m2 > OUTSIDE_TOLERANCE * max(area_m2, 1.0)
        ):
            rep.error(
                "scope",
                f"{plan.kind} {code} lies outside your territory ({round(out_m2)} m² in "
                "another street's community)",
                row=i + 1,
            )
        elif out_m2 >= 1.0:
            rep.warn(
                "scope",
                f"{plan.kind} {code}: {round(out_m2)} m² along the edge lie in another "
                "street's community",
                row=i + 1,
            )


def _area_outside(geoms: list, street_ids: set[int]) -> list[tuple[float, float]]:  # type: ignore[type-arg]
    """For each geometry: (m² inside communities of streets other than ``street_ids``, its
    own area in m²), one SQL statement."""
    wkb = [shapely.to_wkb(g) if g is not None else None for g in geoms]
    if not wkb:
        return []
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT w.i,
                   COALESCE((SELECT SUM(ST_Area(ST_Intersection(c.boundary, p.g)::geography))
                             FROM territory_community c
                             WHERE c.boundary && p.g AND NOT (c.street_id = ANY(%s))), 0),
                   COALESCE(ST_Area(p.g::geography), 0)
            FROM unnest(%s::bytea[]) WITH ORDINALITY AS w(b, i),
                 LATERAL (SELECT ST_SetSRID(ST_GeomFromWKB(w.b), 4326) AS g) p
            ORDER BY w.i
            """,
            [list(street_ids), wkb],
        )
        return [(float(r[1]), float(r[2])) for r in cur.fetchall()]


def _plan_grids(
    plan: Plan,
    rep: Report,
    community: str | None,
    visible: dict,  # type: ignore[type-arg]
    scope: Scope,
) -> None:
    file_codes = {r["code"] for r in plan.rows}
    for i, row in enumerate(plan.rows):
        code, attrs = row["code"], row["attrs"]
        parent = attrs.get("parent") or ""
        cc = attrs.get("community") or community or code[:12]
        row["community"] = cc
        if cc not in visible:
            exists = Community.objects.filter(code=cc).exists()
            rep.error(
                "community",
                f"grid {code}: community {cc} "
                + ("is outside your territory" if exists else "does not exist"),
                row=i + 1,
            )
            continue
        row["community_obj"] = visible[cc]
        want = 18 if parent else 15
        if not (re.fullmatch(r"\d+", code) and len(code) == want and code.startswith(cc)):
            rep.error(
                "code",
                f"grid {code}: a grid code is the community code {cc} + 3 digits"
                + (" (+3 for a micro-grid)" if parent else ""),
                row=i + 1,
            )
        if (
            parent
            and parent not in file_codes
            and not scope.filter(Grid.objects.filter(code=parent)).exists()
        ):
            rep.error(
                "parent",
                f"grid {code}: parent grid {parent} does not exist in your territory",
                row=i + 1,
            )


def _plan_compounds(plan: Plan, rep: Report, community: str | None, visible: dict) -> None:  # type: ignore[type-arg]
    spatial = _communities_at([r["geom"] for r in plan.rows])
    for i, (row, at) in enumerate(zip(plan.rows, spatial, strict=True)):
        cc = row["attrs"].get("community") or community or at
        row["community"] = cc
        if not cc:
            rep.error(
                "community",
                f"compound {row['code']}: no community column, no --community, and it lies in "
                "no community",
                row=i + 1,
            )
        elif cc not in visible:
            rep.error(
                "community",
                f"compound {row['code']}: community {cc} unknown or outside your territory",
                row=i + 1,
            )
        else:
            row["community_obj"] = visible[cc]


def _plan_buildings(plan: Plan, rep: Report, scope) -> None:  # type: ignore[no-untyped-def]
    if scope.everything:
        return
    spatial = _communities_at([r["geom"] for r in plan.rows])
    allowed = set(
        Community.objects.filter(street__in=scope.street_ids).values_list("code", flat=True)
    )
    for i, (row, cc) in enumerate(zip(plan.rows, spatial, strict=True)):
        existing = plan.existing.get(row["code"])
        if cc not in allowed or (
            existing is not None
            and not scope.filter(Building.objects.filter(pk=existing.pk)).exists()
        ):
            rep.error("scope", f"building {row['code']} lies outside your territory", row=i + 1)


def _attributes(kind: str, row: dict) -> dict[str, Any]:  # type: ignore[type-arg]
    """Attributes from the file; None where the file has no such column (keep what is there)."""
    a = row["attrs"]
    skip = ("code", "role", "district")
    out: dict[str, Any] = {f: a.get(f) for f in KIND_FIELDS[kind] if f not in skip}
    out["name"] = out["name"] or None  # an empty name cell keeps the name (or the code)
    if kind in ("grid", "compound"):
        out["community"] = row.get("community", "")
    if kind == "community":
        out["street"] = row.get("street", "")
    if kind == "building" and out["floors"] is not None:
        f = out["floors"]
        out["floors"] = int(float(f)) if re.fullmatch(r"\d+(\.0+)?", f) else None
    return out


_DEFAULTS = {
    "community": "",
    "street": "",
    "parent": "",
    "responsible_body": "",
    "property_company": "",
    "address": "",
    "floors": 6,
}


def _current_attributes(kind: str, obj) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    if kind == "street":
        return {"name": obj.name}
    if kind == "community":
        return {"name": obj.name, "street": obj.street.code}
    if kind == "grid":
        return {
            "name": obj.name,
            "community": obj.community.code,
            "parent": obj.parent.code if obj.parent_id else "",
            "responsible_body": obj.responsible_body,
        }
    if kind == "compound":
        return {
            "name": obj.name,
            "community": obj.community.code,
            "property_company": obj.property_company,
        }
    return {"name": obj.name, "address": obj.address, "floors": obj.floors}


def _shapely(geos: GEOSGeometry):  # type: ignore[no-untyped-def]
    return shapely.from_wkb(bytes(geos.wkb))


def _classify(plan: Plan, rep: Report) -> None:
    needs = {"community": "street_obj", "grid": "community_obj", "compound": "community_obj"}
    for row in plan.rows:
        if row["geom"] is None or not row["code"] or row.get("code_error"):
            continue
        if plan.kind in needs and needs[plan.kind] not in row:
            continue  # its community/street is in error: reported per feature already
        attrs = _attributes(plan.kind, row)
        obj = plan.existing.get(row["code"])
        if obj is None:
            defaults = _DEFAULTS | {"name": row["code"]}
            row["attributes"] = {k: defaults[k] if v is None else v for k, v in attrs.items()}
            rep.data["created"].append(row["code"])
            continue
        old_geos = getattr(obj, GEOM_FIELD[plan.kind])
        old = _shapely(old_geos) if old_geos is not None else shapely.Polygon()
        cur = _current_attributes(plan.kind, obj)
        row["attributes"] = attrs = {k: cur[k] if v is None else v for k, v in attrs.items()}
        same_geom = shapely.equals_exact(
            shapely.normalize(old), shapely.normalize(row["geom"]), 1e-7
        )
        if same_geom and attrs == cur:
            rep.data["unchanged"].append(row["code"])
        else:
            rep.data["updated"].append(row["code"])


def _db_layer(sql: str, params: list) -> tuple[list[str], list]:  # type: ignore[type-arg]
    with connection.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    return [r[0] for r in rows], [shapely.from_wkb(bytes(r[1])) for r in rows]


def _check_topology(plan: Plan, rep: Report, metric: topology.Metric) -> None:
    rows = [r for r in plan.rows if r["geom"] is not None and r["code"]]
    if not rows:
        return
    file_codes = [r["code"] for r in rows]
    file_geoms = [r["geom"] for r in rows]
    for n, ex in enumerate(plan.exclusions):
        for o in topology.overlaps([ex, *file_geoms], ["", *file_codes], metric=metric):
            if o["a"] == "" or o["b"] == "":
                code = o["b"] or o["a"]
                rep.warn(
                    "exclusion",
                    f"{plan.kind} {code} reaches {o['area_m2']} m² into the declared exclusion "
                    f"on row {plan.data_rows(n)}",
                    code=code,
                )
    if plan.kind in ("street", "community"):
        _check_admin_topology(plan, rep, rows, metric)
        return
    if plan.kind == "grid":
        for cc in sorted({r.get("community") for r in rows if r.get("community_obj")}):
            top = [r for r in rows if r.get("community") == cc and not r["attrs"].get("parent")]
            codes, geoms = _db_layer(
                "SELECT code, ST_AsBinary(boundary) FROM territory_grid g "
                "JOIN (SELECT id AS cid FROM territory_community WHERE code = %s) c "
                "ON g.community_id = c.cid WHERE parent_id IS NULL AND NOT (code = ANY(%s))",
                [cc, [r["code"] for r in top]],
            )
            codes += [r["code"] for r in top]
            geoms += [r["geom"] for r in top]
            _overlaps(rep, "grids", codes, geoms, metric)
            community = Community.objects.get(code=cc)
            boundary = _shapely(community.boundary) if community.boundary else None
            for gap in topology.gaps(geoms + plan.exclusions, boundary, metric=metric):
                gap["community"] = cc
                rep.data["gaps"].append(gap)
                rep.warn("gaps", f"community {cc}: {gap['area_m2']} m² covered by no grid", **gap)
            b_codes, b_geoms = _db_layer(
                "SELECT b.code, ST_AsBinary(b.footprint) FROM territory_building b "
                "WHERE b.footprint && ST_SetSRID(ST_GeomFromWKB(%s), 4326)",
                [
                    shapely.to_wkb(
                        shapely.envelope(
                            shapely.union_all(geoms + ([boundary] if boundary else []))
                        )
                    )
                ],
            )
            _containment(rep, b_codes, b_geoms, codes, geoms, metric)
    elif plan.kind == "compound":
        codes, geoms = _db_layer(
            "SELECT code, ST_AsBinary(boundary) FROM territory_compound WHERE NOT (code = ANY(%s)) "
            "AND boundary && ST_SetSRID(ST_GeomFromWKB(%s), 4326)",
            [file_codes, shapely.to_wkb(shapely.envelope(shapely.union_all(file_geoms)))],
        )
        _overlaps(rep, "compounds", codes + file_codes, geoms + file_geoms, metric)
    else:
        env = shapely.to_wkb(shapely.envelope(shapely.union_all(file_geoms)))
        codes, geoms = _db_layer(
            "SELECT code, ST_AsBinary(footprint) FROM territory_building WHERE NOT (code = ANY(%s)) "
            "AND footprint && ST_SetSRID(ST_GeomFromWKB(%s), 4326)",
            [file_codes, env],
        )
        _overlaps(rep, "buildings", codes + file_codes, geoms + file_geoms, metric)
        g_codes, g_geoms = _db_layer(
            "SELECT code, ST_AsBinary(boundary) FROM territory_grid WHERE parent_id IS NULL "
            "AND boundary && ST_SetSRID(ST_GeomFromWKB(%s), 4326)",
            [env],
        )
        _containment(rep, file_codes, file_geoms, g_codes, g_geoms, metric)


def _check_admin_topology(plan: Plan, rep: Report, rows: list, metric) -> None:  # type: ignore[no-untyped-def, type-arg]
    """Streets: overlaps with other streets. Communities: overlaps with other communities,
    and per street, the parts of the street's boundary covered by none of its communities
    (gaps) — a declared exclusion, or a hole in the street's own boundary, is no gap."""
    if plan.scope is not None and plan.scope.empty:
        return
    if plan.kind == "street" and not (plan.scope and plan.scope.everything):
        return  # refused (scope) anyway: no neighbouring street's geometry in the report
    file_codes = [r["code"] for r in rows]
    env = shapely.to_wkb(shapely.envelope(shapely.union_all([r["geom"] for r in rows])))
    table = f"territory_{plan.kind}"
    codes, geoms = _db_layer(
        f"SELECT code, ST_AsBinary(boundary) FROM {table} WHERE NOT (code = ANY(%s)) "
        "AND boundary IS NOT NULL AND boundary && ST_SetSRID(ST_GeomFromWKB(%s), 4326)",
        [file_codes, env],
    )
    what = "streets" if plan.kind == "street" else "communities"
    _overlaps(rep, what, codes + file_codes, geoms + [r["geom"] for r in rows], metric)
    if plan.kind != "community":
        return
    for sc in sorted({r["street"] for r in rows if r.get("street_obj")}):
        street = Street.objects.get(code=sc)
        mine = [r for r in rows if r.get("street") == sc]
        others_codes, others = _db_layer(
            "SELECT c.code, ST_AsBinary(c.boundary) FROM territory_community c "
            "WHERE c.street_id = %s AND c.boundary IS NOT NULL AND NOT (c.code = ANY(%s))",
            [street.pk, [r["code"] for r in mine]],
        )
        geoms = others + [r["geom"] for r in mine]
        boundary = _shapely(street.boundary) if street.boundary else None
        for gap in topology.gaps(geoms + plan.exclusions, boundary, metric=metric):
            gap["street"] = sc
            rep.data["gaps"].append(gap)
            rep.warn("gaps", f"street {sc}: {gap['area_m2']} m² covered by no community", **gap)


def _overlaps(rep: Report, what: str, codes: list, geoms: list, metric) -> None:  # type: ignore[no-untyped-def, type-arg]
    for o in topology.overlaps(geoms, codes, metric=metric):
        o["layer"] = what
        rep.data["overlaps"].append(o)
        rep.warn("overlaps", f"{what} {o['a']} and {o['b']} overlap by {o['area_m2']} m²", **o)


def _containment(rep: Report, b_codes, b_geoms, g_codes, g_geoms, metric) -> None:  # type: ignore[no-untyped-def]
    none, two = topology.containment(b_geoms, b_codes, g_geoms, g_codes, metric=metric)
    rep.data["buildings_in_no_grid"] = none
    rep.data["buildings_in_two_grids"] = two
    for b in none:
        rep.warn("containment", f"building {b['code']} lies in no grid", code=b["code"])
    for b in two:
        names = ", ".join(f"{g['code']} ({g['share']:.0%})" for g in b["grids"])
        rep.warn("containment", f"building {b['code']} lies in two grids: {names}", code=b["code"])


# ---------------------------------------------------------------- applying
def _geos(geom) -> GEOSGeometry:  # type: ignore[no-untyped-def]
    return GEOSGeometry(memoryview(shapely.to_wkb(geom)), srid=4326)


def _apply(  # type: ignore[no-untyped-def]
    plan: Plan, rep: Report, actor, file_name: str, progress: Progress | None, run=None
) -> None:
    now = timezone.now()
    queued = run is not None and run.pk is not None
    run = run or ImportRun(kind=plan.kind)
    run.file_name = file_name[:255]
    run.actor = actor if getattr(actor, "pk", None) else None
    run.dry_run, run.ok, run.applied = False, True, True
    if not queued:  # a queued run's row is written at the end: progress updates it meanwhile
        run.save()
    changed = set(rep.data["created"]) | set(rep.data["updated"])
    rows = [r for r in plan.rows if r["code"] in changed]
    model = MODELS[plan.kind]
    gfield = GEOM_FIELD[plan.kind]
    touched_area = []
    last_versions = {
        v["code"]: v["version"]
        for v in BoundaryVersion.objects.filter(kind=plan.kind, code__in=changed)
        .values("code")
        .annotate(version=Max("version"))
    }
    versions: list[BoundaryVersion] = []
    parents: dict[str, str] = {}
    for n, row in enumerate(rows, start=1):
        code, attrs = row["code"], row["attributes"]
        geom = _geos(row["geom"])
        obj = plan.existing.get(code)
        if obj is not None:
            old_geom = getattr(obj, gfield)
            if old_geom is not None:
                touched_area.append(old_geom)
            # keep the state from before imports as version 1
            if code not in last_versions and old_geom is not None:
                versions.append(
                    BoundaryVersion(
                        kind=plan.kind,
                        code=code,
                        version=1,
                        geometry=old_geom,
                        attributes=_current_attributes(plan.kind, obj),
                        valid_from=now,
                        valid_to=now,
                    )
                )
                last_versions[code] = 1
        else:
            obj = model(code=code)
        last_versions.setdefault(code, 0)
        touched_area.append(geom)
        setattr(obj, gfield, geom)
        obj.name = attrs["name"]
        if plan.kind == "community":
            obj.street = row["street_obj"]
        if plan.kind in ("grid", "compound"):
            obj.community = row["community_obj"]
        if plan.kind == "grid":
            obj.responsible_body = attrs["responsible_body"]
            parents[code] = attrs["parent"]
            obj.parent = None if not attrs["parent"] else obj.parent
        elif plan.kind == "compound":
            obj.property_company = attrs["property_company"]
        elif plan.kind in ("street", "community"):
            pass
        else:
            obj.address = attrs["address"]
            if attrs["floors"] is not None:
                obj.floors = attrs["floors"]
            obj.point = _geos(row["geom"].representative_point())
        if plan.kind == "building":
            _save_without_derivation(obj)
        else:
            obj.save()
        plan.existing[code] = obj
        versions.append(
            BoundaryVersion(
                kind=plan.kind,
                code=code,
                version=last_versions[code] + 1,
                geometry=geom,
                attributes=attrs,
                run=run,
                valid_from=now,
            )
        )
        if progress:
            progress(n, len(rows), "saving")
    scope = plan.scope or import_scope(actor)
    grids = scope.filter(Grid.objects.all())
    for code, parent in parents.items():  # after all grids exist (a parent may be in the file)
        if parent:
            grids.filter(code=code).update(parent=grids.get(code=parent))
    BoundaryVersion.objects.filter(kind=plan.kind, code__in=changed, valid_to__isnull=True).update(
        valid_to=now
    )
    BoundaryVersion.objects.bulk_create(versions)
    if touched_area and plan.kind not in ("street", "community"):
        envelope = shapely.envelope(shapely.union_all([_shapely(g) for g in touched_area]))
        ids = _buildings_to_rederive(scope, _geos(envelope))
        rep.data["rederived_buildings"] = derive_building_containers(ids)
    run.report = rep.as_dict() | {"applied": True}
    run.save(update_fields=["report", "file_name", "actor", "dry_run", "ok", "applied"])
    plan.run = run


def _buildings_to_rederive(scope: Scope, envelope: GEOSGeometry) -> list[int]:
    """Buildings near the import whose grid/compound may change: only the caller's (in a grid
    of their streets, or in no grid but inside one of their streets' communities)."""
    near = Building.objects.filter(footprint__bboverlaps=envelope)
    if scope.everything:
        return list(near.values_list("pk", flat=True))
    ids = set(scope.filter(near).values_list("pk", flat=True))
    gridless = list(near.filter(grid__isnull=True).values_list("pk", flat=True))
    if gridless and scope.street_ids:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT b.id FROM territory_building b WHERE b.id = ANY(%s) AND EXISTS ("
                "SELECT 1 FROM territory_community c WHERE c.street_id = ANY(%s) "
                "AND c.boundary && b.footprint "
                "AND ST_Covers(c.boundary, ST_PointOnSurface(b.footprint)))",
                [gridless, list(scope.street_ids)],
            )
            ids |= {row[0] for row in cur.fetchall()}
    return sorted(ids)


def _save_without_derivation(building: Building) -> None:
    """Save a building without its per-row container derivation (done once at the end)."""
    Model.save(building)


# ---------------------------------------------------------------- background imports (API)
QUEUE_OPTIONS = ("layer", "community", "street", "district", "crs", "gcj02", "strict", "mapping")


def run_queued_boundaries(run_id: int) -> dict[str, Any]:
    """The worker's side of :func:`queue_boundary_import`: check and import the run's file
    within its uploader's scope (as their positions are now), writing progress (features
    checked, then saved) where the uploader sees it; keep the report, drop the file."""
    import tempfile

    from gridsvc.crypto import fernet

    run = ImportRun.objects.select_related("actor").get(pk=run_id)
    if run.status != ImportRun.Status.QUEUED:  # a retry of a finished job
        return {"run": run.pk, "status": run.status}
    ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.RUNNING, phase="reading")
    run.status, run.phase = ImportRun.Status.RUNNING, "reading"
    opts = dict((run.report or {}).get("options") or {})
    writer = ProgressWriter(run.pk)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"upload{Path(run.file_name).suffix.lower()}"
            path.write_bytes(fernet().decrypt(bytes(run.upload or b"")))
            result = import_boundaries(
                path,
                run.kind,
                layer=opts.get("layer"),
                dry_run=False,
                gcj02=bool(opts.get("gcj02")),
                community=opts.get("community"),
                street=opts.get("street"),
                district=opts.get("district"),
                crs=opts.get("crs"),
                mapping=opts.get("mapping"),
                strict=bool(opts.get("strict")),
                actor=run.actor,
                file_name=run.file_name,
                progress=writer,
                max_features=max_features_limit(),
                run=run,
            )
    except Exception as exc:  # unreadable upload, database gone …: recorded, not lost
        rep = Report(run.kind, run.file_name, False, bool(opts.get("strict")))
        rep.error("file", f"import failed: {type(exc).__name__}")
        result = rep.as_dict()
        run.report, run.ok, run.applied = result, False, False
    finally:
        writer.close()
    run.refresh_from_db(fields=["rows_total", "rows_done"])
    run.report = result
    run.ok, run.applied = result["ok"], result["applied"]
    run.status = ImportRun.Status.DONE if result["applied"] else ImportRun.Status.FAILED
    run.phase = "done"
    run.rows_total = run.rows_done = result.get("features", 0)
    run.finished_at = timezone.now()
    run.upload = None
    run.save()
    return {"run": run.pk, "status": run.status, "features": result.get("features", 0)}
