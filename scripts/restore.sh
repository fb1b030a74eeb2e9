#!/usr/bin/env bash
# Restore a dump made by scripts/backup.sh into a NEW database (never over a live one).
#   scripts/restore.sh FILE NEW_DB_NAME
# Then point DATABASE_URL at the new database (and run `manage.py migrate` if the code is newer).
set -euo pipefail
cd "$(dirname "$0")/.."
FILE="$1"; TARGET="$2"
URL="${DATABASE_URL:-postgres://gridsvc:gridsvc@127.0.0.1:5439/gridsvc}"
URL="${URL/#postgis:/postgres:}"
BASE="${URL%/*}"
if psql "$BASE/postgres" -tAc "select 1 from pg_database where datname='$TARGET'" | grep -q 1; then
  echo "database $TARGET exists: refusing to restore over it" >&2; exit 1
fi
psql "$BASE/postgres" -qc "create database \"$TARGET\""
psql "$BASE/$TARGET" -qc "create extension if not exists postgis"
pg_restore --no-owner --no-privileges --exit-on-error --dbname="$BASE/$TARGET" "$FILE" 2>&1 \
  | grep -v 'already exists' || true
psql "$BASE/$TARGET" -qc "analyze"
echo "restored $FILE into $TARGET"
