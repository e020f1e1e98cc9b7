#!/usr/bin/env bash
# Installs Segment's own client libraries into DIR (cached between runs):
# a Python venv with segment-analytics-python from PyPI and node_modules
# with @segment/analytics-node from npm. Used by tests/segment_clients.rs.
set -euo pipefail
dir=$1
mkdir -p "$dir"
if ! "$dir/venv/bin/python" -c 'import segment.analytics' 2>/dev/null; then
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check 'segment-analytics-python==2.4.0'
fi
if [ ! -d "$dir/node_modules/@segment/analytics-node" ]; then
  (cd "$dir" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund '@segment/analytics-node@3.1.0')
fi
