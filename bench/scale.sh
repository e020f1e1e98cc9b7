#!/usr/bin/env bash
# The scale table: Lifecycle against DuckDB and pandas at each size, CSV and Parquet, in one run.
#   bench/scale.sh [ROWS ...]          (default: 1000000 10000000 100000000)
# For each size it generates the orders once (cached in $LIFECYCLE_BENCH_DIR; about 10 orders per
# customer, so 10^8 rows are ~10^7 customers), then times, $RUNS times each (default 1), with
# wall time and peak memory from /usr/bin/time:
#   bare scan   bench/scan_duckdb.py: DuckDB reading the four columns and nothing else
#   duckdb      bench/rfm_duckdb.py: the per-customer RFM table
#   pandas      bench/rfm_pandas.py (CSV, up to 10^7 rows: beyond, it needs more memory than 24 GiB)
#   analyze     lifecycle analyze (RFM, segments, customers.csv, report)
#   analyze+clv lifecycle analyze --clv (+ BG/NBD and Gamma-Gamma fits, every customer's CLV)
#   lifetimes   bench/clv_lifetimes.py: Python lifetimes 0.11.3 reading the CSV, summary, BG/NBD
#               and Gamma-Gamma fits, every customer's CLV (CSV, up to 10^7 rows; run once: at
#               10^7 it takes minutes)
# and prints a markdown table with rows/s, peak memory and the ratios to DuckDB and to the bare
# scan, then where analyze --clv spends its time at each size (its --stats stages). The baselines
# come from PyPI into scratch venvs (bench/requirements.txt; lifetimes from
# bench/requirements-clv.txt, which needs CPython 3.8-3.11). Not part of CI: with 10^8 rows it
# takes about 20 minutes. LIFETIMES=0 leaves lifetimes out.
set -euo pipefail
SIZES=("$@")
[ ${#SIZES[@]} -eq 0 ] && SIZES=(1000000 10000000 100000000)
RUNS=${RUNS:-1}
cd "$(dirname "$0")/.."
DIR=${LIFECYCLE_BENCH_DIR:-/tmp/lifecycle-bench}
VENV=${LIFECYCLE_BENCH_VENV:-$DIR/venv}
mkdir -p "$DIR"
cargo build --release -q
BIN=${CARGO_TARGET_DIR:-target}/release/lifecycle
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r bench/requirements.txt
PY="$VENV/bin/python"

source bench/lib.sh
if [ "${LIFETIMES:-1}" != 0 ]; then LPY=$(lifetimes_python "$DIR/lifetimes-venv"); fi
PROFILE="$DIR/scale-profile.txt"; : > "$PROFILE"
echo "| rows | format | customers | job | time | rows/s | peak memory | vs DuckDB | vs bare scan |"
echo "|---|---|---|---|---|---|---|---|---|"
for rows in "${SIZES[@]}"; do
  for fmt in csv parquet; do
    file="$DIR/scale-$rows.$fmt"
    if [ ! -f "$file" ]; then
      "$BIN" generate --rows "$rows" --seed 8 --alpha 3 --b 6 --out "$file" 2> "$DIR/gen.txt"
      grep -o 'of [0-9]* customers' "$DIR/gen.txt" | grep -o '[0-9]*' > "$file.customers"
    fi
    customers=$(cat "$file.customers" 2>/dev/null || echo "?")
    cat "$file" > /dev/null  # the OS cache, once, before timing anything
    declare -A t m
    read -r _ t[scan] m[scan] < <(measure scan "$PY" bench/scan_duckdb.py "$file")
    read -r _ t[duckdb] m[duckdb] < <(measure duckdb "$PY" bench/rfm_duckdb.py "$file" "$DIR/duckdb.csv")
    jobs=(scan duckdb)
    if [ "$fmt" = csv ] && [ "$rows" -le 10000000 ]; then
      read -r _ t[pandas] m[pandas] < <(measure pandas "$PY" bench/rfm_pandas.py "$file" "$DIR/pandas.csv")
      jobs+=(pandas)
    fi
    read -r _ t[analyze] m[analyze] < <(measure analyze "$BIN" analyze "$file" --out "$DIR/scale-out")
    read -r _ t[clv] m[clv] < <(measure clv "$BIN" analyze "$file" --clv --out "$DIR/scale-out")
    jobs+=(analyze clv)
    if [ -n "${LPY:-}" ] && [ "$fmt" = csv ] && [ "$rows" -le 10000000 ]; then
      read -r _ t[lifetimes] m[lifetimes] < <(RUNS=1 measure lifetimes "$LPY" bench/clv_lifetimes.py "$file")
      jobs+=(lifetimes)
    fi
    { echo "$rows $fmt:"; "$BIN" analyze "$file" --clv --stats --out "$DIR/scale-out" 2>&1 >/dev/null | grep -E '^(stats|stages):'; } >> "$PROFILE"
    for j in "${jobs[@]}"; do
      name=$j; [ "$j" = scan ] && name="bare scan (DuckDB)"; [ "$j" = clv ] && name="analyze --clv"
      [ "$j" = lifetimes ] && name="lifetimes (summary, fits, CLV)"
      awk -v r="$rows" -v f="$fmt" -v c="$customers" -v n="$name" -v t="${t[$j]}" -v m="${m[$j]}" \
          -v d="${t[duckdb]}" -v s="${t[scan]}" \
        'BEGIN {printf "| %d | %s | %s | %s | %.2f s | %.2f M | %.0f MiB | %.2fx | %.1fx |\n", r, f, c, n, t, r/t/1e6, m/1024, t/d, t/s}'
    done
    unset t m
  done
done
echo
echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(date -u +%Y-%m-%d), median of $RUNS run(s)"
echo
echo "Where analyze --clv spends its time (seconds; read = parse and aggregate the file):"
cat "$PROFILE"
