#!/usr/bin/env bash
# The main job: a full local rotation. Installs what is missing, starts the local stack (moto,
# a private PostgreSQL, cargo lambda watch), rotates PostgreSQL secrets through the real Lambda
# binaries, shows every step and proves the result, then stops what it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
started=$(date +%s)
if ! scripts/stack.sh running 2>/dev/null; then
  trap 'scripts/stack.sh down' EXIT
fi
scripts/stack.sh up
# shellcheck disable=SC1090
source <(scripts/stack.sh env)
cargo run --quiet -p demo --bin local-rotation -- demo
echo "main job wall time: $(( $(date +%s) - started )) s"
