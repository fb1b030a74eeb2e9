"""The street office's web page (街道办指挥大屏): session login, then one page that talks to
the same REST API as the phones."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from drf_spectacular.views import SpectacularSwaggerSplitView


@login_required
@ensure_csrf_cookie
def index(request: HttpRequest) -> HttpResponse:
    """The dispatch page: map, heatmap, choropleth, queue, figures."""
    return render(request, "web/index.html", {"member": request.user})


class SwaggerView(SpectacularSwaggerSplitView):
    """Swagger UI at /api/docs/ from the project's own Swagger UI bundle (npm, see
    scripts/build_web.sh), its start-up script served as a separate file (``?script``) so the
    page needs no inline script under the Content-Security-Policy (gridsvc.web.csp)."""

    template_name = "web/swagger_ui.html"
    url_name = "schema"
