#!/usr/bin/env bash
# Back up the gridsvc database to a custom-format dump (compressed, restorable per table).
#   scripts/backup.sh [FILE]          default: var/backups/gridsvc-YYYYmmdd-HHMMSS.dump
# Uses DATABASE_URL, or the local cluster made by scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
URL="${DATABASE_URL:-postgres://gridsvc:gridsvc@127.0.0.1:5439/gridsvc}"
URL="${URL/#postgis:/postgres:}"
OUT="${1:-var/backups/gridsvc-$(date +%Y%m%d-%H%M%S).dump}"
mkdir -p "$(dirname "$OUT")"
pg_dump --format=custom --no-owner --no-privileges --file="$OUT" "$URL"
echo "backup written: $OUT ($(du -h "$OUT" | cut -f1))"
