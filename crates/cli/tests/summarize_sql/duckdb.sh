#!/usr/bin/env bash
# Installs DuckDB (from PyPI) into a scratch venv in DIR, cached between
# runs, and prints its Python. Used by tests/summarize_sql.rs to run the
# SQL that `lifecycle summarize --emit-sql duckdb` prints; never a
# dependency of Lifecycle.
set -euo pipefail
dir=$1
if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/python" -c 'import duckdb' 2>/dev/null; then
  python3 -m venv "$dir" >&2
  "$dir/bin/pip" install -q --disable-pip-version-check 'duckdb==2.0.0' >&2
fi
echo "$dir/bin/python"
