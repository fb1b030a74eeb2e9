"""URL map: the REST API under /api/v1/, its schema and docs, admin, health."""

from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from api.urls import root_urlpatterns
from gridsvc.web.views import SwaggerView


def health(request):
    """Liveness/readiness: also checks the database answers."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("select postgis_lib_version()")
        postgis = cur.fetchone()[0]
    return JsonResponse({"status": "ok", "postgis": postgis})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health, name="health"),
    path("api/v1/", include("api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SwaggerView.as_view(), name="swagger-ui"),
    *root_urlpatterns,
    path("", include("gridsvc.web.urls")),
]
