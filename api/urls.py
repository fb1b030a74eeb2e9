"""/api/v1/ routes. Each domain module registers its own views on the router."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from . import (
    assistance,
    attachments,
    auth,
    cases,
    chain,
    community,
    layers,
    open311,
    reports,
    rules,
    schema,
    security,
    supervision,
    territory,
    visits,
)

router = DefaultRouter()
router.register("districts", territory.DistrictViewSet, basename="district")
router.register("streets", territory.StreetViewSet, basename="street")
router.register("communities", territory.CommunityViewSet, basename="community")
router.register("grids", territory.GridViewSet, basename="grid")
router.register("compounds", territory.CompoundViewSet, basename="compound")
router.register("buildings", territory.BuildingViewSet, basename="building")
router.register("units", territory.UnitViewSet, basename="unit")
router.register("households", territory.HouseholdViewSet, basename="household")
router.register("residents", territory.ResidentViewSet, basename="resident")
router.register("places", territory.PlaceViewSet, basename="place")
router.register("positions", chain.PositionViewSet, basename="position")
router.register("auth/devices", auth.DeviceViewSet, basename="device")
router.register("privacy/grants", security.GrantViewSet, basename="unmask-grant")
router.register("audit", security.AuditViewSet, basename="audit")
rules.register(router)  # calendars, time limits, category rules

DOMAINS = (cases, visits, layers, reports, assistance, community)
for domain in DOMAINS:
    domain.register(router)

urlpatterns = [
    path("auth/token/", auth.LoginView.as_view(), name="token"),
    path("auth/token/refresh/", auth.RefreshView.as_view(), name="token-refresh"),
    path("auth/logout/", auth.LogoutView.as_view(), name="logout"),
    path("chain/", chain.ChainView.as_view(), name="chain"),
    path("me/", chain.MeView.as_view(), name="me"),
]
for domain in DOMAINS:
    urlpatterns += domain.urlpatterns
urlpatterns += attachments.urlpatterns  # scoped file downloads
urlpatterns += supervision.urlpatterns  # 催报 (before the router's daily-reports/<pk>/), staff
urlpatterns.append(path("", include(router.urls)))

# Mounted at the site root by gridsvc/urls.py (tiles, OGC API, Open311, web page ...).
root_urlpatterns: list = []
for domain in DOMAINS:
    root_urlpatterns += domain.root_urlpatterns
root_urlpatterns += open311.root_urlpatterns
# which endpoints exist, from the cached OpenAPI schema (beside /api/schema/ in gridsvc/urls.py)
root_urlpatterns.append(
    path("api/schema/paths/", schema.SchemaPathsView.as_view(), name="schema-paths")
)
