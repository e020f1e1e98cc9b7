#!/usr/bin/env bash
# The full insights on about 10^7 order lines with attributes, spend and survey answers.
#   bench/insights_run.sh [CUSTOMERS]   (default 1,550,000 customers ≈ 10.3 M order lines)
# Builds the release binary, generates the shop once (cached in $LIFECYCLE_BENCH_DIR), then times,
# in the same run, `lifecycle analyze` alone (the baseline) and with every insight
# (--kpis --attributes --lines --spend --experience --clv), $RUNS times each; prints the median
# wall time, the peak memory and the stage times of the last run. Not part of CI.
set -euo pipefail
CUSTOMERS=${1:-1550000}
RUNS=${RUNS:-3}
cd "$(dirname "$0")/.."
DIR=${LIFECYCLE_BENCH_DIR:-/tmp/lifecycle-bench}/shop-$CUSTOMERS
cargo build --release -q
BIN=${CARGO_TARGET_DIR:-target}/release/lifecycle
if [ ! -f "$DIR/lines.csv" ]; then
  "$BIN" generate-shop --customers "$CUSTOMERS" --seed 7 --out "$DIR"
fi
echo "order lines: $(($(wc -l < "$DIR/lines.csv") - 1)), $(du -h "$DIR/lines.csv" | cut -f1)"
cat "$DIR"/*.csv > /dev/null
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() {
  local label=$1; shift
  local times=() last=""
  for _ in $(seq "$RUNS"); do
    last=$("$BIN" analyze "$DIR/lines.csv" --out "$DIR/out" --stats "$@" 2>&1 >/dev/null | grep -E '^(stats|stages):')
    times+=("$(echo "$last" | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p')")
  done
  printf '%-12s median %6.2f s  (%s)\n' "$label" "$(printf '%s\n' "${times[@]}" | median)" \
    "$(echo "$last" | sed -n 's/.*\(peak_rss_kib=[0-9]*\).*/\1/p')"
  echo "$last" | grep '^stages:' || true
}
run baseline
run insights --kpis --attributes "$DIR/attributes.csv" --lines "$DIR/lines.csv" \
  --spend "$DIR/spend.csv" --experience "$DIR/experience.csv" --clv
