"""URL map: the REST API under /api/v1/, its schema and docs, admin, health."""

from django.contrib import admin
from django.urls import include, path

from api.schema import CachedSchemaView
from api.urls import root_urlpatterns
from gridsvc.supervision.health import health, health_worker
from gridsvc.web.login import admin_login
from gridsvc.web.views import SwaggerView

urlpatterns = [
    # the admin's login form, refusing a throttled address or locked client as the web login
    # does (429, Retry-After); before admin.site.urls, which has the same path
    path("admin/login/", admin_login),
    path("admin/", admin.site.urls),
    path("health", health, name="health"),  # database + worker heartbeat (supervision.health)
    path("health/worker", health_worker, name="health-worker"),
    path("api/v1/", include("api.urls")),
    path("api/schema/", CachedSchemaView.as_view(), name="schema"),
    path("api/docs/", SwaggerView.as_view(), name="swagger-ui"),
    *root_urlpatterns,
    path("field/", include("gridsvc.web.field")),  # the grid member's offline app
    path("", include("gridsvc.web.urls")),
]
