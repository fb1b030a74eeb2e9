#!/usr/bin/env bash
# Bundle the web page's npm dependencies (MapLibre GL JS, Chart.js), Swagger UI (served at
# /api/docs/) and OpenLayers (the admin's geometry widget) into static files: never a CDN,
# street offices often sit on an intranet, and the Content-Security-Policy allows only 'self'.
# Idempotent: npm runs only when package-lock.json changed since the last build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENDOR=gridsvc/web/static/web/vendor
if ! command -v npm >/dev/null; then
  echo "[build_web] installing nodejs and npm"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -q >/dev/null
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm >/dev/null
fi
STAMP=node_modules/.gridsvc-lock-hash
HASH=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
  echo "[build_web] npm ci"
  # --ignore-scripts: no install-time scripts (swagger-ui-dist pulls in a telemetry postinstall)
  SCARF_ANALYTICS=false npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
  echo "$HASH" > "$STAMP"
fi
mkdir -p "$VENDOR"
cp -p node_modules/maplibre-gl/dist/maplibre-gl.js node_modules/maplibre-gl/dist/maplibre-gl.css \
   node_modules/maplibre-gl/LICENSE.txt "$VENDOR/"
cp -p node_modules/chart.js/dist/chart.umd.min.js "$VENDOR/chart.umd.min.js"
mkdir -p "$VENDOR/swagger-ui"
for f in swagger-ui-bundle.js swagger-ui-standalone-preset.js swagger-ui.css favicon-32x32.png LICENSE; do
  cp -p "node_modules/swagger-ui-dist/$f" "$VENDOR/swagger-ui/"
done
# the field app's IndexedDB wrapper (served at /field/vendor/idb.js by gridsvc/web/field.py)
cp -p node_modules/idb/build/umd.js "$VENDOR/idb.umd.js"
mkdir -p "$VENDOR/ol"
cp -p node_modules/ol/dist/ol.js node_modules/ol/ol.css node_modules/ol/LICENSE.md "$VENDOR/ol/"
