#!/usr/bin/env bash
# The benchmark: cold start, peak memory, warm rotation time against the floor, Secrets Manager
# calls counted on the wire, zipped arm64 artifact size and fleet throughput, for the release
# binaries on the local stack. Prints markdown tables and writes target/bench/results.json.
#
#   scripts/bench.sh [bench options]     e.g. --rotations 50 --fleet 500 --concurrency 1,8,32
#
# BENCH_SKIP_ARTIFACTS=1 skips the arm64 build (scripts/build-artifacts.sh, slow on 2 cores) and
# reports the zips already in target/lambda, if any.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
started=$(date +%s)
mapfile -t functions < <(scripts/workspace.py functions)
packages=()
for f in "${functions[@]}"; do packages+=(-p "$f"); done
# The host's release binaries of the functions (the bench starts them itself) and the bench,
# in one cargo invocation: cargo unifies dependency features over its packages, and built
# separately the functions and the bench would each compile the dependencies once more.
# Built before the stack starts, which needs none of them.
cargo build --release --quiet --bins "${packages[@]}" -p bench
if [ -z "${BENCH_SKIP_ARTIFACTS:-}" ]; then
  scripts/build-artifacts.sh
fi
scripts/stack.sh run -- target/release/bench --cargo-lambda "$root/.venv/bin/cargo-lambda" "$@"
echo "benchmark wall time: $(( $(date +%s) - started )) s"
