#!/usr/bin/env bash
# Three QEMU VMs behind IPMI emulators, from power-on to "installed" in the collector and their
# own disks booted: `plasmagen provision OUT --bootstrap` in the lab of
# tests/tests/e2e_provision.rs (TCG, generated dhcpd.conf, TFTP, iPXE, HTTP, plasmagen
# collector, the netboot initrd answering SSH as the installer, a stand-in nixos-anywhere).
# Needs root and the packages of docs/e2e.md. Ends with one line of key=value figures.
#   bench/provision.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1}"
export PATH="$PATH:/usr/sbin:/sbin"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

cargo build -q -p plasma-tests --tests
for i in $(seq "$runs"); do
  if ! cargo test -q -p plasma-tests --test e2e_provision -- --nocapture >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "bench/provision.sh: run $i failed (consoles and logs: target/e2e/provision/)" >&2
    exit 1
  fi
  grep -E '^e2e-provision: ' "$log" | sed "s/^e2e-provision: /run $i: /"
  # The slowest node of the run, per step.
  awk -v run="$i" '
    /^e2e-provision: node[0-9]+: power-on at/ {
      for (f = 1; f <= NF; f++) {
        if ($f == "installer") inst = $(f + 1)
        if ($f == "installed") done = $(f + 1)
        if ($f == "booted") disk = $(f + 1)
      }
      gsub(/s|,/, "", inst); gsub(/s|,/, "", done); gsub(/s|,/, "", disk)
      if (inst + 0 > mi + 0) mi = inst; if (done + 0 > md + 0) md = done; if (disk + 0 > mk + 0) mk = disk
    }
    /^e2e-provision: plasmagen provision --bootstrap/ { p = $5; gsub(/s,?/, "", p) }
    END {
      printf "provision run=%d vms=3 installer_s=%s installed_s=%s disk_booted_s=%s provision_s=%s\n", run, mi, md, mk, p
    }' "$log"
done
