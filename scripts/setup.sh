#!/usr/bin/env bash
# Installs what the local stack needs, idempotently: a project-local Python venv (.venv) with
# moto's server (scripts/requirements-stack.txt) and cargo-lambda
# (scripts/requirements-cargo-lambda.txt), PostgreSQL and MariaDB servers from Debian's packages
# when none is installed, and openssl. With --test-tools (scripts/test.sh,
# scripts/build-artifacts.sh) also what only the tests and the arm64 build use:
# scripts/requirements-test.txt (cfn-lint, checkov, zig), the SAM CLI into .venv-sam
# (scripts/requirements-sam.txt), cargo-fuzz and cargo-deny. Every step
# is skipped when its result is already there (a requirements file is installed again only when
# it changed since its last install).
#
#   scripts/setup.sh               what the local stack and the main job need
#   scripts/setup.sh --test-tools  that, and the tools of the test suite
set -euo pipefail
test_tools=false
case "${1:-}" in
  --test-tools) test_tools=true ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--test-tools]" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
log() { printf '[setup] %s\n' "$*" >&2; }

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    log "missing: $* (install them with your package manager, or run this script as root)"
    exit 1
  fi
  if [ -z "${ROTATION_APT_UPDATED:-}" ]; then
    apt-get update -qq >/dev/null
    export ROTATION_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  log "installing the PostgreSQL server (Debian package postgresql)"
  apt_install postgresql
fi
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
  log "installing the MariaDB server (Debian package mariadb-server)"
  apt_install mariadb-server
fi
command -v openssl >/dev/null 2>&1 || { log "installing openssl"; apt_install openssl; }
command -v python3 >/dev/null 2>&1 || { log "installing python3"; apt_install python3 python3-venv; }

# With --test-tools: cargo-fuzz (the fuzz targets in fuzz/) and cargo-deny (licenses, bans,
# sources), from crates.io into ~/.cargo/bin, when missing.
if $test_tools; then
  for tool in cargo-fuzz cargo-deny; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      log "installing $tool (cargo install --locked, a few minutes)"
      cargo install --locked --quiet "$tool"
    fi
  done
fi

if [ ! -x "$venv/bin/python" ]; then
  log "creating the project venv at .venv"
  python3 -m venv "$venv"
fi

# pip_install FILE [PIP OPTION...]: installs scripts/FILE into the venv, unless the stamp left by
# the last install of that file says it has not changed since.
pip_install() {
  local file="$root/scripts/$1" stamp="$venv/.installed-$1" want
  shift
  want=$(sha256sum "$file" | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  log "installing scripts/$(basename "$file") into .venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$@" -r "$file"
  echo "$want" > "$stamp"
}
pip_install requirements-stack.txt
# cargo-lambda's one Python dependency is zig, which only its cross-compiling build uses: the
# stack runs `cargo lambda watch` on this machine's binaries, and the arm64 build's zig comes
# with the test tools.
pip_install requirements-cargo-lambda.txt --no-deps
if $test_tools; then
  pip_install requirements-test.txt
  # The SAM CLI and translator (scripts/sam-check.sh) in a venv of their own: their boto3 and
  # packaging pins exclude checkov's.
  sam_venv="$root/.venv-sam"
  [ -x "$sam_venv/bin/python" ] || { log "creating the SAM venv at .venv-sam"; python3 -m venv "$sam_venv"; }
  sam_stamp="$sam_venv/.installed-requirements-sam.txt"
  sam_want=$(sha256sum "$root/scripts/requirements-sam.txt" | cut -d' ' -f1)
  if [ "$(cat "$sam_stamp" 2>/dev/null)" != "$sam_want" ]; then
    log "installing scripts/requirements-sam.txt into .venv-sam"
    "$sam_venv/bin/pip" install -q --disable-pip-version-check -r "$root/scripts/requirements-sam.txt"
    echo "$sam_want" > "$sam_stamp"
  fi
fi
log "ready: $("$venv/bin/python" -c 'import importlib.metadata as m; print("moto", m.version("moto"), "cargo-lambda", m.version("cargo-lambda"))')"
