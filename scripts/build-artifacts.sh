#!/usr/bin/env bash
# Builds every Lambda function (the workspace members under functions/) as Lambda deploys it:
# `cargo lambda build --release --arm64 --output-format zip` (cross-compiled with zig from the
# project venv, for provided.al2023 on arm64), then prints each artifact's size and fails when
# one is missing or over Lambda's limits (50 MB zipped for a direct upload, 250 MB unzipped).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# zig comes with the test tools.
scripts/setup.sh --test-tools
export PATH="$root/.venv/bin:$PATH"
# The arm64 standard library, once (rustup skips it when installed).
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi
mapfile -t functions < <(scripts/workspace.py functions)
packages=()
for f in "${functions[@]}"; do packages+=(-p "$f"); done
started=$(date +%s)
cargo lambda build --release --arm64 --output-format zip "${packages[@]}"
echo "arm64 release build of ${#functions[@]} functions: $(( $(date +%s) - started )) s"
python3 - target/lambda "${functions[@]}" <<'PY'
import os, sys, zipfile
base, names = sys.argv[1], sys.argv[2:]
print(f"{'function':<15} {'zip bytes':>11} {'zip MiB':>8} {'bootstrap MiB':>14}")
failed = []
for name in names:
    path = os.path.join(base, name, "bootstrap.zip")
    if not os.path.exists(path):
        failed.append(f"{name}: missing {path}")
        continue
    zipped = os.path.getsize(path)
    with zipfile.ZipFile(path) as z:
        entries = {i.filename: i.file_size for i in z.infolist()}
    unzipped = sum(entries.values())
    print(f"{name:<15} {zipped:>11} {zipped / 2**20:>8.2f} {unzipped / 2**20:>14.2f}")
    if "bootstrap" not in entries or zipped > 50 * 10**6 or unzipped > 250 * 10**6:
        failed.append(f"{name}: the artifact must hold `bootstrap` and fit Lambda's limits")
sys.exit("\n".join(failed) or None)
PY
