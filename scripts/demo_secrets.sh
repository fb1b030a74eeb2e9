#!/usr/bin/env bash
# The demo's own secrets (never the development keys published in gridsvc/settings.py):
#   scripts/demo_secrets.sh [FILE]     default var/secrets.env
# Makes FILE (mode 600) with a random DJANGO_SECRET_KEY, GRIDSVC_FIELD_KEYS (a Fernet key) and
# GRIDSVC_HASH_KEY on the first run; later runs leave it as it is (data encrypted with these
# keys must stay readable). Prints "new" on stdout when it made the file. `make demo` sources
# it (set -a; . var/secrets.env) before migrate, load_demo and serve.
set -euo pipefail
cd "$(dirname "$0")/.."
FILE="${1:-var/secrets.env}"
if [ -s "$FILE" ]; then exit 0; fi
mkdir -p "$(dirname "$FILE")"
umask 077
PY="$(command -v python3)"
tmp="$(mktemp "${FILE}.XXXXXX")"
"$PY" - >"$tmp" <<'PYCODE'
import base64
import os
import secrets

print("# gridsvc demo secrets, made by scripts/demo_secrets.sh: keep private, keep stable")
print(f"DJANGO_SECRET_KEY={secrets.token_urlsafe(60)}")
print(f"GRIDSVC_FIELD_KEYS={base64.urlsafe_b64encode(os.urandom(32)).decode()}")
print(f"GRIDSVC_HASH_KEY={secrets.token_urlsafe(48)}")
PYCODE
chmod 600 "$tmp"
mv "$tmp" "$FILE"
echo new
