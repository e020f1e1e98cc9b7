#!/usr/bin/env bash
# Installs Apache Spark (the PySpark wheel from PyPI ships Spark itself)
# into a scratch venv in DIR, cached between runs, and prints SPARK_HOME.
# Used by tests/summarize_sql.rs to run `lifecycle summarize --engine
# spark` in local mode; Spark needs Java 17 or later on the PATH. Never a
# dependency of Lifecycle.
set -euo pipefail
dir=$1
command -v java >/dev/null || { echo "spark.sh: no java on the PATH (Spark needs Java 17+)" >&2; exit 1; }
if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/python" -c 'import pyspark' 2>/dev/null; then
  python3 -m venv "$dir" >&2
  "$dir/bin/pip" install -q --disable-pip-version-check 'pyspark==4.3.0' >&2
fi
"$dir/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'
