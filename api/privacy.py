"""Masking of sensitive personal information (敏感个人信息) in API output.

Masked by default everywhere. A caller whose role may unmask opens a time-limited grant with a
reason (``POST /api/v1/privacy/grants/``) and then adds ``?unmask=1`` to a request; every
object returned in clear is written to the append-only audit log.
"""

from __future__ import annotations

from rest_framework.exceptions import PermissionDenied

from gridsvc.audit.models import UnmaskGrant
from gridsvc.audit.services import active_grant, record_unmasked_reads
from gridsvc.chain.visibility import MASK, Tier, Viewer, present_resident
from gridsvc.territory.models import Resident

__all__ = ["MASK", "RESIDENT_SENSITIVE_FIELDS", "mask_resident", "may_unmask", "viewer"]
# what an unmasked read of a resident shows in clear (audited)
RESIDENT_SENSITIVE_FIELDS = ("id_number", "phone", "ethnicity", "birth_date", "sensitive_tags")


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


def viewer(request) -> Viewer:  # type: ignore[no-untyped-def]
    """The :class:`~gridsvc.chain.visibility.Viewer` of this request (cached on it): tier,
    unmask grant, and per-record tier for members holding positions of several tiers."""
    if not hasattr(request, "_gridsvc_viewer"):
        from .scoping import request_scope

        request._gridsvc_viewer = Viewer(
            request.user, request_scope(request), unmasked=may_unmask(request)
        )
    return request._gridsvc_viewer


def mask_resident(data: dict, resident: Resident, request) -> dict:  # type: ignore[no-untyped-def]
    """Apply the visibility matrix to a serialised resident in place (masks, hidden fields,
    birth year instead of date, tags); ``data["masked"]`` lists what is not in clear."""
    if request is None:  # no caller: the strictest tier that still sees residents
        return present_resident(data, resident, Tier.NEIGHBOUR)
    return viewer(request).present(data, resident)


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
