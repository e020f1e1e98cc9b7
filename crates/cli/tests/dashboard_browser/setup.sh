#!/usr/bin/env bash
# Installs axe-core (the accessibility checker, from npm) into DIR, cached
# between runs. Used by tests/dashboard_browser.rs.
set -euo pipefail
dir=$1
mkdir -p "$dir"
if [ ! -f "$dir/node_modules/axe-core/axe.min.js" ]; then
  (cd "$dir" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund 'axe-core@4.10.3')
fi
echo "$dir/node_modules/axe-core/axe.min.js"
