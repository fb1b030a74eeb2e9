"""Masking of sensitive personal information (敏感个人信息) in API output.

Masked by default everywhere. Unmasking with a reason and an audit trail is granted by
:func:`may_unmask` (the break-the-glass grants live in ``gridsvc.audit``).
"""

from __future__ import annotations

from gridsvc.territory.codes import mask_id_number, mask_phone
from gridsvc.territory.models import Resident

MASK = "**"


def may_unmask(request) -> bool:  # type: ignore[no-untyped-def]
    """Whether this request may see sensitive fields in clear. Default: no one."""
    checker = getattr(request, "gridsvc_unmask", None)
    return bool(checker)


def mask_resident(data: dict, resident: Resident, unmasked: bool) -> dict:
    """Mask sensitive fields of a serialised resident in place; list what was masked."""
    if unmasked:
        data["masked"] = []
        return data
    data["id_number"] = mask_id_number(resident.id_number)
    data["phone"] = mask_phone(resident.phone)
    data["ethnicity"] = MASK
    data["tags"] = [t for t in resident.tags if t not in Resident.SENSITIVE_TAGS]
    data["masked"] = ["id_number", "phone", "ethnicity", "sensitive_tags"]
    return data
