#!/usr/bin/env bash
# Writes an N-node inventory (3 control-plane, the rest workers) to stdout.
# Usage: bench/make-inventory.sh N
set -euo pipefail
n="${1:?usage: make-inventory.sh N}"
cat <<TOML
[cluster]
name = "bench"
domain = "bench.example.com"
bootstrap = ["cp0001", "cp0002", "cp0003"]
ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkd86f/K36q5Khr2jtCpqAhME6U6WYvfZ+SRxEj42Ve bench@example.com"]
state_version = "26.05"
collector_url = "https://10.0.0.10:8443"

[networks.provisioning]
subnet = "10.0.0.0/16"
gateway = "10.0.0.1"
nameservers = ["10.0.0.1"]
dhcp_range = { start = "10.0.200.0", end = "10.0.255.254" }
pxe_server = "10.0.0.10"
interface = "eth0"

[networks.production]
subnet = "10.1.0.0/16"
gateway = "10.1.0.1"
nameservers = ["10.1.0.1"]
TOML
for i in $(seq 1 "$n"); do
  if [ "$i" -le 3 ]; then role=control-plane; name=$(printf 'cp%04d' "$i"); else role=worker; name=$(printf 'w%04d' "$i"); fi
  hi=$(( (i + 256) / 256 )); lo=$(( (i + 256) % 256 ))
  printf '\n[[nodes]]\nhostname = "%s"\nrole = "%s"\nmac = "52:54:00:00:%02x:%02x"\nproduction_macs = ["52:54:01:00:%02x:%02x"]\nprovisioning_ip = "10.0.%d.%d"\nproduction_ip = "10.1.%d.%d"\ndisks = ["/dev/disk/by-id/nvme-bench-%04d"]\n' \
    "$name" "$role" $(( i / 256 )) $(( i % 256 )) $(( i / 256 )) $(( i % 256 )) "$hi" "$lo" "$hi" "$lo" "$i"
done
