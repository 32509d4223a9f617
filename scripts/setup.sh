#!/usr/bin/env bash
# Installs what the local stack needs, idempotently: a project-local Python venv with moto's
# server and cargo-lambda (from PyPI), PostgreSQL and MariaDB servers from Debian's packages
# when none is installed, and openssl. With --test-tools (scripts/test.sh) also cargo-fuzz and
# cargo-deny, which only the tests use. Every step is skipped when its result is already there.
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

stamp="$venv/.requirements.sha256"
want=$(sha256sum "$root/scripts/requirements.txt" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
  log "creating the project venv at .venv"
  python3 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing Python tools into .venv (moto server, cargo-lambda)"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/scripts/requirements.txt"
  echo "$want" > "$stamp"
fi
log "ready: $("$venv/bin/moto_server" --version 2>/dev/null | head -1 || true) cargo-lambda $("$venv/bin/cargo-lambda" lambda --version 2>/dev/null | awk '{print $2}')"
