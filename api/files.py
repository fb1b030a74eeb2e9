"""Uploaded files in the API's inputs and outputs (附件): an upload checked for a view (a
refusal is a 400 naming the field), and the ``url`` of a case attachment or visit photo —
always its scoped download endpoint (api/attachments.py), never ``/media/``.

Kept apart from the download views so the case and visit serializers can use it without
importing those views (which import the case and visit scopes)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from gridsvc.uploads import Upload, UploadRefused, check_upload


def checked_upload(f: Any, field: str, *, max_bytes: int, documents: bool = True) -> Upload:
    """:func:`gridsvc.uploads.check_upload` for a view: a refusal is a 400 naming ``field``."""
    try:
        return check_upload(f, field, max_bytes=max_bytes, documents=documents)
    except UploadRefused as exc:
        raise ValidationError({exc.field: [exc.message]}) from None


def file_url(obj: Any, request: Any = None) -> str:
    """The scoped download URL of a case attachment or a visit photo."""
    from gridsvc.cases.models import Attachment

    if isinstance(obj, Attachment):
        url = reverse("case-attachment-file", kwargs={"case_id": obj.case_id, "pk": obj.pk})
    else:
        url = reverse("visit-photo-file", kwargs={"visit_id": obj.visit_id, "pk": obj.pk})
    return request.build_absolute_uri(url) if request is not None else url


@extend_schema_field(OpenApiTypes.URI)
class FileURLField(serializers.Field):
    """Read-only ``url`` of an attachment or photo: its scoped download endpoint."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("source", "*")
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str:
        return file_url(value, self.context.get("request"))
