#!/usr/bin/env bash
# The whole test suite, the one test command (what .ci/run calls). In order:
#
#   1. checks that need no stack: cargo fmt, clippy with -D warnings (a missing doc comment
#      included: [workspace.lints] in Cargo.toml), rustdoc with -D warnings (broken intra-doc
#      links), rust-version against the locked dependencies (scripts/workspace.py), cfn-lint,
#      sam validate --lint, cfn-lint on the SAM translator's plain CloudFormation
#      (scripts/sam-check.sh) and checkov on the SAM template, cargo deny (licenses, bans,
#      sources);
#   2. scripts/test-integration.sh against the local stack, with the functions logging at TRACE:
#      every crate's tests (the unit tier, the rotator's usage tests, the integration binary) and
#      a search of every log of the run for the run's secrets (scan-logs). The stack is started
#      when it is not running and stopped afterwards if this run started it;
#   3. a short fuzz run of every parser (scripts/fuzz.sh);
#   4. the arm64 release build of every function with its artifact size
#      (scripts/build-artifacts.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
started=$(date +%s)
section() { echo "== $* (at $(( $(date +%s) - started )) s)"; }
# The suite's own tools (cfn-lint, checkov, zig, cargo-fuzz, cargo-deny) besides the stack's.
scripts/setup.sh --test-tools
section "cargo fmt --all --check"
cargo fmt --all --check
section "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
section "cargo doc --workspace --document-private-items (rustdoc warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --document-private-items --quiet
section "rust-version against the locked dependencies"
scripts/workspace.py check-rust-version
section "cfn-lint infra/template.yaml"
.venv/bin/cfn-lint infra/template.yaml
echo "cfn-lint: no errors, no warnings"
section "sam validate --lint, and cfn-lint on the SAM translator's output (scripts/sam-check.sh)"
scripts/sam-check.sh
section "checkov infra/template.yaml"
.venv/bin/checkov -f infra/template.yaml --framework cloudformation --compact --quiet --skip-download
section "cargo deny check licenses bans sources"
cargo deny check licenses bans sources
section "tests against the local stack (scripts/test-integration.sh)"
# The functions log at TRACE for the whole suite; scan-logs then searches every log for every
# secret the run used. (A stack that already runs keeps the level it was started with.)
export ROTATION_FUNCTION_LOG_LEVEL=${ROTATION_FUNCTION_LOG_LEVEL:-trace}
# The stack stops when the tests end: the fuzz run and the release build need the cores more.
scripts/stack.sh run -- scripts/test-integration.sh
section "fuzzing (scripts/fuzz.sh, ${FUZZ_SECONDS:-25} s per target)"
scripts/fuzz.sh
section "arm64 release artifacts (scripts/build-artifacts.sh)"
scripts/build-artifacts.sh
echo "scripts/test.sh wall time: $(( $(date +%s) - started )) s"
