#!/usr/bin/env bash
# Benchmark `lifecycle analyze` against pandas and DuckDB on the same generated CSV, in one run.
#   bench/run.sh [ROWS]        (default 10,000,000 rows)
# Builds the release binary, generates the file once (cached in $LIFECYCLE_BENCH_DIR), installs
# the baselines into a scratch venv from PyPI, runs each tool $RUNS times and prints the median
# wall time, rows/s and peak memory, with ratios. Not part of CI.
set -euo pipefail
ROWS=${1:-10000000}
RUNS=${RUNS:-3}
cd "$(dirname "$0")/.."
DIR=${LIFECYCLE_BENCH_DIR:-/tmp/lifecycle-bench}
VENV=${LIFECYCLE_BENCH_VENV:-$DIR/venv}
mkdir -p "$DIR"

cargo build --release -q
BIN=${CARGO_TARGET_DIR:-target}/release/lifecycle
CSV="$DIR/orders-$ROWS.csv"
if [ ! -f "$CSV" ]; then
  "$BIN" generate --rows "$ROWS" --seed 42 --out "$CSV"
fi
BYTES=$(stat -c %s "$CSV")

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q -r bench/requirements.txt

# Drop the OS cache effect: read the file once before timing anything.
cat "$CSV" > /dev/null

source bench/lib.sh

"$BIN" bench --input "$CSV" --runs "$RUNS" --dir "$DIR"
{
  measure lifecycle "$BIN" analyze "$CSV" --out "$DIR/lifecycle-out"
  measure pandas "$VENV/bin/python" bench/rfm_pandas.py "$CSV" "$DIR/pandas.csv"
  measure duckdb "$VENV/bin/python" bench/rfm_duckdb.py "$CSV" "$DIR/duckdb.csv"
} > "$DIR/results.txt"

echo "input: $CSV ($ROWS rows, $BYTES bytes), $(nproc) cores, median of $RUNS runs"
awk -v rows="$ROWS" '
  NR==1 {base=$2}
  {printf "%-10s %8.2f s  %12.0f rows/s  peak %6.0f MiB  %5.2fx the time of lifecycle\n", $1, $2, rows/$2, $3/1024, $2/base}
' "$DIR/results.txt"
