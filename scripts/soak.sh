#!/usr/bin/env bash
# The soak: `lifecycle bench-serve --soak` for 10 minutes (SOAK_SECONDS) on loopback at the engine's
# benchmark target, 20,000 events/s durable through /v1/batch (SOAK_RATE) while reading customer
# views at 1,000 requests/s, on a fresh SQLite store (SOAK_DB=postgres://... for PostgreSQL, with a
# rate it can take, e.g. SOAK_RATE=1500). Samples the server's memory and both latencies every
# second and prints the table with the verdicts: memory flat after the warm-up (within 10%), view
# p99 under 5 ms, the rate kept. Release build; not part of CI. The store grows by ~0.3 KB an event
# (about 4 GB for the default run), in $SOAK_DIR (default /tmp/lifecycle-soak), removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
DIR=${SOAK_DIR:-/tmp/lifecycle-soak}
mkdir -p "$DIR"
args=(bench-serve --soak "${SOAK_SECONDS:-600}" --rate "${SOAK_RATE:-20000}" --reads-per-second 1000
      --clients 4 --customers 20000 --dir "$DIR")
[ -n "${SOAK_DB:-}" ] && args+=(--db "$SOAK_DB")
echo "$(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), ${CARGO_TARGET_DIR:-target}/release/lifecycle ${args[*]}"
status=0
"${CARGO_TARGET_DIR:-target}/release/lifecycle" "${args[@]}" || status=$?
rm -rf "$DIR"
exit $status
