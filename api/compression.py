"""Response compression: Django's GZipMiddleware, except where gzip would do harm.

Django compresses every response of 200+ bytes whatever its type. That gzips a zip, a JPEG
or an MBTiles blob a second time (bigger and slower, and it drops ``Content-Length``, so a
phone cannot show progress or resume), and it would gzip a ``206 Partial Content`` body,
which breaks ``Content-Range``. This middleware leaves alone:

- bodies already compressed (``application/zip``, ``application/gzip``, images, audio,
  video, PDF),
- partial responses (206, or any response with ``Content-Range``) and 416s,
- responses that ask for it with ``response.gzip_exempt = True``.
"""

from __future__ import annotations

from django.middleware.gzip import GZipMiddleware as DjangoGZipMiddleware

ALREADY_COMPRESSED = frozenset(
    {
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/x-zip-compressed",
        "application/pdf",
        "application/octet-stream+zip",
    }
)
ALREADY_COMPRESSED_PREFIXES = ("image/", "audio/", "video/")


def gzip_exempt(response) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``response`` must pass without (another) gzip."""
    if getattr(response, "gzip_exempt", False):
        return True
    if response.status_code in (206, 416) or response.has_header("Content-Range"):
        return True
    ctype = (response.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype == "image/svg+xml":  # text: worth compressing
        return False
    return ctype in ALREADY_COMPRESSED or ctype.startswith(ALREADY_COMPRESSED_PREFIXES)


class GZipMiddleware(DjangoGZipMiddleware):
    """:class:`django.middleware.gzip.GZipMiddleware` minus :func:`gzip_exempt` responses."""

    def process_response(self, request, response):  # type: ignore[no-untyped-def]
        if gzip_exempt(response):
            return response
        return super().process_response(request, response)
