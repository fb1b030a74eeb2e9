# Shared shell helpers of scripts/setup.sh and scripts/cluster.sh (source it; the caller
# defines log()). Installs Debian packages only when missing, running apt-get update once.

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo "$@"; else echo "need root for: $*" >&2; exit 1; fi
  else "$@"; fi
}

apt_missing() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
  echo "${missing[@]:-}"
}

APT_UPDATED=0
apt_install() {
  local missing
  missing=$(apt_missing "$@")
  [ -z "$missing" ] && return 0
  if [ "$APT_UPDATED" -eq 0 ]; then log "apt-get update"; need_root apt-get update -q >/dev/null; APT_UPDATED=1; fi
  log "apt-get install $missing"
  # shellcheck disable=SC2086
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
}
