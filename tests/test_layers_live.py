"""Against the running server: GDAL's own OGC API - Features client (``ogrinfo OAPIF:``) reads
the collections and items with a bearer token and with HTTP Basic; GDAL reads a tile fetched
over HTTP; the real procrastinate worker builds an offline package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.core.files.storage import default_storage
from django.db import connection

pytestmark = [
    pytest.mark.server,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]
ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "gridsvc-demo"


def ogrinfo(*args: str, env: dict[str, str]) -> str:
    # GDAL's own tool is installed by scripts/setup.sh: a missing one fails, never skips.
    assert shutil.which("ogrinfo"), "ogrinfo missing: run scripts/setup.sh (gdal-bin)"
    r = subprocess.run(
        ["ogrinfo", "-ro", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "OFF", **env},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def test_gdal_reads_ogc_api_features_and_tiles(live_server, committed_demo, tmp_path):
    from gridsvc.accounts.models import Member
    from gridsvc.cases.models import Case
    from gridsvc.chain.scope import scope_for
    from gridsvc.territory.models import Building, Grid

    base = live_server.url
    token = requests.post(
        f"{base}/api/v1/auth/token/",
        json={"username": "grid1", "password": PASSWORD, "device": "gdal"},
        timeout=30,
    ).json()["access"]
    bearer = {"GDAL_HTTP_HEADERS": f"Authorization: Bearer {token}"}
    basic = {"GDAL_HTTP_AUTH": "BASIC", "GDAL_HTTP_USERPWD": f"grid1:{PASSWORD}"}

    # without credentials: refused
    assert requests.get(f"{base}/ogc/collections", timeout=30).status_code in (401, 403)

    listing = ogrinfo(f"OAPIF:{base}/ogc/", env=bearer)
    for name in ("grids", "buildings", "households", "cases", "visits"):
        assert name in listing

    grid1 = scope_for(Member.objects.get(username="grid1"))
    n_buildings = grid1.filter(Building.objects.all()).count()
    out = ogrinfo(f"OAPIF:{base}/ogc/", "buildings", "-so", env=bearer)
    assert f"Feature Count: {n_buildings}" in out or "Feature Count" not in out
    full = ogrinfo(f"OAPIF:{base}/ogc/", "buildings", env=basic)
    assert full.count("OGRFeature(buildings)") == n_buildings
    assert "code (String) = 620103003012-B" in full
    # paging: GDAL follows the next links (page size 10 by default, more cases than that)
    n_cases = grid1.filter(Case.objects.all()).count()
    assert n_cases > 10
    cases = ogrinfo(f"OAPIF:{base}/ogc/", "cases", env=basic)
    assert cases.count("OGRFeature(cases)") == n_cases
    for field in ("title", "description", "parties", "outcome"):
        assert f"  {field} (" not in cases
    # a spatial filter goes to the server as bbox
    g1 = Grid.objects.get(code="620103003012001")
    x0, y0, x1, y1 = g1.boundary.extent
    clipped = ogrinfo(
        f"OAPIF:{base}/ogc/", "grids", "-spat", str(x0), str(y0), str(x1), str(y1), env=bearer
    )
    assert clipped.count("OGRFeature(grids)") == 1

    # a tile fetched over HTTP, read by GDAL's MVT driver
    from geo.hexbin import lonlat_to_tile

    c = g1.boundary.point_on_surface
    z = 16
    x, y = lonlat_to_tile(c.x, c.y, z)
    r = requests.get(
        f"{base}/tiles/buildings/{z}/{x}/{y}.mvt",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 200 and r.headers["ETag"]
    path = tmp_path / str(z) / str(x)
    path.mkdir(parents=True)
    (path / f"{y}.mvt").write_bytes(r.content)
    tile = ogrinfo("-al", "-so", str(path / f"{y}.mvt"), env={})
    assert "Layer name: buildings" in tile
    again = requests.get(
        f"{base}/tiles/buildings/{z}/{x}/{y}.mvt",
        headers={"Authorization": f"Bearer {token}", "If-None-Match": r.headers["ETag"]},
        timeout=30,
    )
    assert again.status_code == 304

    # one demo load for both (reloading the demo street takes ~20 s)
    check_the_real_worker_builds_the_offline_package(live_server)


def check_the_real_worker_builds_the_offline_package(live_server) -> None:
    from gridsvc.layers.models import OfflinePackage

    base = live_server.url
    token = requests.post(
        f"{base}/api/v1/auth/token/",
        json={"username": "grid1", "password": PASSWORD, "device": "phone"},
        timeout=30,
    ).json()["access"]
    auth = {"Authorization": f"Bearer {token}"}
    from gridsvc.territory.models import Grid

    g1 = Grid.objects.get(code="620103003012001")
    meta = requests.get(f"{base}/api/v1/offline/grids/{g1.id}/", headers=auth, timeout=30).json()
    assert meta["build_queued"] is True
    s = connection.settings_dict
    env = {
        **os.environ,
        "GRIDSVC_TESTING": "1",
        "DATABASE_URL": f"postgis://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}",
        # the live server and the worker must share the media root: hand the worker ours
        # (default_storage caches its location, so changing ours here would not be seen)
        "GRIDSVC_MEDIA_ROOT": str(default_storage.location),
    }
    proc = subprocess.run(
        [sys.executable, "manage.py", "procrastinate", "worker", "-q", "layers", "--one-shot"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    package = OfflinePackage.objects.get(grid=g1)
    assert package.status == "ready", proc.stdout[-2000:] + proc.stderr[-2000:]
    r = requests.get(f"{base}/api/v1/offline/grids/{g1.id}/package", headers=auth, timeout=30)
    # a zip is never gzipped again (requests asks for gzip): strong ETag, exact length
    assert r.status_code == 200 and r.headers["ETag"] == package.etag
    assert "Content-Encoding" not in r.headers
    assert int(r.headers["Content-Length"]) == len(r.content) == package.size
    # a broken download resumes where it stopped
    cut = package.size // 2
    rest = requests.get(
        f"{base}/api/v1/offline/grids/{g1.id}/package",
        headers={**auth, "Range": f"bytes={cut}-", "If-Range": package.etag},
        timeout=30,
    )
    assert rest.status_code == 206 and "Content-Encoding" not in rest.headers
    assert rest.headers["Content-Range"] == f"bytes {cut}-{package.size - 1}/{package.size}"
    assert r.content[:cut] + rest.content == r.content
    plain = requests.get(
        f"{base}/api/v1/offline/grids/{g1.id}/package",
        headers={**auth, "Accept-Encoding": "identity"},
        timeout=30,
    )
    assert plain.headers["ETag"] == package.etag
    assert int(plain.headers["Content-Length"]) == package.size == len(plain.content)
    r304 = requests.get(
        f"{base}/api/v1/offline/grids/{g1.id}/package",
        headers={**auth, "If-None-Match": r.headers["ETag"]},
        timeout=30,
    )
    assert r304.status_code == 304
