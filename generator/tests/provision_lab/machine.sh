#!/bin/sh
# A lab machine starting up: fake_bmc.py runs this (FAKE_BMC_ON_BOOT) with BOOT_DEVICE when
# its BMC powers the machine on or resets it. "network" boots the NixOS installer; anything
# else boots the disk: the installed system when there is one. What answers is a real sshd
# on the node's provisioning IP (in the test's network namespace).
#   machine.sh LAB NODE IP
set -eu
lab=$1 node=$2 ip=$3
dir=$lab/machines/$node
mkdir -p "$dir"
echo "$ip" > "$dir/ip"
echo "boot ${BOOT_DEVICE:-default}" >> "$dir/events"
if [ -f "$dir/sshd.pid" ]; then
  kill "$(cat "$dir/sshd.pid")" 2>/dev/null || true
  rm -f "$dir/sshd.pid"
  sleep 0.2
fi
# A broken machine never comes up.
[ -e "$dir/dead" ] && exit 0
case "${BOOT_DEVICE:-default}" in
  network) system=installer ;;
  *) [ -e "$dir/installed" ] || exit 0; system=installed ;;
esac
if [ "$system" = installer ]; then
  # A netboot installer makes a new host key on every boot.
  rm -f "$dir/installer_host_key" "$dir/installer_host_key.pub"
  ssh-keygen -q -t ed25519 -N '' -C installer -f "$dir/installer_host_key"
  host_key=$dir/installer_host_key
else
  host_key=$(cat "$dir/installed_host_key_path")
fi
listen="ListenAddress $ip:22"
# The installed system also answers on its production address.
if [ "$system" = installed ] && [ -f "$dir/production_ip" ]; then
  listen="$listen
ListenAddress $(cat "$dir/production_ip"):22"
fi
cat > "$dir/sshd_config" <<CONF
$listen
HostKey $host_key
AuthorizedKeysFile $lab/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $dir/sshd.pid
PrintMotd no
LogLevel VERBOSE
ForceCommand $lab/remote.sh $lab $node $system
CONF
echo "$system" > "$dir/system"
exec /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
