#!/usr/bin/env bash
# Idempotent set-up for gridsvc on a Debian machine:
#   1. apt packages (PostgreSQL + PostGIS, GDAL, Chromium for browser tests)
#   2. a Python virtualenv in .venv with requirements.txt, -test.txt and -bench.txt (hashed)
#   3. a local PostGIS cluster "gridsvc" (unless DATABASE_URL is set) with two roles and a
#      database. Neither role is a superuser:
#      - gridsvc      owns the database and its tables: migrations, load_demo, the tests
#                     (CREATEDB for test databases; PostGIS comes preinstalled from template1)
#      - gridsvc_app  what the running application (make demo: gunicorn + worker) connects
#                     as: SELECT/INSERT/UPDATE/DELETE only, so it can neither disable the
#                     audit triggers (owner only) nor TRUNCATE; on audit_auditentry only
#                     SELECT/INSERT (migration audit.0003).
# Safe to run any number of times; each step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_PORT="${GRIDSVC_PG_PORT:-5439}"
PG_CLUSTER="${GRIDSVC_PG_CLUSTER:-gridsvc}"
APP_ROLE="gridsvc_app"
VENV=".venv"
PYTHON="${PYTHON:-python3}"
WANT_BROWSER="${GRIDSVC_BROWSER:-1}"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# need_root, apt_install (apt-get update only when a package is missing)
source scripts/lib.sh

apt_install postgresql postgresql-contrib gdal-bin libgdal-dev libgeos-c1v5 libproj-dev ca-certificates
PG_VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n1)
apt_install "postgresql-${PG_VERSION}-postgis-3"
if [ "$WANT_BROWSER" = "1" ]; then apt_install chromium fonts-noto-cjk; fi
apt_install fonts-noto-cjk poppler-utils  # Chinese glyphs in the report charts and PDF (matplotlib); pdftoppm renders the PDF in the tests

# ---------------------------------------------------------------- 2. virtualenv
if [ ! -x "$VENV/bin/python" ]; then log "creating $VENV"; "$PYTHON" -m venv "$VENV"; fi
# Runtime, test and benchmark requirements, each compiled by pip-compile from its .in file with
# every file's sha256 (requirements*.in say how): pip refuses a download whose hash differs.
REQ_FILES=(requirements.txt requirements-test.txt requirements-bench.txt)
REQ_HASH=$(cat "${REQ_FILES[@]}" | sha256sum | cut -d' ' -f1)
if [ ! -f "$VENV/.req-hash" ] || [ "$(cat "$VENV/.req-hash")" != "$REQ_HASH" ]; then
  log "pip install --require-hashes -r ${REQ_FILES[*]}"
  "$VENV/bin/pip" install -q --require-hashes ${REQ_FILES[@]/#/-r } 2> >(grep -v '^WARNING: Location' >&2)
  echo "$REQ_HASH" > "$VENV/.req-hash"
fi

# ---------------------------------------------------------------- 3. PostGIS cluster
if [ -n "${DATABASE_URL:-}" ]; then
  log "DATABASE_URL set: using it, no local cluster"
  exit 0
fi
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "${PG_VERSION} ${PG_CLUSTER}"; then
  log "creating PostgreSQL ${PG_VERSION} cluster ${PG_CLUSTER} on port ${PG_PORT}"
  need_root pg_createcluster "${PG_VERSION}" "${PG_CLUSTER}" --port "${PG_PORT}" --locale C.UTF-8 -- --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  conf="/etc/postgresql/${PG_VERSION}/${PG_CLUSTER}/conf.d/gridsvc.conf"
  need_root tee "$conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = 1GB
work_mem = 32MB
maintenance_work_mem = 512MB
synchronous_commit = off
random_page_cost = 1.1
jit = off
CONF
fi
if ! pg_lsclusters -h | awk -v v="${PG_VERSION}" -v c="${PG_CLUSTER}" '$1==v && $2==c {print $4}' | grep -q online; then
  log "starting cluster ${PG_CLUSTER}"
  need_root pg_ctlcluster "${PG_VERSION}" "${PG_CLUSTER}" start
fi
psql_admin() { need_root su postgres -c "psql -p ${PG_PORT} -v ON_ERROR_STOP=1 -qtA $*"; }
# PostGIS in template1 first: every database the (non-superuser) owner role creates — test
# databases, restores — has it without CREATE EXTENSION rights.
psql_admin "-d template1 -c \"set client_min_messages=warning; create extension if not exists postgis\""
if [ "$(psql_admin "-c \"select 1 from pg_roles where rolname='gridsvc'\"")" != "1" ]; then
  log "creating role gridsvc (owner, not a superuser)"
  psql_admin "-c \"create role gridsvc login nosuperuser createdb password 'gridsvc'\""
elif [ "$(psql_admin "-c \"select rolsuper from pg_roles where rolname='gridsvc'\"")" = "t" ]; then
  log "role gridsvc: no longer a superuser"
  psql_admin "-c \"alter role gridsvc nosuperuser createdb\""
fi
if [ "$(psql_admin "-c \"select 1 from pg_roles where rolname='${APP_ROLE}'\"")" != "1" ]; then
  log "creating role ${APP_ROLE} (the application at run time: DML only)"
  psql_admin "-c \"create role ${APP_ROLE} login nosuperuser nocreatedb nocreaterole password '${APP_ROLE}'\""
fi
if [ "$(psql_admin "-c \"select 1 from pg_database where datname='gridsvc'\"")" != "1" ]; then
  log "creating database gridsvc"
  psql_admin "-c \"create database gridsvc owner gridsvc\""
fi
psql_admin "-d gridsvc -c \"set client_min_messages=warning; create extension if not exists postgis\""
# What the application role may do, in template1 (copied into new databases) and gridsvc: DML
# on the tables the owner makes; never TRUNCATE, TRIGGER or ownership. The audit tables lose
# UPDATE/DELETE again (audit_lock_down_privileges, from migration audit.0003) after the grant.
GRANTS="alter default privileges for role gridsvc in schema public grant select, insert, update, delete on tables to ${APP_ROLE};
alter default privileges for role gridsvc in schema public grant usage, select on sequences to ${APP_ROLE};"
for db in template1 gridsvc; do
  need_root su postgres -c "psql -p ${PG_PORT} -v ON_ERROR_STOP=1 -qtA -d ${db}" <<SQL >/dev/null
set client_min_messages=warning;
${GRANTS}
grant connect on database ${db} to ${APP_ROLE};
grant usage on schema public to ${APP_ROLE};
grant select, insert, update, delete on all tables in schema public to ${APP_ROLE};
grant usage, select on all sequences in schema public to ${APP_ROLE};
revoke truncate, trigger, references on all tables in schema public from ${APP_ROLE};
do \$\$ begin
  if exists (select 1 from pg_proc where proname = 'audit_lock_down_privileges') then
    perform audit_lock_down_privileges();
  end if;
end \$\$;
SQL
done
log "PostGIS ready: postgres://gridsvc:gridsvc@127.0.0.1:${PG_PORT}/gridsvc (owner: migrate, tests)"
log "application role: postgres://${APP_ROLE}:${APP_ROLE}@127.0.0.1:${PG_PORT}/gridsvc (make demo serves with it)"
