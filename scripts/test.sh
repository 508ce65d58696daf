#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian 12 machine: installs the real programs the
# tests drive (Nix evaluator, openssl, nftables, chromium, ...) when they are missing, then runs
# the Rust test suite. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package providing it
declare -A NEEDS=(
  [nix-instantiate]=nix-bin
  [openssl]=openssl
  [nft]=nftables
  [shellcheck]=shellcheck
  [chromium]=chromium
  [dhcpd]=isc-dhcp-server
  [kea-dhcp4]=kea-dhcp4-server
  [dnsmasq]=dnsmasq
  [named-checkzone]=bind9-utils
)

missing=()
for cmd in "${!NEEDS[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    missing+=("${NEEDS[$cmd]}")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  if [ ! -f /tmp/.plasmacloud-apt-updated ]; then
    $SUDO apt-get update -qq
    touch /tmp/.plasmacloud-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian packages start their daemons; the tests run their own copies.
  for svc in isc-dhcp-server kea-dhcp4-server dnsmasq; do
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
fi

export PATH="$PATH:/usr/sbin:/sbin"
cargo test --workspace --locked "$@"
