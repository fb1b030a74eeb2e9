#!/usr/bin/env bash
# Keep the background worker running (used by scripts/serve.sh, i.e. `make demo`).
#   scripts/worker.sh [manage.py worker options]
# `manage.py worker` exits when the database goes away (restart, failover) or when it is killed;
# this loop starts it again after a pause that doubles each time (1 s, 2 s, 4 s … up to
# GRIDSVC_WORKER_MAX_BACKOFF, default 30 s) and is back to 1 s after a run of a minute or more.
# SIGTERM/SIGINT stop the worker (it finishes its running jobs) and the loop.
# Production: systemd does the same (deploy/gridsvc-worker.service, Restart=always).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${GRIDSVC_PYTHON:-.venv/bin/python}"
MAX="${GRIDSVC_WORKER_MAX_BACKOFF:-30}"
child=0
stopping=0
stop() {
  stopping=1
  if [ "$child" -gt 0 ]; then kill -TERM "$child" 2>/dev/null; fi
}
trap stop TERM INT
delay=1
while :; do
  started=$(date +%s)
  "$PY" manage.py worker "$@" &
  child=$!
  rc=0
  wait "$child" || rc=$?
  # a trapped signal ends `wait` early: wait for the worker itself to finish
  while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
  child=0
  if [ "$stopping" = 1 ]; then exit 0; fi
  ran=$(($(date +%s) - started))
  if [ "$ran" -ge 60 ]; then delay=1; fi
  echo "$(date -u +%FT%TZ) worker supervisor: the worker exited with status $rc after ${ran}s;" \
    "restarting in ${delay}s" >&2
  sleep "$delay" &
  child=$!
  wait "$child" 2>/dev/null
  child=0
  if [ "$stopping" = 1 ]; then exit 0; fi
  delay=$((delay * 2 > MAX ? MAX : delay * 2))
done
