"""The grid member's field app (网格员走访应用) at ``/field/``: an installable offline web app.

The app is static (``gridsvc/web/static/field/``) and talks to the server only through the
public API and the sync protocol (docs/sync.md). It is served here, under its own path, rather
than from ``/static/`` so that its service worker (``/field/sw.js``) controls ``/field/`` — a
service worker's scope is the folder it is served from — and so that the app's address is
short enough to type on a phone. See docs/field-app.md.
"""

from __future__ import annotations

from pathlib import Path

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.http import require_GET

FIELD_DIR = Path(__file__).resolve().parent / "static" / "field"
VENDOR_DIR = Path(__file__).resolve().parent / "static" / "web" / "vendor"

#: name under /field/ → (file, content type). Nothing else is served.
FILES: dict[str, tuple[Path, str]] = {
    "": (FIELD_DIR / "index.html", "text/html; charset=utf-8"),
    "app.js": (FIELD_DIR / "app.js", "text/javascript; charset=utf-8"),
    "app.css": (FIELD_DIR / "app.css", "text/css; charset=utf-8"),
    "sw.js": (FIELD_DIR / "sw.js", "text/javascript; charset=utf-8"),
    "manifest.webmanifest": (FIELD_DIR / "manifest.webmanifest", "application/manifest+json"),
    "icon-192.png": (FIELD_DIR / "icon-192.png", "image/png"),
    "icon-512.png": (FIELD_DIR / "icon-512.png", "image/png"),
    # the `idb` IndexedDB wrapper from npm, copied by scripts/build_web.sh
    "vendor/idb.js": (VENDOR_DIR / "idb.umd.js", "text/javascript; charset=utf-8"),
    # MapLibre GL JS for the map of the member's grid: the street office page's copy
    "vendor/maplibre-gl.js": (VENDOR_DIR / "maplibre-gl.js", "text/javascript; charset=utf-8"),
    "vendor/maplibre-gl.css": (VENDOR_DIR / "maplibre-gl.css", "text/css; charset=utf-8"),
}


@require_GET
def field_file(request: HttpRequest, name: str = "") -> HttpResponse:
    """One file of the field app (all small: read whole). ``no-cache``: the browser asks
    again each time online; offline the service worker answers from its cache."""
    try:
        file, content_type = FILES[name]
    except KeyError:
        raise Http404("no such file in the field app") from None
    if not file.is_file():
        raise Http404(f"{name} is not built (run scripts/build_web.sh)")
    response = HttpResponse(file.read_bytes(), content_type=content_type)
    response["Cache-Control"] = "no-cache"
    if name == "sw.js":
        response["Service-Worker-Allowed"] = "/field/"
    return response


app_name = "field"
urlpatterns = [
    path("", field_file, name="index"),
    path("<path:name>", field_file, name="file"),
]
