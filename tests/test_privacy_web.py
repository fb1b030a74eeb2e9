"""Issue 15 items 13 and 14: a Content-Security-Policy on every page and Swagger UI from the
project's own bundle (no CDN); attachments allow-listed by content, never served as HTML, and
downloaded through a scoped endpoint (issue 16 item 11)."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _client(username: str | None = None) -> Client:
    client = Client()
    if username:  # through the login page, as a person does
        password = "gridsvc-admin" if username == "admin" else "gridsvc-demo"
        r = client.post("/login/", {"username": username, "password": password})
        assert r.status_code == 302, r.status_code
    return client


def _policy(header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def _asset_urls(html: str) -> list[str]:
    """src of every <script> and href of every <link> in a page."""
    return re.findall(r"<script[^>]*\ssrc=\"([^\"]+)\"", html) + re.findall(
        r"<link[^>]*\shref=\"([^\"]+)\"", html
    )


PAGES = [
    ("/login/", None),
    ("/", "street"),
    ("/api/docs/", None),
    ("/field/", None),  # the field app's shell (docs/field-app.md)
    ("/admin/login/", None),
    # the geometry editor: OpenLayers from our bundle, started without an inline script
    ("/admin/territory/grid/{grid}/change/", "admin"),
    ("/admin/territory/place/add/", "admin"),
]


@pytest.mark.parametrize(("path", "user"), PAGES)
def test_every_page_has_a_strict_csp_and_no_foreign_assets(
    demo, path: str, user: str | None
) -> None:
    path = path.format(grid=demo.grids[0].pk)
    resp = _client(user).get(path)
    assert resp.status_code == 200, resp.status_code
    assert resp["Content-Type"].startswith("text/html")
    policy = _policy(resp["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval', no CDN
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "blob:" in policy["worker-src"]  # MapLibre's workers
    html = resp.content.decode()
    # no inline script: every <script> has a src (the CSP would block it in the browser)
    for tag, body in re.findall(r"(<script[^>]*>)(.*?)</script>", html, flags=re.S):
        assert "src=" in tag and not body.strip(), f"inline script on {path}: {tag}{body[:80]}"
    assert "<style" not in html, f"inline <style> on {path}"
    for url in _asset_urls(html):
        parsed = urlparse(url)
        assert parsed.scheme in ("", "data") and not parsed.netloc, f"{path} loads {url}"


def test_swagger_ui_is_served_from_the_projects_own_bundle(settings) -> None:
    # Static files as production serves them after collectstatic (here straight from the
    # finders: the bundle is built by scripts/build_web.sh).
    settings.WHITENOISE_USE_FINDERS = True
    client = Client()
    html = client.get("/api/docs/").content.decode()
    assets = _asset_urls(html)
    assert any(u.endswith("/swagger-ui-bundle.js") for u in assets), assets
    assert "cdn.jsdelivr" not in html and "unpkg" not in html
    scripts = re.findall(r"<script[^>]*\ssrc=\"([^\"]+)\"", html)
    for url in [*assets, *scripts]:
        if url.startswith("data:"):
            continue
        resp = client.get(url.replace("&amp;", "&"))
        assert resp.status_code == 200, (url, resp.status_code)
    # the start-up script (separate file, not inline) points at our schema and no validator
    init = client.get(next(u for u in scripts if "script" in u).replace("&amp;", "&"))
    body = b"".join(init.streaming_content) if init.streaming else init.content
    assert b"/api/schema/" in body and b'"validatorUrl": null' in body


# ------------------------------------------------------------------------------ attachments
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _body(resp) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join(resp.streaming_content) if resp.streaming else resp.content


def _outsider_building_head(visible: bool) -> str:
    """A building head with a territory of their own that does not include ``visible``."""
    from gridsvc.accounts.models import Member
    from gridsvc.chain.scope import scope_for

    for m in Member.objects.filter(username__startswith="bh-").order_by("username"):
        scope = scope_for(m)
        if not scope.empty and not visible(scope):
            return m.username
    raise AssertionError("no building head outside the territory")


def _grid1_case():  # type: ignore[no-untyped-def]
    from gridsvc.accounts.models import Member
    from gridsvc.cases.models import Case
    from gridsvc.chain.scope import scope_for

    grid1, grid2 = (Member.objects.get(username=u) for u in ("grid1", "grid2"))
    qs = (
        scope_for(grid1)
        .filter(Case.objects.all())
        .exclude(pk__in=scope_for(grid2).filter(Case.objects.all()).values("pk"))
    )
    return qs.exclude(handler=grid2).exclude(reported_by=grid2).order_by("id").first()


def test_an_html_file_named_jpg_is_refused_naming_the_field(
    demo, member_client, settings, tmp_path
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from gridsvc.cases.models import Attachment, Case, CaseEvent

    settings.MEDIA_ROOT = tmp_path
    case = _grid1_case()
    client = member_client("grid1")
    events = CaseEvent.objects.filter(case=case).count()
    for role in ("photo", "file"):
        r = client.post(
            f"/api/v1/cases/{case.pk}/attachments/",
            {"file": SimpleUploadedFile("photo.jpg", HTML, "image/jpeg"), "role": role},
            format="multipart",
        )
        assert r.status_code == 400, (role, r.status_code)
        assert "file" in r.json() and "content" in str(r.json()["file"])
    # a PDF is a document: accepted as a "file", not as a photo
    r = client.post(
        f"/api/v1/cases/{case.pk}/attachments/",
        {"file": SimpleUploadedFile("a.jpg", PDF, "image/jpeg"), "role": "photo"},
        format="multipart",
    )
    assert r.status_code == 400 and "file" in r.json()
    assert not Attachment.objects.filter(case=case).exists()
    assert CaseEvent.objects.filter(case=case).count() == events  # nothing half-way
    assert not list(tmp_path.rglob("*"))  # nor on disk

    # reporting a case on the spot: the field named is the one with the bad photo
    hh = case.household or case.unit.households.first()
    before = Case.objects.count()
    r = client.post(
        "/api/v1/cases/",
        {
            "category": "hazard.fire",
            "title": "楼道堆物",
            "household": hh.pk,
            "on_the_spot": True,
            "outcome": "已当场清理",
            "photos_before": SimpleUploadedFile("b.jpg", _png(), "image/jpeg"),
            "photos_after": SimpleUploadedFile("a.jpg", HTML, "image/jpeg"),
        },
        format="multipart",
    )
    assert r.status_code == 400 and "photos_after" in r.json(), r.content
    assert Case.objects.count() == before

    # a visit photo after the visit: same rule
    from gridsvc.visits.models import Visit

    visit = Visit.objects.filter(member__username="grid1").order_by("id").first()
    r = client.post(
        f"/api/v1/visits/{visit.pk}/photos/",
        {"photo": SimpleUploadedFile("x.jpg", HTML, "image/jpeg")},
        format="multipart",
    )
    assert r.status_code == 400 and "photo" in r.json()


def test_case_attachment_downloads_only_inside_the_territory(
    demo, member_client, settings, tmp_path
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from gridsvc.cases.models import Attachment

    settings.MEDIA_ROOT = tmp_path
    case = _grid1_case()
    png = _png()
    grid1 = member_client("grid1")
    # the client calls it a JPEG named .gif: the server stores and serves what it is, a PNG
    r = grid1.post(
        f"/api/v1/cases/{case.pk}/attachments/",
        {"file": SimpleUploadedFile("x.gif", png, "image/jpeg"), "role": "photo"},
        format="multipart",
    )
    assert r.status_code == 201, r.content
    url = r.json()["url"]
    att = Attachment.objects.get(pk=r.json()["id"])
    assert att.content_type == "image/png" and not att.file.name.endswith((".gif", ".jpg"))
    assert url.endswith(f"/api/v1/cases/{case.pk}/attachments/{att.pk}/file/")
    # the timeline gives the same URL
    events = grid1.get(f"/api/v1/cases/{case.pk}/events/").json()["events"]
    assert url in [a["url"] for e in events for a in e["attachments"]]

    resp = grid1.get(url)
    assert resp.status_code == 200
    assert resp["Content-Type"] == "image/png"
    assert resp["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in resp["Content-Security-Policy"]
    assert _body(resp) == png
    # another grid's member and a building head elsewhere: as if it did not exist
    assert member_client("grid2").get(url).status_code == 404
    outsider = _outsider_building_head(lambda s: s.filter(type(case).objects.filter(pk=case.pk)))
    assert member_client(outsider).get(url).status_code == 404
    # a wrong case id in the path does not reach another case's file
    other = _grid1_case().__class__.objects.exclude(pk=case.pk).first()
    assert grid1.get(url.replace(f"/cases/{case.pk}/", f"/cases/{other.pk}/")).status_code == 404
    # the file is not served from /media/, logged in or not
    assert grid1.get(f"/media/{att.file.name}").status_code == 404
    assert Client().get(f"/media/{att.file.name}").status_code == 404
    assert Client().get(url).status_code in (401, 403)

    # a PDF downloads as a file, never shown
    r = grid1.post(
        f"/api/v1/cases/{case.pk}/attachments/",
        {"file": SimpleUploadedFile("minutes.html", PDF, "text/html"), "role": "file"},
        format="multipart",
    )
    assert r.status_code == 201, r.content
    resp = grid1.get(r.json()["url"])
    assert resp["Content-Type"] == "application/pdf"
    assert resp["Content-Disposition"].startswith("attachment;")
    assert resp["Content-Disposition"].endswith('.pdf"')


def test_a_stored_html_file_is_never_served_as_html(demo, member_client, settings, tmp_path):
    """An old upload (before the content check) holding HTML: served as bytes to download."""
    from django.core.files.base import ContentFile

    from gridsvc.cases.models import Attachment

    settings.MEDIA_ROOT = tmp_path
    case = _grid1_case()
    att = Attachment(case=case, role="file", content_type="text/html", size=len(HTML))
    att.file.save("page.html", ContentFile(HTML))
    resp = member_client("grid1").get(f"/api/v1/cases/{case.pk}/attachments/{att.pk}/file/")
    assert resp.status_code == 200
    assert resp["Content-Type"] == "application/octet-stream"
    assert resp["Content-Disposition"].startswith("attachment;")
    assert resp["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in resp["Content-Security-Policy"]


def test_visit_photo_url_is_the_scoped_download(demo, member_client, settings, tmp_path) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from gridsvc.visits.models import Visit, VisitPhoto

    settings.MEDIA_ROOT = tmp_path
    grid1 = member_client("grid1")
    visit = Visit.objects.filter(member__username="grid1").order_by("id").first()
    png = _png()
    r = grid1.post(
        f"/api/v1/visits/{visit.pk}/photos/",
        {"photo": SimpleUploadedFile("p.jpg", png, "image/jpeg")},
        format="multipart",
    )
    assert r.status_code == 201, r.content
    photo = VisitPhoto.objects.get(pk=r.json()["id"])
    url = r.json()["url"]
    assert url.endswith(f"/api/v1/visits/{visit.pk}/photos/{photo.pk}/file/")
    detail = grid1.get(f"/api/v1/visits/{visit.pk}/").json()
    assert urlparse(url).path in [urlparse(p["url"]).path for p in detail["photos"]]
    resp = grid1.get(url, HTTP_ACCEPT="image/jpeg")  # a phone asking for an image
    assert resp.status_code == 200 and resp["Content-Type"] == "image/png"
    assert _body(resp) == png
    etag = resp["ETag"]
    assert grid1.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert member_client("grid2").get(url).status_code == 404
    outsider = _outsider_building_head(lambda s: s.filter(Visit.objects.filter(pk=visit.pk)))
    assert member_client(outsider).get(url).status_code == 404
    assert grid1.get(f"/media/{photo.image.name}").status_code == 404
