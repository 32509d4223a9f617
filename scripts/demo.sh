#!/usr/bin/env bash
# The main job: a full local rotation. Installs what is missing, starts the local stack (moto,
# private PostgreSQL and MariaDB servers, cargo lambda watch serving the functions), rotates
# PostgreSQL secrets through the real Lambda binaries, shows every step and proves the result,
# then stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
scripts/stack.sh run -- cargo run --quiet -p demo --bin local-rotation -- demo
echo "main job wall time: $(( $(date +%s) - started )) s"
