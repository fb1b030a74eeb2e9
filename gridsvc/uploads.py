"""Uploaded files (附件: case attachments, visit photos): which types are accepted, decided by
the content, and how a stored file is served back.

- **Allow-listed by content.** A file is accepted only if its first bytes (magic bytes) are a
  JPEG, PNG or WebP image, or, where documents are allowed, a PDF. The file name and the
  client's ``Content-Type`` are ignored: an HTML page renamed ``photo.jpg`` and sent as
  ``image/jpeg`` is refused.
- **Stored under a name the server chooses** (content hash + the extension of the detected
  type), never the client's file name.
- **Never served as a page.** :func:`download_headers` gives the type detected from the stored
  bytes again (``application/octet-stream`` if it is not on the list), ``nosniff``, a
  ``sandbox`` Content-Security-Policy and ``Content-Disposition: attachment`` for everything
  that is not an image. Files are only served through the scoped download endpoints
  (``api/attachments.py``); ``/media/`` is not served at all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import IO

#: Image types: shown inline (``<img>``) when downloaded.
IMAGE_TYPES: dict[str, str] = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
#: Document types: always downloaded as a file.
DOCUMENT_TYPES: dict[str, str] = {"application/pdf": "pdf"}
#: Every type an attachment may have, with its file extension.
ALLOWED_TYPES: dict[str, str] = {**IMAGE_TYPES, **DOCUMENT_TYPES}

#: The policy of every downloaded file: no script, no plugin, no framing, a unique origin.
DOWNLOAD_POLICY = "default-src 'none'; img-src 'self'; sandbox; frame-ancestors 'none'"


class UploadRefused(ValueError):
    """An upload is not accepted; ``field`` names the request field it came in."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Upload:
    """A checked upload: its bytes, the type detected from them, and the name to store."""

    data: bytes
    content_type: str
    sha256: str

    @property
    def extension(self) -> str:
        return ALLOWED_TYPES[self.content_type]

    @property
    def size(self) -> int:
        return len(self.data)

    def stored_name(self, prefix: str = "") -> str:
        """A file name chosen by the server: ``<prefix><hash>.<ext>``."""
        return f"{prefix}{self.sha256[:20]}.{self.extension}"


def sniff(head: bytes) -> str | None:
    """The allow-listed type of a file from its first bytes (≥ 12), or None."""
    if head[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:5] == b"%PDF-":
        return "application/pdf"
    return None


def check_upload(
    f: IO[bytes] | bytes,
    field: str,
    *,
    max_bytes: int,
    documents: bool = True,
) -> Upload:
    """Read and check one upload; raise :class:`UploadRefused` naming ``field``.

    ``documents=False`` accepts images only (photos); otherwise PDF too.
    """
    if isinstance(f, bytes | bytearray):
        data = bytes(f)
    else:
        size = getattr(f, "size", None)
        if size is not None and size > max_bytes:
            raise UploadRefused(field, f"larger than {max_bytes // 2**20} MB")
        data = f.read(max_bytes + 1)
        if hasattr(f, "seek"):
            f.seek(0)
    if not data:
        raise UploadRefused(field, "empty file")
    if len(data) > max_bytes:
        raise UploadRefused(field, f"larger than {max_bytes // 2**20} MB")
    ctype = sniff(data[:16])
    allowed = ALLOWED_TYPES if documents else IMAGE_TYPES
    if ctype not in allowed:
        names = "JPEG, PNG, WebP" + (" or PDF" if documents else "")
        raise UploadRefused(field, f"only {names} files are accepted (checked by content)")
    return Upload(data, ctype, hashlib.sha256(data).hexdigest())


def download_headers(head: bytes, filename_stem: str) -> dict[str, str]:
    """Headers for serving a stored file whose first bytes are ``head``: the type is decided
    here from the content, never taken from what the uploader said."""
    ctype = sniff(head[:16])
    if ctype in IMAGE_TYPES:
        disposition = f'inline; filename="{filename_stem}.{IMAGE_TYPES[ctype]}"'
    elif ctype in DOCUMENT_TYPES:
        disposition = f'attachment; filename="{filename_stem}.{DOCUMENT_TYPES[ctype]}"'
    else:
        ctype = "application/octet-stream"
        disposition = f'attachment; filename="{filename_stem}.bin"'
    return {
        "Content-Type": ctype,
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": DOWNLOAD_POLICY,
        "Cache-Control": "private, no-cache",
    }
