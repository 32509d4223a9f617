#!/usr/bin/env bash
# Builds every Lambda function as Lambda deploys it: `cargo lambda build --release --arm64
# --output-format zip` (cross-compiled with zig from the project venv, for provided.al2023 on
# arm64), then prints each artifact's size and fails when one is missing or over Lambda's limits
# (50 MB zipped for a direct upload, 250 MB unzipped).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
functions=(rotate create-secret set-secret test-secret finish-secret compromise)
"$root/scripts/setup.sh"
export PATH="$root/.venv/bin:$PATH"
# The arm64 standard library, once (rustup skips it when installed).
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi
packages=()
for f in "${functions[@]}"; do packages+=(-p "$f"); done
started=$(date +%s)
cargo lambda build --release --arm64 --output-format zip "${packages[@]}"
echo "arm64 release build of ${#functions[@]} functions: $(( $(date +%s) - started )) s"
"$root/.venv/bin/python" - "$root/target/lambda" "${functions[@]}" <<'PY'
import os, sys, zipfile
base, names = sys.argv[1], sys.argv[2:]
print(f"{'function':<15} {'zip bytes':>11} {'zip MiB':>8} {'bootstrap MiB':>14}")
failed = False
for name in names:
    path = os.path.join(base, name, "bootstrap.zip")
    if not os.path.exists(path):
        print(f"{name:<15} missing: {path}")
        failed = True
        continue
    size = os.path.getsize(path)
    with zipfile.ZipFile(path) as z:
        unzipped = sum(i.file_size for i in z.infolist())
        entries = [i.filename for i in z.infolist()]
    print(f"{name:<15} {size:>11} {size / 2**20:>8.2f} {unzipped / 2**20:>14.2f}")
    if "bootstrap" not in entries or size > 50 * 10**6 or unzipped > 250 * 10**6:
        print(f"{name}: the artifact must hold `bootstrap` and fit Lambda's limits")
        failed = True
sys.exit(1 if failed else 0)
PY
