#!/usr/bin/env bash
# The soak's event writes alone, SQLite (as the store keeps them) against an
# LSM tree (fjall): events/s, bytes written and CPU per event for EVENTS
# events (default 12,000,000, the 10-minute soak's volume) over 20,000
# customers, group commits of 1,000, each durable. A measurement for the
# storage decision, not part of Lifecycle or CI (`bench/events-store/` is its
# own workspace; fjall is not a dependency of the product).
#
#   bench/events_store.sh [EVENTS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
events=${1:-12000000}
work=${BENCH_DIR:-/tmp/lifecycle-bench}/events-store
target=${CARGO_TARGET_DIR:-$work/target}
cargo build --release -q --manifest-path "$root/bench/events-store/Cargo.toml" --target-dir "$target"
for store in sqlite fjall; do
  rm -rf "$work/$store"
  "$target/release/events-store-bench" "$store" "$work/$store" "$events"
  echo "$store on disk: $(du -sh "$work/$store" | cut -f1)"
  rm -rf "$work/$store"
done
