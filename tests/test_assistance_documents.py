"""Documents on an application (issue 21 item 1, 申请材料): checked by content like case
attachments, scoped like the application, and — since they tell income, health or hardship —
served only under an unmask grant, each download audited.
"""

from __future__ import annotations

import io
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from gridsvc.accounts.models import Member
from gridsvc.assistance import services
from gridsvc.assistance.models import ApplicationDocument
from gridsvc.audit.models import AuditEntry, UnmaskGrant
from gridsvc.territory.models import Household

pytestmark = pytest.mark.django_db
SHANGHAI = ZoneInfo("Asia/Shanghai")
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (20, 130, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _body(resp) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join(resp.streaming_content) if resp.streaming else resp.content


def _application(grid, kind: str = "temp_relief"):  # type: ignore[no-untyped-def]
    household = (
        Household.objects.filter(unit__building__grid=grid, residents__isnull=False)
        .order_by("id")
        .first()
    )
    grid1 = Member.objects.get(username="grid1")
    return services.submit(grid1, household, kind, reason="看病").application


def test_a_document_is_attached_listed_and_served_only_under_a_grant(
    demo, member_client, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    app = _application(demo.grids[0])
    url = f"/api/v1/assistance/{app.pk}/documents/"
    grid1 = member_client("grid1")
    png = _png()
    key = str(uuid.uuid4())
    # the phone calls it a JPEG named .gif: stored as what it is, a PNG
    r = grid1.post(
        url,
        {
            "file": SimpleUploadedFile("x.gif", png, "image/jpeg"),
            "name": "收入证明",
            "client_uuid": key,
        },
        format="multipart",
    )
    assert r.status_code == 201, r.content
    doc = ApplicationDocument.objects.get(pk=r.json()["id"])
    assert doc.content_type == "image/png" and not doc.file.name.endswith((".gif", ".jpg"))
    file_url = r.json()["url"]
    assert file_url.endswith(f"/api/v1/assistance/{app.pk}/documents/{doc.pk}/file/")
    # a retry of the same upload is the same document
    again = grid1.post(
        url,
        {
            "file": SimpleUploadedFile("x.gif", png, "image/jpeg"),
            "name": "收入证明",
            "client_uuid": key,
        },
        format="multipart",
    )
    assert again.status_code == 200 and again.json()["id"] == doc.pk
    assert ApplicationDocument.objects.filter(application=app).count() == 1
    # an HTML page named .jpg is refused naming the field; nothing stored
    bad = grid1.post(
        url,
        {
            "file": SimpleUploadedFile("a.jpg", b"<html><script>x</script>", "image/jpeg"),
            "name": "x",
        },
        format="multipart",
    )
    assert bad.status_code == 400 and "file" in bad.json()
    assert ApplicationDocument.objects.filter(application=app).count() == 1
    # listed with the application and on its own; an event records it
    listed = grid1.get(url).json()
    assert [d["name"] for d in listed] == ["收入证明"]
    detail = grid1.get(f"/api/v1/assistance/{app.pk}/").json()
    assert [d["id"] for d in detail["attachments"]] == [doc.pk]
    assert "document" in [e["action"] for e in detail["events"]]
    # the file is a clear read of a sensitive fact: without a grant 403, even for its uploader
    assert grid1.get(file_url).status_code == 403
    # another grid, a building head (neighbour): as if it did not exist
    for name in ("grid5", "bh-001"):
        assert member_client(name).get(file_url).status_code == 404, name
        r = member_client(name).post(
            url, {"file": SimpleUploadedFile("b.pdf", PDF), "name": "户口簿"}, format="multipart"
        )
        assert r.status_code == 404, name
    # the street desk under a grant gets it, and the download is audited
    street = Member.objects.get(username="street")
    UnmaskGrant.objects.create(
        member=street, reason="审批核对材料", expires_at=datetime.now(SHANGHAI) + timedelta(hours=1)
    )
    resp = member_client("street").get(file_url + "?unmask=1")
    assert resp.status_code == 200
    assert resp["Content-Type"] == "image/png" and resp["X-Content-Type-Options"] == "nosniff"
    assert _body(resp) == png
    audit = AuditEntry.objects.filter(
        actor=street, object_type="assistance_document", object_id=str(doc.pk)
    )
    assert audit.count() == 1 and audit.get().reason == "审批核对材料"
    # a wrong application id in the path does not reach the document
    other = _application(demo.grids[0], "student_aid")
    wrong = file_url.replace(f"/assistance/{app.pk}/", f"/assistance/{other.pk}/")
    assert member_client("street").get(wrong + "?unmask=1").status_code == 404
    # not served from /media/
    assert grid1.get(f"/media/{doc.file.name}").status_code == 404


def test_a_pdf_is_a_download_and_a_closed_application_takes_none(
    demo, member_client, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    app = _application(demo.grids[0], "job")
    url = f"/api/v1/assistance/{app.pk}/documents/"
    grid1 = member_client("grid1")
    r = grid1.post(
        url, {"file": SimpleUploadedFile("c.pdf", PDF), "name": "毕业证"}, format="multipart"
    )
    assert r.status_code == 201, r.content
    assert ApplicationDocument.objects.get(pk=r.json()["id"]).content_type == "application/pdf"
    services.withdraw(Member.objects.get(username="grid1"), app.pk, note="已找到工作")
    r = grid1.post(url, {"file": SimpleUploadedFile("d.pdf", PDF), "name": "x"}, format="multipart")
    assert r.status_code == 409, r.content
