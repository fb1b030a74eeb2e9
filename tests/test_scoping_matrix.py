"""The scoping matrix, generated from the URL configuration (issue 15, "Done means").

Every endpoint the site serves — router views and the rest: tiles, OGC API, Open311, reports,
ledgers, exports, imports, sync, offline packages — is found by walking
``django.urls.get_resolver()``. Each (method, path) must either

- be covered by a probe of the matrix: for a few field roles, what it lists lies inside the
  role's territory, and an object outside it (by URL id, query id or body id) is 403/404/400 —
  never data, never acted on; or
- be in :data:`ALLOWED` with the reason it is not about territory (the caller's own things,
  reference data, public catalogues).

A new endpoint that is in neither fails :func:`test_every_endpoint_is_in_the_matrix_or_allowed`.

Likewise every writable body field that carries an id (found in the OpenAPI request bodies of
the write endpoints, where drf-spectacular reads the serializers' fields) must have a probe in
:data:`BODY_ID_PROBES` that sends a foreign id and sees it refused like a nonexistent one, or be
listed in :data:`NOT_IDS` (a number that is not an id). See docs/security.md, "Ids in request
bodies".
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import pytest
from django.db.models import Model, Q
from django.urls import URLResolver, clear_url_caches, get_resolver
from rest_framework.test import APIClient

from gridsvc.accounts.models import Member
from gridsvc.cases.models import Case, CaseEvent, CaseRequest, Department, FollowUp
from gridsvc.chain.models import Position
from gridsvc.chain.scope import Scope, scope_for
from gridsvc.territory.models import (
    Building,
    Community,
    Compound,
    Grid,
    Household,
    Place,
    Resident,
    Street,
    Unit,
)
from gridsvc.visits.models import DailyReport, Visit, VisitTask

from .test_assistance import (
    ASSISTANCE_ALLOWED,
    ASSISTANCE_BODY_ID_PROBES,
    ASSISTANCE_EXPLICIT,
    ASSISTANCE_NOT_IDS,
)
from .test_calendar_rules import RULES_ALLOWED, RULES_BODY_ID_PROBES
from .test_community_field_records import (
    FIELD_RECORDS_BODY_ID_PROBES,
    FIELD_RECORDS_EXPLICIT,
)
from .test_community_work import (
    COMMUNITY_BODY_ID_PROBES,
    COMMUNITY_CREATE_BY_BODY,
    COMMUNITY_EXPLICIT,
    COMMUNITY_NOT_IDS,
)
from .test_unity_field import UNITY_FIELD_EXPLICIT
from .test_web_api import WEB_API_BODY_ID_PROBES, WEB_API_EXPLICIT

pytestmark = pytest.mark.django_db

#: a few roles, from a grid member down to a unit head (a street desk sees everything)
ROLES = ["grid1", "bh-001", "uh-001-1", "pm-C01"]
DENIED = (403, 404)


# ---------------------------------------------------------------------------- the URL walk
def _norm(route: str) -> str:
    route = route.replace("^", "").replace("$", "")
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", route)
    route = re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", route)
    return "/" + route


def _walk(patterns, prefix: str = ""):  # type: ignore[no-untyped-def]
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        else:
            yield prefix + str(p.pattern), p.callback


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    view: type | None
    action: str | None  # viewset action name

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def endpoints() -> dict[str, Endpoint]:
    """Every (method, path) of the site except the Django admin and format-suffix copies."""
    out: dict[str, Endpoint] = {}
    for route, cb in _walk(get_resolver().url_patterns):
        path = _norm(route)
        if path.startswith("/admin/") or "<format>" in path or "drf_format_suffix" in route:
            continue
        actions = getattr(cb, "actions", None)
        cls = getattr(cb, "cls", None) or getattr(cb, "view_class", None)
        if actions:
            # DRF adds "head" (= the GET handler) to a route's actions on its first request
            pairs = [(m.upper(), a) for m, a in actions.items() if m != "head"]
        elif cls is not None:
            pairs = [
                (m.upper(), None)
                for m in ("get", "post", "put", "patch", "delete")
                if hasattr(cls, m)
            ]
        else:
            pairs = [("ANY", None)]
        for method, act in pairs:
            ep = Endpoint(method, path, cls, act)
            out[ep.key] = ep
    return out


# ---------------------------------------------------------------------------- allow-list
SELF = "about the caller, not a territory: answers only the caller's own rows"
CATALOGUE = "reference data or a public catalogue: the same for everyone, no personal data"
ALLOWED: dict[str, str] = {
    "ANY /": "the web page (HTML shell); its data comes from the API",
    "ANY /health": "liveness: database version only",
    "ANY /health/worker": "liveness of the background worker: no territory data",
    "GET /login/": "web login form",
    "ANY /field/": "the field app's HTML shell (static, GET only); its data comes from the API",
    "ANY /field/<name>": "the field app's static files (a fixed list, GET only): no data",
    "POST /login/": "web login (lockout and throttle: tests/test_security.py)",
    "PUT /login/": "web login view (Django's LoginView answers PUT like POST)",
    "GET /logout/": "web logout",
    "POST /logout/": "web logout",
    "GET /api/docs/": "Swagger UI",
    "GET /api/schema/": "OpenAPI schema",
    "GET /api/schema/paths/": "the OpenAPI schema's path templates (public, like the schema)",
    "GET /api/v1/": "API root: links only",
    "POST /api/v1/auth/token/": "login (throttle, lockout: tests/test_security.py)",
    "POST /api/v1/auth/token/refresh/": "token refresh of the caller's own device",
    "POST /api/v1/auth/logout/": "logout of the caller's own refresh token",
    "GET /api/v1/auth/devices/": SELF,
    "POST /api/v1/auth/devices/<pk>/revoke/": SELF + " (others' devices are 404)",
    "GET /api/v1/privacy/grants/": SELF,
    "POST /api/v1/privacy/grants/": SELF + " (a grant for oneself; body: reason, minutes)",
    "POST /api/v1/privacy/grants/<pk>/revoke/": SELF,
    "GET /api/v1/audit/": "limited to the caller's street (issue 15 item 12, test_security.py)",
    "GET /api/v1/audit/<pk>/": "limited to the caller's street (issue 15 item 12)",
    "GET /api/v1/me/": SELF,
    "GET /api/v1/sync/limits/": "server-wide upload and sync limits: no territory data",
    "GET /api/v1/inbox/": SELF + " (messages addressed to the caller)",
    "GET /api/v1/visits/route/": SELF + " (today's tasks assigned to the caller)",
    "GET /api/v1/categories/": CATALOGUE,
    "GET /api/v1/categories/<pk>/": CATALOGUE,
    "GET /api/v1/departments/": CATALOGUE + " (transfer targets are checked per case)",
    "GET /api/v1/departments/<pk>/": CATALOGUE,
    "GET /api/v1/visit-rules/": CATALOGUE,
    "GET /api/v1/visit-rules/<pk>/": CATALOGUE,
    "POST /api/v1/visit-rules/": CATALOGUE + "; staff only",
    "PUT /api/v1/visit-rules/<pk>/": CATALOGUE + "; staff only",
    "PATCH /api/v1/visit-rules/<pk>/": CATALOGUE + "; staff only",
    "DELETE /api/v1/visit-rules/<pk>/": CATALOGUE + "; staff only",
    "GET /api/v1/layers/": CATALOGUE + " (layer list)",
    "GET /api/v1/reports/roster-template/": CATALOGUE + " (the empty roster workbook)",
    "POST /api/v1/reports/imports/roster/": (
        "a file body: identities are resolved inside the caller's territory row by row "
        "(issue 15 item 1, tests/test_dataio_roster.py)"
    ),
    "POST /api/v1/reports/imports/boundaries/": (
        "a file body: boundary imports are for data managers (street tier), checked in "
        "tests/test_dataio_boundaries.py"
    ),
    "GET /tiles/<layer>.json": CATALOGUE + " (TileJSON; bounds = the caller's own extent)",
    "GET /ogc/": CATALOGUE + " (OGC landing page)",
    "GET /ogc/conformance": CATALOGUE,
    "GET /ogc/collections": CATALOGUE + " (extents = the caller's own)",
    "GET /ogc/collections/<collection_id>": CATALOGUE + " (extent = the caller's own)",
    "GET /open311/v2/discovery.json": CATALOGUE,
    "GET /open311/v2/services.json": CATALOGUE,
    "GET /open311/v2/services/<service_code>.json": CATALOGUE,
    "GET /open311/v2/<rest>": "unknown Open311 paths: a 404 in the spec's format",
    "POST /open311/v2/<rest>": "unknown Open311 paths: a 404 in the spec's format",
}
ALLOWED.update(RULES_ALLOWED)  # issue 18 item 15: /api/v1/rules/…
ALLOWED.update(ASSISTANCE_ALLOWED)  # issue 21: /api/v1/assistance/ (create)


# ---------------------------------------------------------------------------- the context
@dataclass
class Ctx:
    """One role: its client, scope, what it may see and some objects it may not."""

    role: str
    member: Member = field(init=False)
    scope: Scope = field(init=False)
    client: APIClient = field(init=False)

    def __post_init__(self) -> None:
        self.member = Member.objects.get(username=self.role)
        self.scope = scope_for(self.member)
        self.client = APIClient()
        self.client.force_authenticate(self.member)

    @cached_property
    def cases(self) -> set[int]:
        """Cases the role may see: its territory's, plus those it handles or reported."""
        mine = Q(handler=self.member) | Q(reported_by=self.member)
        in_scope = self.scope.filter(Case.objects.all()).values("pk")
        return set(Case.objects.filter(Q(pk__in=in_scope) | mine).values_list("pk", flat=True))

    @cached_property
    def members(self) -> set[int]:
        """Members whose positions lie in the role's territory, and the role itself."""
        held = self.scope.filter(Position.objects.held_at())
        return set(held.values_list("member_id", flat=True)) | {self.member.pk}

    def visible(self, model: type[Model]) -> set[int] | None:
        if model is Case:
            return self.cases
        if model in (CaseRequest, FollowUp):
            return set(model.objects.filter(case__in=self.cases).values_list("pk", flat=True))
        if model is DailyReport:
            rows = DailyReport.objects.filter(member__in=self.members)
            return set(rows.values_list("pk", flat=True))
        try:
            return set(self.scope.filter(model.objects.all()).values_list("pk", flat=True))
        except TypeError:
            return None

    def foreign(self, model: type[Model], n: int = 2) -> list[int]:
        seen = self.visible(model) or set()
        rows = model.objects.exclude(pk__in=seen).order_by("pk").values_list("pk", flat=True)
        return list(rows[:n])

    def foreign_grid(self) -> Grid:
        return Grid.objects.exclude(pk__in=self.visible(Grid) or set()).order_by("code").first()


def _rows(body):  # type: ignore[no-untyped-def]
    if isinstance(body, list):
        return body
    for key in ("results", "features"):
        if key in body:
            return body[key]
    raise AssertionError(f"no rows in {str(body)[:200]}")


def _listed_subset(ctx: Ctx, url: str, model: type[Model], key: str = "id") -> None:
    r = ctx.client.get(url)
    assert r.status_code == 200, (ctx.role, url, r.status_code, r.content[:200])
    listed = {row[key] for row in _rows(r.json()) if row.get(key) is not None}
    visible = ctx.visible(model)
    assert visible is not None
    assert listed <= visible, (
        f"{ctx.role} gets foreign rows from {url}: {sorted(listed - visible)[:5]}"
    )


def _refused(r, what: str, codes: tuple[int, ...] = DENIED) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code in codes, (what, r.status_code, r.content[:200])


# ---------------------------------------------------------------------------- probes
Probe = Callable[[Ctx], None]


def _router_model(ep: Endpoint) -> type[Model] | None:
    for attr in ("base_queryset", "queryset"):
        qs = getattr(ep.view, attr, None)
        if qs is not None and qs.model is not None:
            return qs.model
    serializer = getattr(ep.view, "serializer_class", None)
    return getattr(getattr(serializer, "Meta", None), "model", None)


def _router_probe(ep: Endpoint) -> Probe | None:
    """Viewset routes: lists are subsets of the territory; a detail (or a detail action) of a
    foreign object is 403/404."""
    if ep.action is None or ep.view is None:
        return None
    model = _router_model(ep)
    if model is None:
        return None
    if ep.action == "list" and "<" not in ep.path:

        def probe_list(ctx: Ctx) -> None:
            if ctx.visible(model) is None:
                raise AssertionError(f"{model.__name__} has no territory rule")
            sep = "&" if "?" in ep.path else "?"
            _listed_subset(ctx, f"{ep.path}{sep}page_size=500", model)

        return probe_list
    if "<pk>" in ep.path:

        def probe_detail(ctx: Ctx) -> None:
            if ctx.visible(model) is None:
                raise AssertionError(f"{model.__name__} has no territory rule")
            for pk in ctx.foreign(model):
                url = ep.path.replace("<pk>", str(pk)).replace("<name>", "comment")
                r = getattr(ctx.client, ep.method.lower())(url, {}, format="json")
                _refused(r, f"{ep.key} {pk}", (*DENIED, 405))

        return probe_detail
    return None


def _tile_over(grid: Grid, z: int) -> tuple[int, int, int]:
    from geo.hexbin import lonlat_to_tile

    c = grid.boundary.point_on_surface
    return (z, *lonlat_to_tile(c.x, c.y, z))


LAYER_MODELS = {
    "grids": Grid,
    "compounds": Compound,
    "buildings": Building,
    "places": Place,
    "cases": Case,
    "visits": Visit,
    "households": Household,
}


def probe_tiles(ctx: Ctx) -> None:
    import gzip

    import mapbox_vector_tile

    from gridsvc.layers.services import HOUSEHOLD_DETAIL_ZOOM

    grid = ctx.foreign_grid()
    for layer, model in LAYER_MODELS.items():
        z, x, y = _tile_over(grid, HOUSEHOLD_DETAIL_ZOOM if layer == "households" else 15)
        r = ctx.client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt")
        assert r.status_code == 200, (layer, r.status_code)
        raw = gzip.decompress(r.content) if r.get("Content-Encoding") == "gzip" else r.content
        decoded = mapbox_vector_tile.decode(raw) if raw else {}
        ids = {f["id"] for f in decoded.get(layer, {}).get("features", [])}
        assert ids <= (ctx.visible(model) or set()), (ctx.role, layer, sorted(ids)[:5])
    r = ctx.client.get(f"/tiles/heatmap/{z}/{x}/{y}.mvt")
    assert r.status_code == 200


def probe_layer_features(ctx: Ctx) -> None:
    for layer, model in LAYER_MODELS.items():
        _listed_subset(ctx, f"/api/v1/layers/{layer}/?page_size=500", model)


def probe_ogc_items(ctx: Ctx) -> None:
    for layer, model in LAYER_MODELS.items():
        _listed_subset(ctx, f"/ogc/collections/{layer}/items?limit=2000", model)


def probe_ogc_item(ctx: Ctx) -> None:
    for layer, model in LAYER_MODELS.items():
        for pk in ctx.foreign(model, 1):
            _refused(ctx.client.get(f"/ogc/collections/{layer}/items/{pk}"), layer, (404,))


def probe_open311_list(ctx: Ctx) -> None:
    r = ctx.client.get("/open311/v2/requests.json")
    assert r.status_code == 200
    numbers = {row["service_request_id"] for row in r.json()}
    visible = set(Case.objects.filter(pk__in=ctx.cases).values_list("number", flat=True))
    assert numbers <= visible


def probe_open311_detail(ctx: Ctx) -> None:
    for pk in ctx.foreign(Case):
        number = Case.objects.get(pk=pk).number
        _refused(ctx.client.get(f"/open311/v2/requests/{number}.json"), number, (404,))


def probe_chain(ctx: Ctx) -> None:
    for name, model in (("household", Household), ("building", Building), ("unit", Unit)):
        for pk in ctx.foreign(model, 1):
            _refused(ctx.client.get(f"/api/v1/chain/?{name}={pk}"), name, (404,))


def probe_offline(suffix: str) -> Probe:
    def probe(ctx: Ctx) -> None:
        grid = ctx.foreign_grid()
        _refused(ctx.client.get(f"/api/v1/offline/grids/{grid.pk}/{suffix}"), suffix)

    return probe


def probe_ledgers(ctx: Ctx) -> None:
    grid = ctx.foreign_grid()
    _refused(ctx.client.get(f"/api/v1/reports/ledgers/{grid.code}/"), grid.code)


def probe_export(ctx: Ctx) -> None:
    import json

    r = ctx.client.get("/api/v1/reports/export/buildings/?format=geojson")
    assert r.status_code == 200, r.content[:200]
    codes = {f["properties"]["code"] for f in json.loads(r.content)["features"]}
    mine = set(ctx.scope.filter(Building.objects.all()).values_list("code", flat=True))
    assert codes <= mine, sorted(codes - mine)[:5]


def probe_work_report(kind: str, period: str) -> Probe:
    def probe(ctx: Ctx) -> None:
        street, _ = Street.objects.get_or_create(code="620103098", name="别的街道")
        community, _ = Community.objects.get_or_create(
            code="620103098001", name="别的社区", street=street
        )
        for q in (f"community={community.code}", f"street={street.code}"):
            r = ctx.client.get(f"/api/v1/reports/{kind}/?{q}&{period}")
            _refused(r, q, (400, *DENIED))

    return probe


def probe_issue_report(ctx: Ctx) -> None:
    """Issuing a report of an area outside the caller's territory is refused (issue 18 #17)."""
    street, _ = Street.objects.get_or_create(code="620103098", name="别的街道")
    community, _ = Community.objects.get_or_create(
        code="620103098001", name="别的社区", street=street
    )
    for body in ({"community": community.code}, {"street": street.code}):
        r = ctx.client.post("/api/v1/reports/issued/", body | {"month": "2026-10"}, format="json")
        _refused(r, str(body), (400, *DENIED))


def probe_import_run(ctx: Ctx) -> None:
    from gridsvc.reports.models import ImportRun

    other = Member.objects.exclude(pk=ctx.member.pk).filter(is_superuser=False).first()
    run = ImportRun.objects.create(kind="roster", file_name="x.xlsx", actor=other)
    _refused(ctx.client.get(f"/api/v1/reports/imports/runs/{run.pk}/"), "run", (404,))


def probe_figures(ctx: Ctx) -> None:
    from gridsvc.cases.figures import case_figures as figures

    r = ctx.client.get("/api/v1/cases/figures/")
    assert r.status_code == 200
    assert r.json()["total"] == figures(Case.objects.filter(pk__in=ctx.cases))["total"]


def probe_coverage(ctx: Ctx) -> None:
    r = ctx.client.get("/api/v1/visits/coverage/?from=2026-01-01&to=2026-06-30&group=grid")
    assert r.status_code == 200
    assert {row["id"] for row in r.json()["results"]} <= (ctx.visible(Grid) or set())


def probe_missing_reports(ctx: Ctx) -> None:
    r = ctx.client.get("/api/v1/daily-reports/missing/")
    assert r.status_code == 200
    assert {row["member"] for row in r.json()["results"]} <= ctx.members


def probe_dispatch_queue(ctx: Ctx) -> None:
    _listed_subset(ctx, "/api/v1/dispatch/queue/", Case)


def probe_dispatch_action(ctx: Ctx) -> None:
    foreign = ctx.foreign(Case)
    events = CaseEvent.objects.filter(case__in=foreign).count()
    r = ctx.client.post("/api/v1/dispatch/supervise/", {"ids": foreign}, format="json")
    assert r.status_code == 404 and all(x["status"] == 404 for x in r.json()["results"])
    assert CaseEvent.objects.filter(case__in=foreign).count() == events


def probe_assessment(ctx: Ctx) -> None:
    r = ctx.client.get("/api/v1/assessment/?by=grid")
    assert r.status_code == 200, r.content[:200]
    assert {row["key"] for row in r.json()["rows"]} <= (ctx.visible(Grid) or set())


def probe_assessment_cases(ctx: Ctx) -> None:
    grid = ctx.foreign_grid()
    url = "/api/v1/assessment/cases/?by=grid&figure=handled&since=2026-01-01&until=2026-12-31"
    r = ctx.client.get(f"{url}&key={grid.pk}")
    # another grid's cases: refused, or none listed
    if r.status_code != 200:
        _refused(r, grid.code)
    assert r.status_code != 200 or _rows(r.json()) == [], r.content[:200]
    for own in sorted(ctx.visible(Grid) or ())[:1]:
        r = ctx.client.get(f"{url}&key={own}")
        assert r.status_code == 200, r.content[:200]
        rows = {row["id"] for row in _rows(r.json())}
        assert rows <= ctx.cases
        assert rows or ctx.role != "grid1", "grid1's grid has handled cases in the demo"


def probe_heatmap(ctx: Ctx) -> None:
    r = ctx.client.get("/api/v1/heatmap/cases/")
    assert r.status_code == 200
    total = sum(f["properties"]["count"] for f in r.json()["features"])
    assert total <= len(ctx.cases)


def probe_choropleth(ctx: Ctx) -> None:
    _listed_subset(ctx, "/api/v1/choropleth/grids/", Grid)


def probe_sync_changes(ctx: Ctx) -> None:
    r = ctx.client.get("/api/v1/sync/changes/")
    assert r.status_code == 200
    body = r.json()
    for key, model in (("tasks", VisitTask), ("cases", Case), ("households", Household)):
        rows = body.get(key) or []
        ids = {row["id"] for row in rows if isinstance(row, dict) and "id" in row}
        assert ids <= (ctx.visible(model) or set()), (key, sorted(ids)[:5])


def probe_sync_estimate(ctx: Ctx) -> None:
    for pk in Member.objects.exclude(pk__in=ctx.members).values_list("pk", flat=True)[:2]:
        r = ctx.client.get(f"/api/v1/sync/estimate/?member={pk}")
        _refused(r, "member", (400, *DENIED))


def probe_file_download(prefix: str, model: type[Model]) -> Probe:
    def probe(ctx: Ctx) -> None:
        for pk in ctx.foreign(model, 1):
            _refused(
                ctx.client.get(
                    f"/api/v1/{prefix}/{pk}/{'attachments' if model is Case else 'photos'}/1/file/"
                ),
                prefix,
                (404,),
            )

    return probe


def probe_inbox_read(ctx: Ctx) -> None:
    from gridsvc.supervision.models import InboxMessage

    for msg in InboxMessage.objects.exclude(member=ctx.member)[:2]:
        _refused(ctx.client.post(f"/api/v1/inbox/{msg.pk}/read/"), "inbox")


def probe_resident_search(ctx: Ctx) -> None:
    """The search by ID number (a POST body, never the URL) finds no resident outside the
    role's territory, even given that resident's exact number; a neighbour is refused."""
    for pk in ctx.foreign(Resident):
        number = Resident.objects.get(pk=pk).id_number
        if not number:
            continue
        r = ctx.client.post("/api/v1/residents/search/", {"id_number": number}, format="json")
        if r.status_code in (*DENIED, 400):
            continue
        assert r.status_code == 200, (ctx.role, r.status_code, r.content[:200])
        found = {row["id"] for row in _rows(r.json())}
        assert pk not in found and found <= (ctx.visible(Resident) or set()), (ctx.role, found)


EXPLICIT: dict[str, Probe] = {
    "POST /api/v1/residents/search/": probe_resident_search,
    "GET /tiles/<layer>/<z>/<x>/<y>.mvt": probe_tiles,
    "GET /api/v1/layers/<layer>/": probe_layer_features,
    "GET /ogc/collections/<collection_id>/items": probe_ogc_items,
    "GET /ogc/collections/<collection_id>/items/<feature_id>": probe_ogc_item,
    "GET /open311/v2/requests.json": probe_open311_list,
    "GET /open311/v2/requests/<service_request_id>.json": probe_open311_detail,
    "GET /api/v1/chain/": probe_chain,
    "GET /api/v1/offline/grids/<grid_id>/": probe_offline(""),
    "GET /api/v1/offline/grids/<grid_id>/package": probe_offline("package"),
    "GET /api/v1/reports/ledgers/<grid>/": probe_ledgers,
    "GET /api/v1/reports/export/<layer>/": probe_export,
    "GET /api/v1/reports/monthly/": probe_work_report("monthly", "month=2026-10"),
    "GET /api/v1/reports/annual/": probe_work_report("annual", "year=2026"),
    "POST /api/v1/reports/issued/": probe_issue_report,
    "GET /api/v1/reports/imports/runs/<pk>/": probe_import_run,
    "GET /api/v1/cases/figures/": probe_figures,
    "GET /api/v1/visits/coverage/": probe_coverage,
    "GET /api/v1/daily-reports/missing/": probe_missing_reports,
    "GET /api/v1/dispatch/queue/": probe_dispatch_queue,
    "POST /api/v1/dispatch/<name>/": probe_dispatch_action,
    "GET /api/v1/assessment/": probe_assessment,
    "GET /api/v1/assessment/cases/": probe_assessment_cases,
    "GET /api/v1/heatmap/cases/": probe_heatmap,
    "GET /api/v1/choropleth/grids/": probe_choropleth,
    "GET /api/v1/sync/changes/": probe_sync_changes,
    "GET /api/v1/sync/estimate/": probe_sync_estimate,
    "GET /api/v1/cases/<case_id>/attachments/<pk>/file/": probe_file_download("cases", Case),
    "GET /api/v1/visits/<visit_id>/photos/<pk>/file/": probe_file_download("visits", Visit),
    "POST /api/v1/inbox/<pk>/read/": probe_inbox_read,
}
EXPLICIT.update(ASSISTANCE_EXPLICIT)  # issue 21: 应保尽保 counts

#: create endpoints (POST to a list) are covered by the body-id probes below
CREATE_BY_BODY = {
    "POST /api/v1/cases/",
    "POST /api/v1/residents/",
    "POST /api/v1/visits/",
    "POST /api/v1/visits/batch/",
    "POST /open311/v2/requests.json",
    "POST /api/v1/daily-reports/",  # the caller's own report: no id in its body
}
CREATE_BY_BODY |= COMMUNITY_CREATE_BY_BODY  # issue 20: /api/v1/community/…
EXPLICIT.update(COMMUNITY_EXPLICIT)  # issue 20: screening day, monthly figures
EXPLICIT.update(FIELD_RECORDS_EXPLICIT)  # issue 20: activity photos' files
EXPLICIT.update(UNITY_FIELD_EXPLICIT)  # issue 20: venue visit photos' files
EXPLICIT.update(WEB_API_EXPLICIT)  # issue 22: 催报, staff directory, candidates


def matrix() -> dict[str, Probe | None]:
    """(method path) → its probe (None: covered by a body-id probe)."""
    out: dict[str, Probe | None] = {}
    for key, ep in endpoints().items():
        if key in ALLOWED:
            continue
        if key in EXPLICIT:
            out[key] = EXPLICIT[key]
        elif key in CREATE_BY_BODY:
            out[key] = None
        else:
            probe = _router_probe(ep)
            if probe is not None:
                out[key] = probe
    return out


# ---------------------------------------------------------------------------- coverage tests
def test_every_endpoint_is_in_the_matrix_or_allowed():
    all_eps = endpoints()
    covered = matrix()
    loose = sorted(set(all_eps) - set(covered) - set(ALLOWED))
    assert not loose, f"endpoints neither probed nor allowed (add a probe or a reason): {loose}"
    assert not set(ALLOWED) & set(EXPLICIT)
    # the walk sees every kind of endpoint the issue names
    paths = " ".join(all_eps)
    for part in (
        "/tiles/",
        "/ogc/",
        "/open311/",
        "/reports/ledgers/",
        "/reports/export/",
        "/reports/imports/",
        "/sync/",
        "/offline/",
        "/api/v1/cases/",
    ):
        assert part in paths, part


def test_a_new_endpoint_would_fail_the_matrix(monkeypatch):
    """The walk is over the live URL configuration: an unknown view shows up as loose."""
    from django.urls import path
    from rest_framework.views import APIView

    import gridsvc.urls

    class Sneaky(APIView):
        def get(self, request):  # type: ignore[no-untyped-def]
            return None

    patterns = [*gridsvc.urls.urlpatterns, path("api/v1/sneaky/", Sneaky.as_view())]
    monkeypatch.setattr(gridsvc.urls, "urlpatterns", patterns)
    clear_url_caches()
    try:
        loose = set(endpoints()) - set(matrix()) - set(ALLOWED)
    finally:
        monkeypatch.undo()
        clear_url_caches()
    assert loose == {"GET /api/v1/sneaky/"}


PROBED = sorted(k for k, v in matrix().items() if v is not None)


@pytest.mark.parametrize("key", PROBED)
def test_the_matrix(demo, key):
    """Each probed endpoint, for each role: only its territory; foreign ids refused."""
    probe = matrix()[key]
    assert probe is not None
    for role in ROLES:
        probe(Ctx(role))


#: the district's 创建 office (区创建办, a post over a district, not in the street): its work
#: scope is empty, so every probe must find it reaching nothing of the street's territory —
#: except its own doors, probed with their rules in tests/test_district_positions.py
DISTRICT_DOORS = {
    "GET /api/v1/community/district/",
    "GET /api/v1/community/district-officers/",
    "GET /api/v1/community/reports/",
    "POST /api/v1/community/reports/<pk>/acknowledge/",
}


@pytest.mark.parametrize("key", [k for k in PROBED if k not in DISTRICT_DOORS])
def test_the_matrix_for_the_district_office(demo, key):
    """Each probed endpoint for the demo's district officer: like a role without territory."""
    matrix()[key](Ctx("district"))


# ---------------------------------------------------------------------------- ids in bodies
#: integer body fields that are not ids of anything (why)
NOT_IDS = {
    "priority": "case priority 1–4",
    "version": "the case version the caller saw (optimistic locking)",
    "versions": "case id → version; only ids also in `ids` (checked) are read",
    "minutes": "length of an unmask grant",
    "window_days": "visit rule window",
    "grace_days": "visit rule grace",
    "amount": "extension amount",
    "year": "a calendar year (rules/calendar-years)",
    "duplicate_days": "a category's duplicate window in days",
}
NOT_IDS.update(COMMUNITY_NOT_IDS)  # issue 20: counts in /api/v1/community/…
NOT_IDS.update(ASSISTANCE_NOT_IDS)  # issue 21


def _schema_id_fields() -> set[tuple[str, str, str]]:
    """(METHOD, path, field) of every writable integer (or integer-list) body field."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    comps = schema["components"]["schemas"]

    def resolve(s: dict) -> dict:
        while "$ref" in s:
            s = comps[s["$ref"].split("/")[-1]]
        return s

    def props(s: dict) -> dict:
        s = resolve(s)
        out: dict = {}
        for k in ("allOf", "oneOf", "anyOf"):
            for sub in s.get(k, []):
                out.update(props(sub))
        out.update({n: resolve(p) for n, p in s.get("properties", {}).items()})
        return out

    found = set()
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            if method not in ("post", "put", "patch"):
                continue
            for content in op.get("requestBody", {}).get("content", {}).values():
                for name, p in props(content.get("schema", {})).items():
                    if p.get("readOnly"):
                        continue
                    extra = p.get("additionalProperties")
                    if (
                        p.get("type") == "integer"
                        or p.get("items", {}).get("type") == "integer"
                        or (isinstance(extra, dict) and extra.get("type") == "integer")
                    ):
                        found.add((method.upper(), path, name))
    return found


# -- probes: each sends a foreign id and checks it is refused and nothing happened
def _hh(grid: Grid) -> Household:
    return Household.objects.filter(unit__building__grid=grid).order_by("id").first()


def _case(grid: Grid, reporter: str, code: str = "neighbour.noise") -> Case:
    from .cases_helpers import report

    return report(code, reporter=reporter, household=_hh(grid)).case


def _act(client: APIClient, case: Case, name: str, **body) -> dict:  # type: ignore[no-untyped-def]
    r = client.post(f"/api/v1/cases/{case.pk}/actions/{name}/", body, format="json")
    return {"status": r.status_code, "body": r.json()}


def _not_found(out: dict, field_name: str) -> None:
    assert out["status"] == 400 and out["body"].get(field_name) == ["not found"], out


def body_report_ref(name: str, model: type[Model]) -> Callable:
    def probe(demo, member_client) -> None:  # type: ignore[no-untyped-def]
        other = model.objects.filter(
            **{
                {
                    "household": "unit__building__grid",
                    "unit": "building__grid",
                    "building": "grid",
                    "compound": "buildings__grid",
                }[name]: demo.grids[4]
            }
        ).first()
        before = Case.objects.count()
        r = member_client("grid1").post(
            "/api/v1/cases/",
            {"category": "neighbour.noise", "title": "x", name: other.pk},
            format="json",
        )
        assert r.status_code == 400 and r.json()[name] == ["not found"], r.content
        assert Case.objects.count() == before

    return probe


def body_merge_into(demo, member_client) -> None:  # type: ignore[no-untyped-def]
    mine, foreign = _case(demo.grids[1], "grid2"), _case(demo.grids[4], "grid5")
    events = CaseEvent.objects.filter(case=foreign).count()
    _not_found(_act(member_client("grid2"), mine, "merge", into=foreign.pk), "into")
    assert CaseEvent.objects.filter(case=foreign).count() == events


def body_assign_member(demo, member_client) -> None:  # type: ignore[no-untyped-def]
    case = _case(demo.grids[1], "grid2")
    for client in (member_client("street"), member_client("cadre2")):
        _not_found(
            _act(client, case, "assign", member=Member.objects.get(username="grid5").pk), "member"
        )
    case.refresh_from_db()
    assert case.handler.username != "grid5"


def body_assign_grid(demo, member_client) -> None:  # type: ignore[no-untyped-def]
    case = _case(demo.grids[5], "grid6")
    out = _act(
        member_client("cadre6"),
        case,
        "assign",
        member=Member.objects.get(username="grid6").pk,
        grid=demo.grids[0].pk,
    )
    _not_found(out, "grid")


def body_transfer_department(demo, member_client) -> None:  # type: ignore[no-untyped-def]
    elsewhere = Street.objects.create(code="620103097", name="别的街道")
    dept = Department.objects.create(code="elsewhere", name="别处", street=elsewhere)
    case = _case(demo.grids[1], "grid2", "wages")
    _not_found(_act(member_client("street"), case, "transfer", department=dept.pk), "department")


def body_dispatch_ids(demo, member_client) -> None:  # type: ignore[no-untyped-def]
    foreign = _case(demo.grids[4], "grid5")
    r = member_client("cadre6").post(
        "/api/v1/dispatch/supervise/", {"ids": [foreign.pk]}, format="json"
    )
    assert r.status_code == 404 and r.json()["results"][0]["detail"] == "not found"
    assert not CaseEvent.objects.filter(case=foreign, kind="supervise").exists()


def body_dispatch_member(demo, member_client) -> None:  # type: ignore[no-untyped-def]
    case = _case(demo.grids[1], "grid2")
    r = member_client("street").post(
        "/api/v1/dispatch/assign/",
        {"ids": [case.pk], "member": Member.objects.get(username="grid5").pk},
        format="json",
    )
    assert r.json()["results"][0]["member"] == ["not found"], r.content


def body_dispatch_department(demo, member_client) -> None:  # type: ignore[no-untyped-def]
    elsewhere = Street.objects.create(code="620103096", name="别的街道")
    dept = Department.objects.create(code="elsewhere2", name="别处", street=elsewhere)
    case = _case(demo.grids[1], "grid2", "wages")
    r = member_client("street").post(
        "/api/v1/dispatch/transfer/", {"ids": [case.pk], "department": dept.pk}, format="json"
    )
    assert r.json()["results"][0]["department"] == ["not found"], r.content


def body_resident_household(method: str) -> Callable:
    def probe(demo, member_client) -> None:  # type: ignore[no-untyped-def]
        foreign = _hh(demo.grids[4])
        client = member_client("grid1")
        if method == "POST":
            before = Resident.objects.count()
            r = client.post(
                "/api/v1/residents/",
                {"name": "测试", "household": foreign.pk, "gender": "F", "ethnicity": "汉族"},
                format="json",
            )
            assert Resident.objects.count() == before
        else:
            mine = Resident.objects.filter(household=_hh(demo.grids[0])).first()
            r = client.patch(
                f"/api/v1/residents/{mine.pk}/", {"household": foreign.pk}, format="json"
            )
            mine.refresh_from_db()
            assert mine.household_id != foreign.pk
        assert r.status_code == 400 and "household" in r.json(), r.content

    return probe


def _visit_body(hh: Household, **extra) -> dict:  # type: ignore[no-untyped-def]
    p = hh.unit.building.point
    body = {
        "client_uuid": str(uuid.uuid4()),
        "household": hh.id,
        "client_time": "2026-11-20T10:30:00+08:00",
        "lon": p.x,
        "lat": p.y,
        "accuracy_m": 8,
        "purpose": "走访",
    }
    body.update(extra)
    return body


def body_visit(field_name: str) -> Callable:
    def probe(demo, member_client) -> None:  # type: ignore[no-untyped-def]
        mine, foreign = _hh(demo.grids[0]), _hh(demo.grids[4])
        other = {
            "household": foreign.pk,
            "resident": Resident.objects.filter(household=foreign).first().pk,
            "task": VisitTask.objects.filter(household__unit__building__grid=demo.grids[4])
            .first()
            .pk,
            "member": Member.objects.get(username="grid5").pk,
            "participant_members": [Member.objects.get(username="grid5").pk],
        }[field_name]
        before = Visit.objects.count()
        r = member_client("grid1").post(
            "/api/v1/visits/", _visit_body(mine, **{field_name: other}), format="json"
        )
        if field_name == "member" and r.status_code == 201:  # the visitor is always the caller
            assert Visit.objects.get(pk=r.json()["id"]).member.username == "grid1"
            return
        assert r.status_code == 400 and field_name in r.json(), (field_name, r.content)
        assert Visit.objects.count() == before
        r = member_client("grid1").post(
            "/api/v1/visits/batch/",
            {"visits": [_visit_body(mine, **{field_name: other})]},
            format="json",
        )
        assert field_name in str(r.json()), r.content
        assert Visit.objects.count() == before

    return probe


def body_open311_address(demo, member_client) -> None:  # type: ignore[no-untyped-def]
    b = Building.objects.filter(grid=demo.grids[4]).first()
    before = Case.objects.count()
    r = member_client("grid1").post(
        "/open311/v2/requests.json",
        {"service_code": "neighbour.noise", "address_id": b.code, "description": "噪音"},
        format="json",
    )
    assert r.status_code == 400 and "address_id" in r.content.decode()
    assert Case.objects.count() == before


ACTION = "/api/v1/cases/{id}/actions/{name}/"


def body_hand_over_member(demo, member_client) -> None:  # type: ignore[no-untyped-def]
    """grid 1's cadre cannot hand grid 1's post to grid 5's member (outside their grid)."""
    pos = Position.objects.held_at().get(member__username="grid1", position_type="grid_member")
    r = member_client("cadre1").post(
        f"/api/v1/positions/{pos.pk}/hand-over/",
        {"member": Member.objects.get(username="grid5").pk},
        format="json",
    )
    _not_found({"status": r.status_code, "body": r.json()}, "member")
    assert Position.objects.get(pk=pos.pk).valid_to is None


BODY_ID_PROBES: dict[tuple[str, str, str], Callable] = {
    ("POST", "/api/v1/positions/{id}/hand-over/", "member"): body_hand_over_member,
    ("POST", "/api/v1/cases/", "household"): body_report_ref("household", Household),
    ("POST", "/api/v1/cases/", "unit"): body_report_ref("unit", Unit),
    ("POST", "/api/v1/cases/", "building"): body_report_ref("building", Building),
    ("POST", "/api/v1/cases/", "compound"): body_report_ref("compound", Compound),
    ("POST", ACTION, "into"): body_merge_into,
    ("POST", ACTION, "member"): body_assign_member,
    ("POST", ACTION, "grid"): body_assign_grid,
    ("POST", ACTION, "department"): body_transfer_department,
    ("POST", "/api/v1/dispatch/{name}/", "ids"): body_dispatch_ids,
    ("POST", "/api/v1/dispatch/{name}/", "member"): body_dispatch_member,
    ("POST", "/api/v1/dispatch/{name}/", "department"): body_dispatch_department,
    ("POST", "/api/v1/residents/", "household"): body_resident_household("POST"),
    ("PATCH", "/api/v1/residents/{id}/", "household"): body_resident_household("PATCH"),
    ("POST", "/api/v1/visits/", "household"): body_visit("household"),
    ("POST", "/api/v1/visits/", "resident"): body_visit("resident"),
    ("POST", "/api/v1/visits/", "task"): body_visit("task"),
    ("POST", "/api/v1/visits/", "participant_members"): body_visit("participant_members"),
}
BODY_ID_PROBES.update(RULES_BODY_ID_PROBES)  # type: ignore[arg-type]  # issue 18 item 15
BODY_ID_PROBES.update(COMMUNITY_BODY_ID_PROBES)  # type: ignore[arg-type]  # issue 20
BODY_ID_PROBES.update(FIELD_RECORDS_BODY_ID_PROBES)  # issue 20: pairing help's visit
BODY_ID_PROBES.update(ASSISTANCE_BODY_ID_PROBES)  # issue 21: /api/v1/assistance/
BODY_ID_PROBES.update(WEB_API_BODY_ID_PROBES)  # issue 22: 催报
#: ids a body carries that the schema does not show as integers (codes, JSON lists)
EXTRA_BODY_IDS: dict[tuple[str, str, str], Callable] = {
    ("POST", "/open311/v2/requests.json", "address_id"): body_open311_address,
    # the schema no longer offers `member` (the visitor is the caller): a sent one is ignored
    ("POST", "/api/v1/visits/", "member"): body_visit("member"),
}


def test_every_id_in_a_request_body_has_a_foreign_id_probe():
    found = _schema_id_fields()
    loose = sorted(f for f in found if f not in BODY_ID_PROBES and f[2] not in NOT_IDS)
    assert not loose, f"body ids without a foreign-id probe (or a NOT_IDS reason): {loose}"
    stale = sorted(set(BODY_ID_PROBES) - found)
    assert not stale, f"probes for body fields the API no longer has: {stale}"


@pytest.mark.parametrize(
    "key", sorted({**BODY_ID_PROBES, **EXTRA_BODY_IDS}), ids=lambda k: f"{k[0]} {k[1]} {k[2]}"
)
def test_a_foreign_id_in_a_body_is_refused(demo, member_client, key):
    {**BODY_ID_PROBES, **EXTRA_BODY_IDS}[key](demo, member_client)
