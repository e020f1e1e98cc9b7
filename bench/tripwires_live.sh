#!/usr/bin/env bash
# The live absence check at scale: N customers (default 10^6) imported into a
# fresh SQLite store, `serve` (release) on a simulated clock, then the clock
# moved a day at a time; prints, per day, the deadlines that were due (the
# work of the pass) and how long the pass took, and the total pending.
#
#   bench/tripwires_live.sh [CUSTOMERS] [DAYS]
#
# Needs curl and sqlite3. Not part of CI (minutes at 10^6 customers).
set -euo pipefail
customers=${1:-1000000}
days=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
work=${BENCH_DIR:-/tmp/lifecycle-bench}/tripwires-live
mkdir -p "$work"
cd "$root"
cargo build --release -q
bin=$root/target/release/lifecycle
orders=$work/orders-$customers.csv
[ -f "$orders" ] || "$bin" generate --customers "$customers" --seed 11 --start 2023-01-01 --days 365 --out "$orders" >/dev/null 2>&1
rm -f "$work"/live.db*
db="sqlite://$work/live.db"
/usr/bin/time -f "import: %e s" "$bin" import "$orders" --db "$db" >/dev/null
key=$("$bin" keys create --kind secret --db "$db" 2>/dev/null)
printf '[engine]\nrhythm_threshold = 0.8\n' > "$work/lifecycle.toml"
start=$(date +%s.%N)
"$bin" serve --db "$db" --listen 127.0.0.1:0 --simulated-clock 2024-01-01 --refit-every off \
  --config "$work/lifecycle.toml" > "$work/serve.out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
until grep -q listening "$work/serve.out"; do sleep 0.2; done
addr=$(sed -n 's/listening on //p' "$work/serve.out")
echo "serve ready (first model run, $customers customers re-scored) in $(echo "$(date +%s.%N) - $start" | bc) s"
pending=$(sqlite3 "$work/live.db" "SELECT COUNT(*) FROM profiles WHERE due_day IS NOT NULL")
echo "pending deadlines: $pending"
printf '%-5s %10s %10s %12s\n' day due examined seconds
today=19723
for d in $(seq 1 "$days"); do
  today=$((today + 1))
  due=$(sqlite3 "$work/live.db" "SELECT COUNT(*) FROM profiles WHERE due_day IS NOT NULL AND due_day <= $today")
  out=$(curl -s -w ' %{time_total}' -H "Authorization: Bearer $key" -d '{"advance_days": 1}' "$addr/api/v1/admin/clock")
  examined=$(echo "$out" | sed 's/.*"rescored":\([0-9]*\).*/\1/')
  secs=$(echo "$out" | awk '{print $NF}')
  printf '%-5s %10s %10s %12s\n' "$d" "$due" "$examined" "$secs"
done
# A pass with nothing due costs the index look-up only, however many pending.
out=$(curl -s -w ' %{time_total}' -H "Authorization: Bearer $key" -d '{"advance_seconds": 1}' "$addr/api/v1/admin/clock")
echo "a pass with nothing due: $(echo "$out" | awk '{print $NF}') s ($(echo "$out" | sed 's/.*"rescored":\([0-9]*\).*/\1/') examined)"
