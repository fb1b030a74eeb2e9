"""Heavy libraries are imported where they are used, not with the URLconf (issue 19).

pandas, geopandas, openpyxl and matplotlib cost about 1 s to import together; when the view
modules imported them, every worker's first request after a start (a deploy, a worker
restart) waited for them. Only imports, exports, ledgers and reports need them: they are
imported inside those functions (and :mod:`geo.lazy` stand-ins), so a process that has loaded
every URL still has none of them, and a roster template still comes out as a workbook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "geopandas", "openpyxl", "matplotlib")

PROBE = """
import json, sys
import django
django.setup()
from django.urls import get_resolver
n = len(get_resolver().url_patterns)
loaded = [m for m in {heavy!r} if m in sys.modules]
from gridsvc.dataio.roster import template_workbook
xlsx = template_workbook()
print(json.dumps({{"patterns": n, "loaded": loaded, "zip": xlsx[:2].decode(),
                   "after": "openpyxl" in sys.modules}}))
"""


def test_urlconf_does_not_import_heavy_libraries() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gridsvc.settings", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["patterns"] > 0
    assert res["loaded"] == [], f"imported with the URLconf: {res['loaded']}"
    # used where needed: the roster template is still an xlsx (a zip), openpyxl loaded then
    assert res["zip"] == "PK" and res["after"] is True
