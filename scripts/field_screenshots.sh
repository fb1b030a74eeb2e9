#!/usr/bin/env bash
# Regenerate the screenshots of docs/field-app.md: runs the field app's browser test
# (tests/test_field_app.py, Chromium at 360 px against a live server with the demo street),
# which writes them to test-artifacts/, and copies them to docs/img/.
# Needs what the tests need (scripts/setup.sh: PostGIS, Chromium, the npm bundle).
set -euo pipefail
cd "$(dirname "$0")/.."
GRIDSVC_TESTING=1 GRIDSVC_TEST_DB="${GRIDSVC_TEST_DB:-test_field_screens}" \
  .venv/bin/python -m pytest tests/test_field_app.py -q -p no:cacheprovider --reuse-db \
  -k test_field_app_offline_day
mkdir -p docs/img
for f in field-tasks field-visit field-offline-tasks field-case field-outbox-sent; do
  cp "test-artifacts/$f.png" "docs/img/$f.png"
done
echo "[field_screenshots] docs/img/field-*.png updated"
