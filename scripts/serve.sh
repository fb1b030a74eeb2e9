#!/usr/bin/env bash
# Serve gridsvc with gunicorn and run the background worker beside it (Ctrl-C stops both).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${1:-8000}"
mkdir -p var
.venv/bin/python manage.py collectstatic --no-input -v 0
.venv/bin/python manage.py procrastinate worker >var/worker.log 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT
cat <<MSG

  gridsvc is serving the demo street 华林山社区
    web page (street office):  http://127.0.0.1:${PORT}/
    REST API:                  http://127.0.0.1:${PORT}/api/v1/
    OpenAPI docs (Swagger):    http://127.0.0.1:${PORT}/api/docs/
    admin:                     http://127.0.0.1:${PORT}/admin/
  demo logins (password gridsvc-demo): street, cadre1, grid1, bh-001 …; admin / gridsvc-admin
  worker log: var/worker.log

MSG
exec .venv/bin/gunicorn gridsvc.wsgi -b "127.0.0.1:${PORT}" -w 3 --access-logfile -
