"""gridsvc's WSGI application plus the floor views (``gunicorn bench.anchors.floor``).

Everything gridsvc serves is unchanged; ``/bench/floor/`` is a trivial Django view (the whole
middleware stack, no database) and ``/bench/floor-auth/`` a DRF view behind the same
authentication as the API (JWT: the user + device + scope query), answering the caller's id.
Only the benchmark starts this module."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gridsvc.settings")
application = get_wsgi_application()

from django.conf import settings  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import include, path  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402


def floor(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


class FloorAuth(APIView):
    def get(self, request):  # type: ignore[no-untyped-def]
        return Response({"id": request.user.pk})


_GRIDSVC_URLCONF = settings.ROOT_URLCONF


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """``urlpatterns`` built when Django first resolves a URL, as gridsvc's own URLconf is:
    importing it here, at load, would warm every worker up and hide what a worker's first
    request costs without gridsvc/gunicorn_conf.py."""
    if name == "urlpatterns":
        patterns = [
            path("bench/floor/", floor),
            path("bench/floor-auth/", FloorAuth.as_view()),
            path("", include(_GRIDSVC_URLCONF)),
        ]
        globals()["urlpatterns"] = patterns
        return patterns
    raise AttributeError(name)


settings.ROOT_URLCONF = __name__
