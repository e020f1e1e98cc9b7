#!/usr/bin/env bash
# Checks the dependency graph against deny.toml: licences, bans, sources (cargo-deny).
# Installs cargo-deny (pinned, from crates.io, about 2 minutes on 2 cores) when it is missing.
# Advisories are left out: the RustSec database cannot be fetched on the build machines.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.20.2
if ! command -v cargo-deny > /dev/null || ! cargo-deny --version | grep -q " $VERSION\$"; then
  # Its own target folder, so that the project's build cache is left alone.
  CARGO_TARGET_DIR="${TMPDIR:-/tmp}/cargo-deny-build" cargo install cargo-deny --version "$VERSION" --locked --quiet
fi
cargo-deny check bans licenses sources
