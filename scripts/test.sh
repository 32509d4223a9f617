#!/usr/bin/env bash
# The whole test suite: formatting and lints, the template checks (cfn-lint, checkov), unit
# tests, the template test and the integration tests against the local stack (real PostgreSQL,
# moto's server, the functions under cargo lambda watch), then the arm64 release build of every
# function with its artifact size. Also: cargo deny (licenses, bans, sources), a search of
# every log of the run for the run's secrets (scan-logs), and a short fuzz run of every parser. Starts the stack when it is not running and stops what it
# started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
started=$(date +%s)
started_stack=false
# The suite's own tools (cargo-fuzz, cargo-deny) besides what the stack needs.
scripts/setup.sh --test-tools
# The functions log at TRACE for the whole suite; scan-logs then searches every log for every
# secret the run used.
export ROTATION_FUNCTION_LOG_LEVEL=${ROTATION_FUNCTION_LOG_LEVEL:-trace}
if ! scripts/stack.sh running 2>/dev/null; then
  started_stack=true
  trap 'scripts/stack.sh down' EXIT
fi
scripts/stack.sh up
# shellcheck disable=SC1090
source <(scripts/stack.sh env)
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cfn-lint infra/template.yaml"
.venv/bin/cfn-lint infra/template.yaml
echo "cfn-lint: no errors, no warnings"
echo "== checkov infra/template.yaml"
.venv/bin/checkov -f infra/template.yaml --framework cloudformation --compact --quiet --skip-download
echo "== cargo deny check licenses bans sources"
cargo deny check licenses bans sources
test_log="$ROTATION_STACK_DIR/test-output.log"
cargo test --workspace -- --nocapture 2>&1 | tee "$test_log"
echo "== secrets in the logs (functions at $ROTATION_FUNCTION_LOG_LEVEL, test output, database logs)"
cargo run --quiet -p test-support --bin scan-logs -- \
  "$ROTATION_LAMBDA_LOG" "$test_log" "$ROTATION_PG_LOG" "$ROTATION_MYSQL_LOG"
if $started_stack; then
  # The release build needs the cores more than the stack does.
  scripts/stack.sh down
  trap - EXIT
fi
echo "== fuzzing (scripts/fuzz.sh, ${FUZZ_SECONDS:-25} s per target)"
scripts/fuzz.sh
echo "== arm64 release artifacts"
scripts/build-artifacts.sh
echo "scripts/test.sh wall time: $(( $(date +%s) - started )) s"
