# Stand-in for nixos/modules/system/boot/systemd/initrd.nix (systemd stage 1), nixpkgs
# @00e6b22b508f93e219efee2dda4397027ccaf934:
#   enable = mkEnableOption "systemd in initrd" // { ... };  (default false in that copy; NixOS
#     26.05 turns it on, /tmp/research/boot.md section i; the generated boot.nix sets it)
# and the assertion we rely on (config = mkIf (config.boot.initrd.enable && cfg.enable)):
#   map (name: { assertion = lib.attrByPath name (throw "impossible") config.boot.initrd == "";
#     message = "systemd stage 1 does not support 'boot.initrd.${lib.concatStringsSep "." name}'. ..."; })
#   [ [ "preFailCommands" ] [ "preDeviceCommands" ] ... [ "network" "postCommands" ] ]
# (the root file system assertion is stage-1.nix's; the other boot.initrd.systemd.* options are
# not modelled: networkd.nix declares .network, config/users-groups.nix .users and .groups.)
{ config, lib, ... }:
let
  hooks = [
    [ "preFailCommands" ]
    [ "preDeviceCommands" ]
    [ "preLVMCommands" ]
    [ "postDeviceCommands" ]
    [ "postResumeCommands" ]
    [ "postMountCommands" ]
    [ "extraUdevRulesCommands" ]
    [ "extraUtilsCommands" ]
    [ "extraUtilsCommandsTest" ]
    [ "network" "postCommands" ]
  ];
in
{
  options.boot.initrd.systemd.enable = lib.mkEnableOption "systemd in initrd";

  config = lib.mkIf (config.boot.initrd.enable && config.boot.initrd.systemd.enable) {
    assertions = map (name: {
      assertion = lib.attrByPath name "" config.boot.initrd == "";
      message = "systemd stage 1 does not support 'boot.initrd.${lib.concatStringsSep "." name}'. Please convert it to analogous systemd units in 'boot.initrd.systemd'.";
    }) hooks;
  };
}
