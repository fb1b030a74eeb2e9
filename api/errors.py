"""JSON errors: every error is JSON naming the field where there is one; never an HTML 500
for bad input."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from gridsvc.errors import DomainError


def exception_handler(exc, context):  # type: ignore[no-untyped-def]
    """DRF's handler, plus Django validation errors (→400), integrity errors (→409) and every
    domain rule's refusal (:class:`gridsvc.errors.DomainError`: its status, naming the field)."""
    if isinstance(exc, DomainError):
        return Response(exc.body(), status=exc.status_code, headers=exc.headers() or None)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = ValidationError(detail)
    if isinstance(exc, ProtectedError):
        return Response(
            {"detail": "this object is still referenced and cannot be deleted"},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, IntegrityError):
        return Response(
            {"detail": "conflicts with stored data (duplicate or missing reference)"},
            status=status.HTTP_409_CONFLICT,
        )
    return drf_exception_handler(exc, context)
