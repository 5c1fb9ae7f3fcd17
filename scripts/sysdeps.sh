#!/usr/bin/env bash
# Install the few Debian packages fiumatch needs beyond Python, only when they are missing.
#   scripts/sysdeps.sh           ICU headers + pkg-config (pyicu compiles against system ICU)
#   scripts/sysdeps.sh --browser the above, plus Debian's Chromium for the browser tests
# libsodium (libsodium23) is on Debian's base images; it is checked, and installed if absent.
set -euo pipefail
need=()
pkg-config --version >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists icu-uc 2>/dev/null || need+=(libicu-dev)
ldconfig -p 2>/dev/null | grep -q 'libsodium\.so' || need+=(libsodium23)
if [ "${1:-}" = "--browser" ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "fiumatch: installing system packages: ${need[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
elif command -v sudo >/dev/null 2>&1; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "fiumatch: please install these Debian packages first: apt-get install ${need[*]}" >&2
  exit 1
fi
