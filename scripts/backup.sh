#!/usr/bin/env bash
# Back up the gridsvc database to a custom-format dump (compressed, restorable per table).
#   scripts/backup.sh [FILE]          default: var/backups/gridsvc-YYYYmmdd-HHMMSS.dump
# Uses DATABASE_URL, or the local cluster made by scripts/setup.sh.
#
# The dump is written to FILE.partial, then read back in full (scripts/dump_rows.sh: the table
# of contents and every table's data) and only then renamed to FILE. So FILE exists only if it
# is a complete, readable dump; a failed dump (disk full, connection lost) exits non-zero and
# leaves no FILE behind.
set -euo pipefail
cd "$(dirname "$0")/.."
URL="${DATABASE_URL:-postgres://gridsvc:gridsvc@127.0.0.1:5439/gridsvc}"
URL="${URL/#postgis:/postgres:}"
OUT="${1:-var/backups/gridsvc-$(date +%Y%m%d-%H%M%S).dump}"
mkdir -p "$(dirname "$OUT")"
TMP="$OUT.partial"
trap 'rm -f "$TMP"' EXIT
pg_dump --format=custom --no-owner --no-privileges --file="$TMP" "$URL"
if ! ROWS="$(bash scripts/dump_rows.sh "$TMP")"; then
  echo "backup FAILED: the dump cannot be read back in full; no backup written" >&2
  exit 1
fi
mv -f "$TMP" "$OUT"
TABLES=$(printf '%s\n' "$ROWS" | grep -c . || true)
TOTAL=$(printf '%s\n' "$ROWS" | awk '{s += $2} END {print s + 0}')
echo "backup written: $OUT ($(du -h "$OUT" | cut -f1), $TABLES tables, $TOTAL rows, verified)"
