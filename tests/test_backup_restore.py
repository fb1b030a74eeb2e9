"""Backup and restore: a pg_dump of the database restores into a fresh database with every
row — territory, chain, cases and their events, visits, audit log."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def _url(dbname: str) -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{dbname}"


def _counts(url: str) -> dict[str, int]:
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT LIKE 'spatial_ref_sys' ORDER BY 1"
        )
        tables = [r[0] for r in cur.fetchall()]
        counts = {}
        for t in tables:
            cur.execute(f'SELECT count(*) FROM "{t}"')
            counts[t] = cur.fetchone()[0]
        return counts


def test_backup_restores_into_a_fresh_database(tmp_path):
    source = connection.settings_dict["NAME"]
    target = f"restore_{uuid.uuid4().hex[:8]}"
    dump = tmp_path / "gridsvc.dump"
    env = {"DATABASE_URL": _url(source), "PATH": "/usr/bin:/bin"}
    subprocess.run(
        ["bash", "scripts/backup.sh", str(dump)], env=env, check=True, capture_output=True
    )
    assert dump.stat().st_size > 10_000
    try:
        r = subprocess.run(
            ["bash", "scripts/restore.sh", str(dump), target],
            env=env,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        before, after = _counts(_url(source)), _counts(_url(target))
        assert after == before
        assert after["territory_household"] == 1517 and after["territory_resident"] == 4101
        for table in ("cases_case", "cases_caseevent"):
            if table in before:
                assert after[table] == before[table] > 0
        # refuses to restore over an existing database
        again = subprocess.run(
            ["bash", "scripts/restore.sh", str(dump), target],
            env=env,
            capture_output=True,
            text=True,
        )
        assert again.returncode != 0 and "refusing" in again.stderr
    finally:
        import psycopg2

        conn = psycopg2.connect(_url("postgres"))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{target}"')
        conn.close()
