#!/usr/bin/env bash
# Restore a dump made by scripts/backup.sh into a NEW database (never over a live one).
#   scripts/restore.sh FILE NEW_DB_NAME
# Then point DATABASE_URL at the new database (and run `manage.py migrate` if the code is newer).
#
# Fails loudly (non-zero exit, nothing left behind) unless every row of the dump is restored:
# the dump is read in full first (a cut or corrupt file is refused before anything is created),
# pg_restore runs in one transaction and stops at the first error, and each table's row count
# in the new database is compared with its count in the dump.
set -euo pipefail
cd "$(dirname "$0")/.."
FILE="$1"; TARGET="$2"
URL="${DATABASE_URL:-postgres://gridsvc:gridsvc@127.0.0.1:5439/gridsvc}"
URL="${URL/#postgis:/postgres:}"
BASE="${URL%/*}"
fail() { echo "restore FAILED: $*" >&2; exit 1; }
[ -f "$FILE" ] || fail "no such file $FILE"
EXPECTED="$(bash scripts/dump_rows.sh "$FILE")" \
  || fail "$FILE is not a complete dump (cut short or corrupt); nothing restored"
if psql "$BASE/postgres" -tAc "select 1 from pg_database where datname='$TARGET'" | grep -q 1; then
  echo "database $TARGET exists: refusing to restore over it" >&2; exit 1
fi
psql "$BASE/postgres" -qc "create database \"$TARGET\""
drop_target() {
  psql "$BASE/postgres" -qc "drop database if exists \"$TARGET\"" >/dev/null 2>&1 || true
}
psql "$BASE/$TARGET" -qc "create extension if not exists postgis" || { drop_target; fail "postgis"; }
LOG="$(mktemp)"; LIST="$(mktemp)"
trap 'rm -f "$LOG" "$LIST"' EXIT
# PostGIS belongs to the new database (created above, or preinstalled from template1): skip the
# dump's extension entries and spatial_ref_sys rows, which the owner role (not a superuser,
# scripts/setup.sh) may not restore.
pg_restore -l "$FILE" \
  | grep -Ev '^[0-9]+; [0-9]+ [0-9]+ ((COMMENT - )?EXTENSION |TABLE DATA [a-z_]+ spatial_ref_sys )' >"$LIST"
if ! pg_restore --no-owner --no-privileges --exit-on-error --single-transaction -L "$LIST" \
     --dbname="$BASE/$TARGET" "$FILE" 2>"$LOG"; then
  cat "$LOG" >&2
  drop_target
  fail "pg_restore stopped on an error; database $TARGET removed"
fi
# every table's rows, as counted in the dump (spatial_ref_sys: PostGIS's own rows come with the
# extension, the dump holds only added ones)
MISMATCH=0; TABLES=0; TOTAL=0
while read -r table want; do
  [ -n "$table" ] || continue
  [ "$table" = "public.spatial_ref_sys" ] && continue
  got="$(psql "$BASE/$TARGET" -tAc "select count(*) from $table")" || got="?"
  if [ "$got" != "$want" ]; then
    echo "  $table: $got rows restored, $want in the dump" >&2; MISMATCH=1
  fi
  TABLES=$((TABLES + 1)); TOTAL=$((TOTAL + want))
done <<<"$EXPECTED"
if [ "$MISMATCH" = 1 ]; then
  drop_target
  fail "row counts differ from the dump; database $TARGET removed"
fi
psql "$BASE/$TARGET" -qc "analyze"
echo "restored $FILE into $TARGET: $TABLES tables, $TOTAL rows, every count matches the dump"
