#!/bin/sh
# What a lab machine answers over SSH (sshd's ForceCommand): its /etc/os-release, the
# stand-in installation, nixos-facter's report, a reboot. Every command is logged.
#   remote.sh LAB NODE SYSTEM
lab=$1 node=$2 system=$3
dir=$lab/machines/$node
cmd=${SSH_ORIGINAL_COMMAND:-}
echo "$system: $cmd" >> "$dir/commands"
case "$cmd" in
  "cat /etc/os-release")
    if [ -f "$dir/os-release.$system" ]; then cat "$dir/os-release.$system"
    else cat "$lab/os-release.$system"; fi ;;
  plasma-lab-install) touch "$dir/installed" ;;
  nixos-facter) echo '{"version": 1, "system": "x86_64-linux"}' ;;
  *reboot*)
    # A machine whose reboot silently does nothing (no nohup, a hung shutdown).
    [ -e "$dir/ignores-reboot" ] && exit 0
    # Like `reboot`: the session ends, the machine boots again from its default device.
    (sleep 1; BOOT_DEVICE=default "$lab/machine.sh" "$lab" "$node" "$(cat "$dir/ip")") \
      >/dev/null 2>&1 </dev/null &
    ;;
  "activate-new test")
    echo "test" >> "$dir/activations"
    if [ -e "$lab/breaks-$node" ]; then touch "$lab/broken-$node"; fi
    ;;
  "activate-new switch") echo "switch" >> "$dir/activations" ;;
  "/nix/var/nix/profiles/system/bin/switch-to-configuration test")
    echo "rollback" >> "$dir/activations"
    rm -f "$lab/broken-$node"
    ;;
  *) echo "remote.sh: unexpected command: $cmd" >&2; exit 127 ;;
esac
