#!/usr/bin/env bash
# Read a custom-format dump from end to end and print each table's row count in it:
#   scripts/dump_rows.sh FILE      →  "public.cases_case 260" … one line per table
# Exits non-zero when the dump cannot be read in full (cut short, corrupt): pg_restore
# decompresses every table's data, so a truncated file fails here, not at restore time.
set -euo pipefail
FILE="$1"
pg_restore --list "$FILE" >/dev/null
pg_restore --data-only --file=- "$FILE" | awk '
  /^COPY / { table = $2; n = 0; inside = 1; next }
  inside && /^\\\.$/ { print table, n; inside = 0; next }
  inside { n++ }
  END { if (inside) exit 1 }'
