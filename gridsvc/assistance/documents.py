"""Documents attached to an application (申请材料, issue 21 item 1: "documents as
attachments"): 户口簿, 身份证, 收入证明, 病历 … as images or PDFs.

Checked like case attachments (:func:`gridsvc.uploads.check_upload`: by content, JPEG, PNG,
WebP or PDF, stored under a name the server chooses). Who may attach: whoever may take a step
of the application over its household (check, review or decide: grid member, community staff,
street desk). A document tells income, health or hardship (LOW_INCOME / HEALTH in the
visibility matrix): its metadata (name, type, size) is listed to the staff who see the
application; the file itself is served only under an unmask grant, and every download is an
``unmasked_read`` audit entry (:mod:`api.assistance`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from gridsvc.uploads import Upload

from .models import Application, ApplicationDocument, Status
from .services import AssistanceError, NotAllowed, _event, _locked, may_act

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
MAX_DOCUMENTS = 30  # per application
# documents may be added while the application is worked and while it is in force (复核)
ATTACHABLE = (Status.SUBMITTED, Status.CHECKED, Status.REVIEWED, Status.APPROVED)
STAGES = ("check", "review", "decide")


@dataclass
class Attached:
    document: ApplicationDocument
    created: bool


def attach(
    actor: Any,
    app_id: int,
    upload: Upload,
    name: str,
    *,
    client_uuid: uuid.UUID | None = None,
) -> Attached:
    """Attach a checked upload to the application (an event ``document`` records it). The same
    ``client_uuid`` again (a phone's retry) returns the stored document."""
    name = name.strip()[:100]
    if not name:
        raise AssistanceError("name the document (户口簿, 收入证明 …)", "name")
    with transaction.atomic():
        if client_uuid is not None:
            stored = ApplicationDocument.objects.filter(client_uuid=client_uuid).first()
            if stored is not None:
                if stored.application_id != app_id:
                    raise AssistanceError(
                        "this client_uuid was used for another application", "client_uuid"
                    )
                return Attached(stored, False)
        app: Application = _locked(app_id, *ATTACHABLE)
        if not any(may_act(actor, app.household, stage) for stage in STAGES):
            raise NotAllowed("your positions do not allow attaching documents to this application")
        if app.attachments.count() >= MAX_DOCUMENTS:
            raise AssistanceError(f"at most {MAX_DOCUMENTS} documents", "file")
        doc = ApplicationDocument(
            application=app,
            name=name,
            content_type=upload.content_type,
            size=upload.size,
            sha256=upload.sha256,
            client_uuid=client_uuid,
            uploaded_by=actor if getattr(actor, "pk", None) else None,
        )
        doc.file.save(upload.stored_name(f"app{app.pk}-"), ContentFile(upload.data), save=False)
        try:
            with transaction.atomic():
                doc.save()
        except IntegrityError:
            # the same client_uuid stored meanwhile (the phone's retry raced its first try):
            # this copy of the file goes, the stored document is the answer
            doc.file.delete(save=False)
            stored = ApplicationDocument.objects.filter(client_uuid=client_uuid).first()
            if stored is None or stored.application_id != app_id:
                raise AssistanceError(
                    "this client_uuid was used for another application", "client_uuid"
                ) from None
            return Attached(stored, False)
        app.save(update_fields=["updated_at"])  # the phone's feed brings the new document
        _event(app, "document", app.status, actor, name)
    return Attached(doc, True)
