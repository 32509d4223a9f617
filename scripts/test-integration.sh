#!/usr/bin/env bash
# The tests that need the local stack, against a running one: scripts/test.sh runs this under
# `scripts/stack.sh run`; by hand, `scripts/stack.sh run -- scripts/test-integration.sh`.
#
# `cargo test --workspace` runs every crate's tests in one build: the unit tier (what plain
# `cargo test` runs), the rotator's usage tests and the integration binary (tests/integration/),
# with their output kept in the stack's directory. scan-logs then searches every log of the run
# (the functions', the test output, PostgreSQL's statement log, MariaDB's general log) for
# every secret the run used, and for every secret still in Secrets Manager.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ROTATION_STACK_DIR:?not pointed at the local stack: run scripts/stack.sh run -- $0}"
test_log="$ROTATION_STACK_DIR/test-output.log"
cargo test --workspace -- --nocapture 2>&1 | tee "$test_log"
grep -o 'test result: [a-zA-Z]*\. [0-9]* passed; [0-9]* failed; [0-9]* ignored' "$test_log" |
  awk '{ binaries++; passed += $4; failed += $6; ignored += $8 }
       END { printf "cargo test --workspace: %d passed, %d failed, %d ignored (%d test binaries and doc-test runs)\n", passed, failed, ignored, binaries }'
echo "== secrets in the logs (functions at ${ROTATION_FUNCTION_LOG_LEVEL:-the level the stack was started with}, test output, database logs)"
cargo run --quiet -p test-support --bin scan-logs -- \
  "$ROTATION_LAMBDA_LOG" "$test_log" "$ROTATION_PG_LOG" "$ROTATION_MYSQL_LOG"
