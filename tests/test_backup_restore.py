"""Backup and restore: a pg_dump of the database restores into a fresh database with every
row — territory, chain, cases and their events, visits, audit log; a cut dump or a failed
backup says so (non-zero exit) instead of "restored"."""

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
    import psycopg

    with psycopg.connect(url) as conn, conn.cursor() as cur:
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
        assert "every count matches the dump" in r.stdout
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
        import psycopg

        conn = psycopg.connect(_url("postgres"))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{target}"')
        conn.close()


def _database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(_url("postgres")) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        return cur.fetchone() is not None


def test_a_cut_dump_is_refused_and_nothing_is_restored(tmp_path):
    """A dump cut to a fifth (the disk filled up, the copy stopped) fails loudly: non-zero exit,
    no "restored", and no half-filled database left for someone to point the service at."""
    env = {"DATABASE_URL": _url(connection.settings_dict["NAME"]), "PATH": "/usr/bin:/bin"}
    dump = tmp_path / "gridsvc.dump"
    subprocess.run(["bash", "scripts/backup.sh", str(dump)], env=env, check=True)
    cut = tmp_path / "cut.dump"
    data = dump.read_bytes()
    cut.write_bytes(data[: len(data) // 5])
    target = f"restore_{uuid.uuid4().hex[:8]}"
    try:
        r = subprocess.run(
            ["bash", "scripts/restore.sh", str(cut), target],
            env=env,
            capture_output=True,
            text=True,
        )
        assert r.returncode != 0, r.stdout
        assert "restored" not in r.stdout and "restore FAILED" in r.stderr
        assert not _database_exists(target)
    finally:
        import psycopg

        conn = psycopg.connect(_url("postgres"))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{target}"')
        conn.close()


def test_a_backup_that_fails_half_way_leaves_no_file(tmp_path):
    """pg_dump stopped by a full disk (here: a 100 kB file-size limit) → non-zero exit and no
    backup file: a file in the backup folder is always a complete dump."""
    env = {"DATABASE_URL": _url(connection.settings_dict["NAME"]), "PATH": "/usr/bin:/bin"}
    dump = tmp_path / "gridsvc.dump"
    r = subprocess.run(
        ["bash", "-c", f"ulimit -f 200; exec bash scripts/backup.sh {dump}"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0
    assert "backup written" not in r.stdout
    assert list(tmp_path.iterdir()) == [], "no file, not even the partial one"
