#!/usr/bin/env bash
# Power-on -> first discovery report at the collector, for a legacy BIOS and a UEFI netboot in
# the PXE lab of tests/tests/e2e_pxe.rs (QEMU with TCG, generated dhcpd.conf, TFTP, iPXE, HTTP,
# plasmagen collector). Needs root and the packages listed in docs/e2e.md.
#   bench/pxe.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1}"
export PATH="$PATH:/usr/sbin:/sbin"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

cargo build -q -p plasma-tests --tests
for i in $(seq "$runs"); do
  # Only the BIOS and UEFI boots of node01 (the test stops after them).
  if ! PLASMA_E2E_BENCH_ONLY=1 cargo test -q -p plasma-tests --test e2e_pxe -- --nocapture >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "bench/pxe.sh: run $i failed (serial consoles and server logs: target/e2e/)" >&2
    exit 1
  fi
  grep -E '^e2e: (BIOS|UEFI) power-on' "$log" | sed "s/^e2e: /run $i: /"
done
