#!/usr/bin/env bash
# Prints the path of a headless-capable Chromium for the dashboard tests,
# installing Debian's `chromium` and `chromium-driver` first when missing (as
# root, with apt-get). Run it as root in a container: Chromium then needs
# --no-sandbox, which the tests pass.
#
#   scripts/chromium.sh            # prints e.g. /usr/bin/chromium
set -euo pipefail
find_bin() { command -v chromium || command -v chromium-browser || true; }
bin=$(find_bin)
if [ -z "$bin" ] || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq chromium chromium-driver >/dev/null; }
    bin=$(find_bin)
  else
    echo "chromium.sh: Chromium is not installed and cannot be installed here (needs root and apt-get)" >&2
    exit 1
  fi
fi
[ -n "$bin" ] || { echo "chromium.sh: the installation left no chromium binary" >&2; exit 1; }
echo "$bin"
