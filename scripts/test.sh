#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian 12 machine: installs the real programs the
# tests drive (Nix evaluator, openssl, DHCP/DNS/firewall checkers, chromium, QEMU with iPXE and
# OVMF, a kernel and busybox for the PXE boot test) when they are missing, then runs the Rust
# test suite. Safe to re-run; extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  nix-bin            # nix-instantiate: parse and evaluate the generated Nix
  openssl            # openssl verify on the generated certificates
  nftables           # nft -c on the generated rules
  isc-dhcp-server    # dhcpd -t, and the DHCP server of the PXE boot test
  kea-dhcp4-server   # kea-dhcp4 -t
  dnsmasq            # dnsmasq --test, TFTP in the PXE boot test
  bind9-utils        # named-checkzone
  shellcheck         # the generated operator scripts
  jq                 # the operator scripts read JSON with jq (or python3)
  python3
  chromium           # the collector dashboard test
  qemu-system-x86    # the PXE boot test's VMs
  ipxe               # undionly.kpxe / ipxe.efi
  ipxe-qemu          # QEMU's NIC option ROMs (legacy PXE in the BIOS VM)
  ovmf               # UEFI firmware
  busybox-static     # the PXE test initrd
  linux-image-amd64  # the PXE test kernel
  iproute2           # network namespaces, bridge, tap
  gdisk              # sgdisk: GPT of the PXE test's UEFI installed-system disk
  mtools             # mformat/mmd/mcopy: that disk's EFI System Partition (FAT)
  openssh-server     # sshd standing in for a node's initrd in the unlock test
  openssh-client     # ssh, ssh-keygen: plasmagen unlock, and the host keys plasma-pki writes
  git                # hardware reports in a git flake (generate warns about untracked ones)
  ipmitool           # the IPMI driver, tested against an emulated BMC
  python3-venv       # the venv of the BMC emulators
  curl               # the provisioning lab asks its collector (mTLS) with curl
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the daemons it installs; the tests run their own copies.
  for svc in isc-dhcp-server kea-dhcp4-server dnsmasq ssh; do
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
fi

# BMC emulators the operator tests drive (a venv under target/, so nothing leaks into the
# system): sushy-tools (Redfish, what Metal3 and Ironic test with) and pyghmi (IPMI over LAN,
# the base of virtualbmc).
VENV=target/bmc-venv
if ! "$VENV/bin/python" -c 'import sushy_tools, pyghmi' 2>/dev/null; then
  echo "test.sh: installing the BMC emulators into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'sushy-tools==2.2.0' 'pyghmi==1.6.19'
fi
export PLASMA_BMC_PYTHON="$PWD/$VENV/bin/python"

export PATH="$PATH:/usr/sbin:/sbin"
cargo test --workspace --locked "$@"
