#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) with libFuzzer through cargo-fuzz, each for
# $SECONDS_PER_TARGET seconds (default 600), starting from the committed corpus.
#   scripts/fuzz.sh [TARGET ...]
# Only the stable toolchain exists here: RUSTC_BOOTSTRAP=1 lets it take cargo-fuzz's nightly flags.
# cargo-fuzz is installed (pinned, from crates.io) when missing. Each target starts from the
# committed seeds (fuzz/corpus/<target>/) and grows a working corpus in fuzz/work/<target>/ (not
# committed, kept between runs); a crash leaves its reproducer in fuzz/artifacts/<target>/, which
# `cargo test` replays (crates/cli/tests/fuzz_corpus.rs) once committed with its fix. Prints, per
# target, the runs, the working corpus size and whether it crashed. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-600}
VERSION=0.13.1
export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz > /dev/null; then
  CARGO_TARGET_DIR="${TMPDIR:-/tmp}/cargo-fuzz-build" cargo install cargo-fuzz --version "$VERSION" --locked --quiet
fi
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(orders segment_api moment segment_rules template)
cd fuzz
status=0
summary=()
for t in "${TARGETS[@]}"; do
  log=$(mktemp)
  # One job, no ASan (the code is safe Rust; ASan would need a sanitised std): libFuzzer's
  # coverage guidance, its timeout (10 s an input) and memory limit (2 GB) still apply.
  mkdir -p "work/$t"
  if cargo fuzz run "$t" --sanitizer none --release "work/$t" "corpus/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      > "$log" 2>&1; then
    result=ok
  else
    result="CRASH (see fuzz/artifacts/$t/)"
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  summary+=("$(printf '%-14s %-10s runs %-12s working corpus %s files' "$t" "$result" "${runs:-?}" "$(ls "work/$t" | wc -l)")")
  tail -n 5 "$log"
done
printf '%s\n' "${summary[@]}"
exit $status
