"""The static files storage of production (``STORAGES["staticfiles"]`` in settings).

whitenoise's :class:`~whitenoise.storage.CompressedManifestStaticFilesStorage` — every file
also under a content-hashed name listed in the manifest, with .gz and (the ``brotli`` package
installed) .br copies — with two changes:

- the ``sourceMappingURL`` comments of the bundled libraries (OpenLayers, MapLibre, Swagger UI:
  scripts/build_web.sh copies no source maps) are left as they are instead of being resolved,
  so a missing map is not a collectstatic error; CSS ``url()`` and ``@import`` references are
  still rewritten to the hashed names;
- a file whose compressed copies are already there from an earlier collectstatic (whitenoise
  gives them the file's modification time) is not compressed again: scripts/serve.sh collects
  at every start, and brotli at its best quality takes ~40 s over the 9 MB of bundles.
"""

from __future__ import annotations

import os
from typing import Any

from whitenoise.compress import Compressor
from whitenoise.storage import CompressedManifestStaticFilesStorage


class _FreshCompressor(Compressor):
    """Compresses a file only when its .br/.gz copies are missing or older than it."""

    def compress(self, path: str) -> list[str]:
        wanted = [s for s, on in ((".br", self.use_brotli), (".gz", self.use_gzip)) if on]
        mtime = os.stat(path).st_mtime
        copies = [path + s for s in wanted]
        if copies and all(
            os.path.exists(c) and abs(os.stat(c).st_mtime - mtime) < 0.01 for c in copies
        ):
            return copies
        found: list[str] = super().compress(path)
        return found


class StaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed, compressed static files; source-map comments untouched."""

    patterns = (
        (
            "*.css",
            (
                r"""(?P<matched>url\(['"]{0,1}\s*(?P<url>.*?)["']{0,1}\))""",
                (
                    r"""(?P<matched>@import\s*["']\s*(?P<url>.*?)["'])""",
                    """@import url("%(url)s")""",
                ),
            ),
        ),
    )

    def create_compressor(self, **kwargs: Any) -> Compressor:
        return _FreshCompressor(**kwargs)
