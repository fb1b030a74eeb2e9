#!/usr/bin/env bash
# Run lint and the whole test suite against the local PostGIS (set up by scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export GRIDSVC_TESTING=1
mkdir -p test-artifacts
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# strict on geo/, gridsvc/supervision/ and gridsvc/cases/; django-stubs checks on gridsvc/chain/ (pyproject.toml [tool.mypy])
.venv/bin/mypy
.venv/bin/python manage.py makemigrations --check --dry-run >/dev/null || {
  echo "models and migrations disagree: run manage.py makemigrations" >&2; exit 1; }
# Two pytest-xdist workers, each on its own copy of the demo template (tests/conftest.py); tests
# handed out two at a time, so the worker that starts the long schemathesis run (marked early)
# is not left holding a queue while the other one idles.
exec .venv/bin/python -m pytest -n "${GRIDSVC_TEST_WORKERS:-2}" --dist load --maxschedchunk 2 --durations=15 "$@"
