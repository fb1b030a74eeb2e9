"""Content-Security-Policy (内容安全策略) on every page the server renders.

Every HTML document (the street office page, login, admin, Swagger UI at /api/docs/, DRF's
browsable API) gets one policy: scripts, styles, fonts and images only from this origin, no
inline scripts, no plugins, no framing, forms post only here. MapLibre GL JS starts its web
workers from ``blob:`` URLs and draws into ``blob:``/``data:`` images, hence those two sources.
A view that sets its own ``Content-Security-Policy`` (attachment downloads: ``sandbox``) keeps
it. Street offices often sit on an intranet, so nothing is loaded from a CDN: MapLibre,
Chart.js and Swagger UI are bundled from npm by ``scripts/build_web.sh``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

#: The policy of every HTML document the server renders.
PAGE_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "child-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

#: Content types a browser renders as a document that could run script.
DOCUMENT_TYPES = ("text/html", "application/xhtml+xml", "image/svg+xml", "text/xml")


class ContentSecurityPolicyMiddleware:
    """Add :data:`PAGE_POLICY` to every document response that has no policy of its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            ctype = response.get("Content-Type", "").split(";", 1)[0].strip().lower()
            if ctype in DOCUMENT_TYPES:
                response["Content-Security-Policy"] = PAGE_POLICY
        return response
