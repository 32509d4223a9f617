#!/usr/bin/env bash
# Fuzzes every parser of untrusted input with cargo fuzz (libFuzzer): the rotation event, each
# provider's secret JSON, the keyring's formats, the compromise request and the `SHOW GRANTS`
# lines MySQL grant mirroring reads (fuzz/fuzz_targets).
# A target fails on a panic, on an input that takes more than FUZZ_RSS_MB of memory or a single
# allocation above it (unbounded allocation), or on a run slower than 10 s. Prints the
# executions each target ran.
#
#   scripts/fuzz.sh                 every target for FUZZ_SECONDS (default 25) seconds
#   FUZZ_SECONDS=3600 FUZZ_BUILD=--release scripts/fuzz.sh rotation_event
#                                   one target for an hour, optimized (more executions per second)
#
# The short run builds without optimizations (FUZZ_BUILD=--dev, the default): the instrumented
# build holds the AWS SDK, and optimizing it costs more minutes than the run itself; debug
# assertions stay on as a bonus.
#
# Runs on the stable toolchain: with `-s none` (no sanitizer) cargo fuzz passes only stable
# rustc flags (-Cpasses=sancov-module, -Cllvm-args=..., --cfg fuzzing); AddressSanitizer would
# need nightly.
# New inputs go to fuzz/corpus/<target> (git-ignored), crashes to fuzz/artifacts/<target>.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
seconds=${FUZZ_SECONDS:-25}
rss_mb=${FUZZ_RSS_MB:-1024}
build=${FUZZ_BUILD:---dev}
command -v cargo-fuzz >/dev/null 2>&1 || { echo "cargo-fuzz is missing: run scripts/setup.sh --test-tools" >&2; exit 1; }
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
cargo fuzz build "$build" -s none
total=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log=$(mktemp)
  if ! cargo fuzz run "$build" -s none "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" \
      -max_len=65536 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target FAILED (input in fuzz/artifacts/$target)" >&2
    rm -f "$log"
    exit 1
  fi
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -n 1)
  corpus=$(find "corpus/$target" -type f | wc -l)
  rm -f "$log"
  echo "fuzz: $target: ${execs:-?} executions in ${seconds} s, no crash, corpus ${corpus} inputs"
  total=$((total + ${execs:-0}))
done
echo "fuzz: ${#targets[@]} targets, $total executions"
