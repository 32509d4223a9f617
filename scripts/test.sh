#!/usr/bin/env bash
# The whole test suite: formatting and lints, unit tests, and the integration tests against the
# local stack (real PostgreSQL, moto's server, the functions under cargo lambda watch). Starts
# the stack when it is not running and stops what it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if ! scripts/stack.sh running 2>/dev/null; then
  trap 'scripts/stack.sh down' EXIT
fi
scripts/stack.sh up
# shellcheck disable=SC1090
source <(scripts/stack.sh env)
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
