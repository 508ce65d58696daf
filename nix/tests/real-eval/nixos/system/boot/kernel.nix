# Stand-in for nixos/modules/system/boot/kernel.nix: the initrd module lists. Declarations as in
# nixpkgs @8a2b0a70a70526480d5db9e67c2548ec57f0f6fc (/tmp/research/boot.md section b):
#   boot.initrd.availableKernelModules = mkOption { type = types.listOf types.str; default = []; ...
#   boot.initrd.kernelModules (same), boot.initrd.includeDefaultModules (bool, default true).
# What we rely on: kernel.nix defines its default storage/USB/HID list at NORMAL priority,
#   (mkIf config.boot.initrd.enable { boot.initrd.availableKernelModules =
#      optionals config.boot.initrd.includeDefaultModules ([ ... "ahci" ... "nvme" ...
# so a list hardware.nix defined with mkDefault would be DROPPED next to it (and one defined with
# mkForce would drop this one). Only the modules eval-node.nix looks for are listed here (the real
# list has about 30); three of them are not in hardware.nix's own list, so an mkForce shows.
{ config, lib, ... }:
let
  list = lib.mkOption {
    type = lib.types.listOf lib.types.str;
    default = [ ];
  };
in
{
  options.boot.initrd = {
    availableKernelModules = list;
    kernelModules = list;
    includeDefaultModules = lib.mkOption {
      type = lib.types.bool;
      default = true;
    };
  };

  config = lib.mkIf (config.boot.initrd.enable && config.boot.initrd.includeDefaultModules) {
    boot.initrd.availableKernelModules = [ "ahci" "nvme" "sd_mod" "mmc_block" "xhci_hcd" "hid_generic" ];
  };
}
