#!/usr/bin/env bash
# Regenerate the screenshots of docs/web.md: runs the street office page's browser test
# (tests/test_web_browser.py, Chromium against a live server with the demo street), which
# writes them to test-artifacts/, and copies them to docs/img/.
# Needs what the tests need (scripts/setup.sh: PostGIS, Chromium, the npm bundle with axe-core).
set -euo pipefail
cd "$(dirname "$0")/.."
GRIDSVC_TESTING=1 GRIDSVC_TEST_DB="${GRIDSVC_TEST_DB:-test_web_screens}" \
  .venv/bin/python -m pytest tests/test_web_browser.py -q -p no:cacheprovider --reuse-db
mkdir -p docs/img
for f in web-heatmap web-dispatch web-grid-member web-tablet-en web-case-sheet web-missing-reports web-unity web-services web-phone web-district; do
  cp "test-artifacts/$f.png" "docs/img/$f.png"
done
echo "[web_screenshots] docs/img/web-*.png updated"
