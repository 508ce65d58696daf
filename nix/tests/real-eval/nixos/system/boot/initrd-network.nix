# Stand-in for nixos/modules/system/boot/initrd-network.nix (scripted initrd networking; copy
# find_string id 197663011, /tmp/research/src/initrd-network.id197663011.nix): its options, read
# by initrd-ssh.nix, networkd.nix and systemd/initrd.nix.
#   L50  enable (bool, false)
#   L68  flushBeforeStage2 = mkOption { type = types.bool; default = !config.boot.initrd.systemd.enable; ...
#   L82  udhcpc.enable = mkOption { default = config.networking.useDHCP && !config.boot.initrd.systemd.enable; ...
#   L93  udhcpc.extraArgs (listOf str, [])     L103 postCommands (lines, "")
{ config, lib, ... }:
let
  inherit (lib) types;
  option = type: default: lib.mkOption { inherit type default; };
in
{
  options.boot.initrd.network = {
    enable = option types.bool false;
    flushBeforeStage2 = option types.bool (!config.boot.initrd.systemd.enable);
    udhcpc.enable = option types.bool (config.networking.useDHCP && !config.boot.initrd.systemd.enable);
    udhcpc.extraArgs = option (types.listOf types.str) [ ];
    postCommands = option types.lines "";
  };
}
