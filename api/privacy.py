"""Masking of sensitive personal information (敏感个人信息) in API output.

Masked by default everywhere. A caller whose role may unmask opens a time-limited grant with a
reason (``POST /api/v1/privacy/grants/``) and then adds ``?unmask=1`` to a request; every
object returned in clear is written to the append-only audit log.
"""

from __future__ import annotations

from rest_framework.exceptions import PermissionDenied

from gridsvc.audit.models import UnmaskGrant
from gridsvc.audit.services import active_grant, record_unmasked_reads
from gridsvc.territory.codes import mask_id_number, mask_phone
from gridsvc.territory.models import Resident

MASK = "**"
RESIDENT_SENSITIVE_FIELDS = ("id_number", "phone", "ethnicity", "sensitive_tags")


def unmask_grant(request) -> UnmaskGrant | None:  # type: ignore[no-untyped-def]
    """The grant under which this request unmasks, or None (masked). ``?unmask=1`` without an
    active grant is refused with 403."""
    if request is None:
        return None
    if not hasattr(request, "_gridsvc_grant"):
        params = getattr(request, "query_params", getattr(request, "GET", {}))
        grant = None
        if params.get("unmask") in ("1", "true", "yes"):
            grant = active_grant(request.user)
            if grant is None:
                raise PermissionDenied(
                    "unmask=1 needs an active grant: POST /api/v1/privacy/grants/ with a reason "
                    "(only roles that may see sensitive data)"
                )
        request._gridsvc_grant = grant
    return request._gridsvc_grant


def may_unmask(request) -> bool:  # type: ignore[no-untyped-def]
    """Whether this request sees sensitive fields in clear."""
    return unmask_grant(request) is not None


def mask_resident(data: dict, resident: Resident, unmasked: bool) -> dict:
    """Mask sensitive fields of a serialised resident in place; list what was masked."""
    if unmasked:
        data["masked"] = []
        return data
    data["id_number"] = mask_id_number(resident.id_number)
    data["phone"] = mask_phone(resident.phone)
    data["ethnicity"] = MASK
    data["tags"] = [t for t in resident.tags if t not in Resident.SENSITIVE_TAGS]
    data["masked"] = list(RESIDENT_SENSITIVE_FIELDS)
    return data


class UnmaskAuditMixin:
    """ViewSet mixin: when a response was produced unmasked, audit every object in it."""

    audit_object_type: str = ""
    audit_fields: tuple[str, ...] = ()

    def finalize_response(self, request, response, *args, **kwargs):  # type: ignore[no-untyped-def]
        response = super().finalize_response(request, response, *args, **kwargs)
        grant = getattr(request, "_gridsvc_grant", None)
        if grant is not None and 200 <= response.status_code < 300 and response.data:
            data = response.data
            rows = data.get("results", [data]) if isinstance(data, dict) else data
            ids = [r["id"] for r in rows if isinstance(r, dict) and "id" in r]
            record_unmasked_reads(
                request.user,
                self.audit_object_type,
                ids,
                self.audit_fields,
                grant,
                ip=request.META.get("REMOTE_ADDR"),
            )
        return response
