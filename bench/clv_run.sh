#!/usr/bin/env bash
# Benchmark the end-to-end CLV pipeline of `lifecycle predict --model bgnbd` against Python
# `lifetimes` 0.11.3 (read CSV, weekly summary, BG/NBD fit, Gamma-Gamma fit, 12-month CLV of every
# customer: bench/clv_lifetimes.py) on the same generated CSV, then the BG/NBD fit alone on the
# CDNOW sample. A tool that fails at a size is shown as failed, with its error, and the rest goes on.
#   bench/clv_run.sh [ROWS...]      (default: 1000000 10000000)
# Builds the release binary, generates each file once (cached in $LIFECYCLE_BENCH_DIR as
# orders-$ROWS.csv, shared with bench/run.sh), installs lifetimes into a scratch venv from PyPI,
# and prints, per size, the median wall time and peak memory of each tool, the ratio, lifetimes'
# median time per step, and both tools' fitted parameters. Not part of CI.
# Environment:
#   RUNS            lifecycle runs per size (default 3)
#   LIFETIMES_RUNS  lifetimes runs per size (default 3 below 10^7 rows, 1 from 10^7: it is slow)
#   LIFETIMES_PYTHON  the Python for the venv; the pinned wheels need CPython 3.8-3.11
#                     (default: the first of python3.11, python3.10, python3.9, python3.8, python3
#                     that is one)
#   LIFETIMES_VENV  the venv (default $LIFECYCLE_BENCH_DIR/lifetimes-venv)
#   SKIP_BUILD=1    use an existing binary: BIN=path/to/lifecycle (default target/release/lifecycle)
#   CDNOW=0         skip the CDNOW fit comparison
set -euo pipefail
if [ $# -gt 0 ]; then SIZES=("$@"); else SIZES=(1000000 10000000); fi
RUNS=${RUNS:-3}
cd "$(dirname "$0")/.."
DIR=${LIFECYCLE_BENCH_DIR:-/tmp/lifecycle-bench}
VENV=${LIFETIMES_VENV:-$DIR/lifetimes-venv}
mkdir -p "$DIR"

if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -q
fi
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/lifecycle}
[ -x "$BIN" ] || { echo "no lifecycle binary at $BIN" >&2; exit 1; }

source bench/lib.sh  # median, lifetimes_python (its own measure below writes one line per run)
PY=$(lifetimes_python "$VENV")

measure() { # runs, prefix, command...: one "seconds max_rss_kib" line per run in $prefix.times,
  # the stdout of run i in $prefix.$i.out; on a failure prints its stderr and returns 1
  local runs=$1 prefix=$2; shift 2
  : > "$prefix.times"
  for i in $(seq "$runs"); do
    if ! /usr/bin/time -f "%e %M" -o "$DIR/time.txt" "$@" > "$prefix.$i.out" 2> "$DIR/err.txt"; then
      echo "failed: $*" >&2; cat "$DIR/err.txt" >&2; : > "$prefix.times"; return 1
    fi
    cat "$DIR/time.txt" >> "$prefix.times"
  done
}

# Lifecycle's annual --discount-rate for lifetimes' 1% a month: (1.01)^12 - 1. Both then
# discount month k of the 12 by 1.01^k (lifetimes' month is 4.345 weeks, Lifecycle's 365.25/12
# days; its 12th month ends at the 52-week horizon).
ANNUAL=0.126825
for ROWS in "${SIZES[@]}"; do
  CSV="$DIR/orders-$ROWS.csv"
  if [ ! -f "$CSV" ]; then
    "$BIN" generate --rows "$ROWS" --seed 42 --out "$CSV"
  fi
  LRUNS=${LIFETIMES_RUNS:-$([ "$ROWS" -ge 10000000 ] && echo 1 || echo 3)}
  # Drop the OS cache effect: read the file once before timing anything.
  cat "$CSV" > /dev/null
  P="$DIR/clv-$ROWS"
  rm -f "$P".*
  measure "$RUNS" "$P.lifecycle" "$BIN" predict "$CSV" --model bgnbd --time-unit week \
    --horizon 52w --discount-rate "$ANNUAL" --out "$DIR/clv-lifecycle-out" || true
  measure "$LRUNS" "$P.lifetimes" "$PY" bench/clv_lifetimes.py "$CSV" || true
  # Untimed: Lifecycle's parameters on the same file, to set beside lifetimes'.
  "$BIN" fit "$CSV" --model bgnbd --time-unit week --json > "$P.fit-bgnbd.json" 2> /dev/null || true
  "$BIN" fit "$CSV" --model gamma-gamma --time-unit week --json > "$P.fit-gg.json" 2> /dev/null || true
done

if [ "${CDNOW:-1}" != 0 ]; then
  # Lifecycle: the whole process (read the orders file or the summary, fit), median of 5 by the
  # shell's clock; lifetimes: the fit alone on its own CDNOW summary, median of 5 in-process.
  wall5() { # file, command...: five wall times, one a line
    : > "$1"; local f=$1; shift
    for _ in 1 2 3 4 5; do
      local t0=$EPOCHREALTIME
      "$@" > "$DIR/cdnow-out.json" 2> "$DIR/err.txt" || { cat "$DIR/err.txt" >&2; exit 1; }
      awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.6f\n", b - a}' >> "$f"
    done
  }
  wall5 "$DIR/cdnow-lifecycle-orders.times" "$BIN" fit data/CDNOW_sample.txt --model bgnbd \
    --calibration-end 1997-09-30 --time-unit week --json
  cp "$DIR/cdnow-out.json" "$DIR/cdnow-lifecycle-orders.json"
  wall5 "$DIR/cdnow-lifecycle-summary.times" "$BIN" fit data/cdnow_customers_summary.csv \
    --model bgnbd --time-unit week --json
  cp "$DIR/cdnow-out.json" "$DIR/cdnow-lifecycle-summary.json"
  "$PY" bench/clv_lifetimes.py --cdnow --runs 5 > "$DIR/cdnow-lifetimes.json"
fi

echo "lifecycle: $BIN; lifetimes: $("$PY" --version 2>&1), $(nproc) cores"
"$PY" - "$DIR" "$RUNS" "${CDNOW:-1}" "${SIZES[@]}" <<'EOF'
import json, os, re, statistics, sys

d, runs, cdnow, sizes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def timed(prefix):  # [(seconds, kib)] of the runs that completed, [] on a failure
    try:
        with open(prefix + ".times") as f:
            return [(float(a), int(b)) for a, b in (l.split() for l in f if l.strip())]
    except OSError:
        return []


ORDER = ["r", "alpha", "a", "b", "p", "q", "gamma", "v"]


def fmt(p):
    return " ".join(f"{k}={p[k]:.4g}" for k in sorted(p, key=ORDER.index))


STEPS = ["read_csv", "summary", "fit_bgnbd", "fit_gamma_gamma", "clv"]
print(f"\n{'rows':>10} {'customers':>10} {'tool':<10} {'wall s':>8} {'peak MiB':>9} "
      f"{'vs lc':>6}   lifetimes steps (median s): import " + " ".join(STEPS))
for rows in sizes:
    p = f"{d}/clv-{rows}"
    lc, lt = timed(p + ".lifecycle"), timed(p + ".lifetimes")
    base = statistics.median(t for t, _ in lc) if lc else None
    customers = "?"
    if lc:
        with open(p + ".lifecycle.1.out") as f:
            m = re.search(r"^(\d+) customers", f.read(), re.M)
            customers = m.group(1) if m else "?"
    print(f"{rows:>10} {customers:>10} {'lifecycle':<10} " + (
        f"{base:8.2f} {max(k for _, k in lc) / 1024:9.0f} {1:6.2f}" if lc else "  failed"))
    js = [load(f"{p}.lifetimes.{i}.out") for i in range(1, len(lt) + 1)]
    js = [j for j in js if j]
    if lt and js:
        wall = statistics.median(t for t, _ in lt)
        steps = " ".join(f"{statistics.median(j['steps'][s] for j in js):.2f}" for s in STEPS)
        imp = statistics.median(j["import"] for j in js)
        ratio = f"{wall / base:6.2f}" if base else "     -"
        print(f"{rows:>10} {js[0]['customers']:>10} {'lifetimes':<10} {wall:8.2f} "
              f"{max(k for _, k in lt) / 1024:9.0f} {ratio}   {imp:.2f} {steps}"
              f"   (median of {len(lt)})")
    else:
        print(f"{rows:>10} {'?':>10} {'lifetimes':<10}   failed")
    fb, fg = load(p + ".fit-bgnbd.json"), load(p + ".fit-gg.json")
    if fb:
        print(f"{'':>10} lifecycle (purchase days, days/7): {fb['n_customers']:.0f} customers, {fb['distinct_rows']} distinct rows; "
              f"BG/NBD {fmt(fb['params'])}"
              + (f"; Gamma-Gamma {fmt(fg['params'])} ({fg['n_customers']:.0f} repeat buyers)"
                 if fg else ""))
    else:
        print(f"{'':>10} lifecycle fit --model bgnbd --time-unit week: failed")
    if js:
        j = js[0]
        print(f"{'':>10} lifetimes (freq='W', calendar weeks): {j['customers']} customers, "
              f"{j['distinct_rows']} distinct rows (collapse {j['collapse_ratio']:.2f}); "
              f"BG/NBD {fmt(j['params']['bgnbd'])}; Gamma-Gamma {fmt(j['params']['gamma_gamma'])} "
              f"({j['repeat_buyers']} repeat buyers)")
print(f"lifecycle: median of {runs} runs (predict, writes predictions.csv); lifetimes steps are "
      "its own perf_counter times, wall and peak are the whole process (/usr/bin/time)")

if cdnow != "0":
    print("\nBG/NBD fit on the CDNOW sample (2,357 customers, weeks, calibration end 1997-09-30)")
    for name, what in [("orders", "whole process, orders file data/CDNOW_sample.txt"),
                       ("summary", "whole process, summary data/cdnow_customers_summary.csv")]:
        with open(f"{d}/cdnow-lifecycle-{name}.times") as f:
            t = statistics.median(float(l) for l in f if l.strip())
        j = load(f"{d}/cdnow-lifecycle-{name}.json")
        print(f"  lifecycle  {t * 1000:8.1f} ms  ({what}, median of 5)  "
              f"{fmt(j['params'])} LL={j['log_likelihood']:.3f}")
    j = load(f"{d}/cdnow-lifetimes.json")
    print(f"  lifetimes  {j['fit_median'] * 1000:8.1f} ms  (BetaGeoFitter.fit alone on "
          f"load_cdnow_summary, median of 5; import {j['import']:.2f} s)  "
          f"{fmt(j['params']['bgnbd'])} LL={j['log_likelihood_bgnbd']:.3f}")
EOF
