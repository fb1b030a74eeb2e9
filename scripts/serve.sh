#!/usr/bin/env bash
# Serve gridsvc with gunicorn and run the background worker beside it, supervised: the worker is
# restarted whenever it stops (a database restart, a crash) by scripts/worker.sh.
# Ctrl-C (or SIGTERM) stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${1:-8000}"
mkdir -p var
.venv/bin/python manage.py collectstatic --no-input -v 0
bash scripts/worker.sh >>var/worker.log 2>&1 &
SUPERVISOR=$!
WEB=0
shutdown() {
  trap - INT TERM EXIT
  [ "$WEB" -gt 0 ] && kill -TERM "$WEB" 2>/dev/null
  kill -TERM "$SUPERVISOR" 2>/dev/null
  wait 2>/dev/null || true
}
trap shutdown INT TERM EXIT
cat <<MSG

  gridsvc is serving the demo street 华林山社区
    web page (street office):  http://127.0.0.1:${PORT}/
    REST API:                  http://127.0.0.1:${PORT}/api/v1/
    OpenAPI docs (Swagger):    http://127.0.0.1:${PORT}/api/docs/
    admin:                     http://127.0.0.1:${PORT}/admin/
    health (web + worker):     http://127.0.0.1:${PORT}/health
  demo logins (password gridsvc-demo): street, cadre1, grid1, bh-001 …; admin / gridsvc-admin
  worker log: var/worker.log (the worker is restarted if it stops)

MSG
# gridsvc/gunicorn_conf.py: 2 workers × 4 threads (gthread, chosen by measurement: README
# "Benchmarks"), --preload (views and their libraries imported once, before the fork: no
# worker's first request pays for them), no control socket
.venv/bin/gunicorn gridsvc.wsgi -c gridsvc/gunicorn_conf.py -b "127.0.0.1:${PORT}" --access-logfile - &
WEB=$!
wait "$WEB" || true
