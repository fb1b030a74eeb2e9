"""Scoped downloads of uploaded files (附件下载): case attachments and visit photos.

- ``GET /api/v1/cases/{case}/attachments/{id}/file/``
- ``GET /api/v1/visits/{visit}/photos/{id}/file/``

A file is served only to a caller who may see its case or visit (the same scope as the case
and visit endpoints); anyone else gets 404, as for the case or visit itself. The response type
is decided from the stored bytes (gridsvc.uploads), with ``nosniff``, a ``sandbox``
Content-Security-Policy and ``attachment`` for non-images, so an upload is never rendered as a
page. These URLs are what the API returns as a file's ``url``; ``/media/`` is not served.
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, HttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.views import APIView

from gridsvc.uploads import download_headers


class AnyAccept(BaseContentNegotiation):
    """Files answer whatever the client accepts (``<img>``, a phone asking for image/jpeg);
    errors are JSON."""

    def select_parser(self, request, parsers):  # type: ignore[no-untyped-def]
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):  # type: ignore[no-untyped-def]
        return renderers[0], renderers[0].media_type


def serve(fieldfile: Any, stem: str, etag: str = "", request: Any = None) -> HttpResponse:
    """A stored file as a download; 404 if the file is gone from storage."""
    if etag and request is not None and request.headers.get("If-None-Match") == f'"{etag}"':
        resp = HttpResponse(status=304)
        resp["ETag"] = f'"{etag}"'
        return resp
    if not fieldfile:
        raise NotFound()
    try:
        handle = fieldfile.open("rb")
    except (FileNotFoundError, OSError):
        raise NotFound() from None
    head = handle.read(16)
    handle.seek(0)
    headers = download_headers(head, stem)
    resp = FileResponse(handle, content_type=headers.pop("Content-Type"))
    for name, value in headers.items():
        resp[name] = value
    if etag:
        resp["ETag"] = f'"{etag}"'
    return resp


_FILE = OpenApiResponse(
    response=OpenApiTypes.BINARY,
    description="The file; type decided from its content (JPEG, PNG, WebP inline; PDF and "
    "anything else as an attachment).",
)


class CaseAttachmentFileView(APIView):
    """A case attachment's file, for callers who may see the case."""

    content_negotiation_class = AnyAccept

    @extend_schema(responses={200: _FILE, 304: None, 404: OpenApiTypes.OBJECT})
    def get(self, request, case_id: int, pk: int) -> HttpResponse:  # type: ignore[no-untyped-def]
        from api.cases import case_queryset
        from gridsvc.cases.models import Attachment

        att = (
            Attachment.objects.filter(
                pk=pk, case_id=case_id, case__in=case_queryset(request).values("pk")
            )
            .only("id", "case_id", "file", "sha256")
            .first()
        )
        if att is None:
            raise NotFound()
        return serve(att.file, f"case-{att.case_id}-{att.pk}", att.sha256, request)


class VisitPhotoFileView(APIView):
    """A visit photo's file, for callers who may see the visit."""

    content_negotiation_class = AnyAccept

    @extend_schema(responses={200: _FILE, 304: None, 404: OpenApiTypes.OBJECT})
    def get(self, request, visit_id: int, pk: int) -> HttpResponse:  # type: ignore[no-untyped-def]
        from api.visits.views import visible_visits
        from gridsvc.visits.models import VisitPhoto

        photo = (
            VisitPhoto.objects.filter(
                pk=pk, visit_id=visit_id, visit__in=visible_visits(request).values("pk")
            )
            .only("id", "visit_id", "image", "sha256")
            .first()
        )
        if photo is None:
            raise NotFound()
        return serve(photo.image, f"visit-{photo.visit_id}-{photo.pk}", photo.sha256, request)


urlpatterns = [
    path(
        "cases/<int:case_id>/attachments/<int:pk>/file/",
        CaseAttachmentFileView.as_view(),
        name="case-attachment-file",
    ),
    path(
        "visits/<int:visit_id>/photos/<int:pk>/file/",
        VisitPhotoFileView.as_view(),
        name="visit-photo-file",
    ),
]
