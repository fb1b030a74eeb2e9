#!/usr/bin/env bash
# City-scale benchmarks (issue 9): bash scripts/bench.sh small|medium|large [bench/run.py options]
# Sets up (idempotent), migrates, loads the city of that size if it is not loaded, starts the
# real service (gunicorn, DEBUG off) on a free loopback port, measures, writes
# bench/results/<size>-<date>.json. Not a test: nothing passes or fails on time.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE="${1:-small}"
shift || true
case "$SIZE" in small|medium|large) ;; *) echo "usage: $0 small|medium|large" >&2; exit 2 ;; esac
GRIDSVC_BROWSER="${GRIDSVC_BROWSER:-0}" bash scripts/setup.sh
export DJANGO_SETTINGS_MODULE=gridsvc.settings
export DJANGO_DEBUG=0
# synthetic data: the published development keys are allowed here (never with GRIDSVC_ENV=production);
# the demo's own keys (var/secrets.env, made by `make demo`) when it made them: same database
export GRIDSVC_ALLOW_DEV_KEYS=1
if [ -z "${GRIDSVC_FIELD_KEYS:-}" ] && [ -f var/secrets.env ]; then set -a; . ./var/secrets.env; set +a; fi
export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-bench-only-secret-key-not-for-production-0123456789abcdef}"
# the development keys (the demo and the city are encrypted with them): override for real data
export GRIDSVC_FIELD_KEYS="${GRIDSVC_FIELD_KEYS:-ZGV2LW9ubHktZmllbGQta2V5LWNoYW5nZS1tZS0wMDA=}"
export GRIDSVC_HASH_KEY="${GRIDSVC_HASH_KEY:-dev-only-hash-key}"
# DATABASE_URL may name a database of its own (e.g. …/gridsvc_bench_large, so a big city does
# not share the development database): made here as that role if it does not exist (the owner
# role may create databases; PostGIS comes from template1), then migrated
if [ -n "${DATABASE_URL:-}" ]; then
  .venv/bin/python - <<'PY'
import os

import dj_database_url
import psycopg
from psycopg import sql

db = dj_database_url.parse(os.environ["DATABASE_URL"])
kw = {"user": db["USER"], "password": db["PASSWORD"], "host": db["HOST"] or None,
      "port": db["PORT"] or None, "autocommit": True}
with psycopg.connect(dbname="postgres", **kw) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
        print(f"created database {db['NAME']}")
PY
fi
.venv/bin/python manage.py migrate --no-input -v 0
exec .venv/bin/python bench/run.py --size "$SIZE" "$@"
