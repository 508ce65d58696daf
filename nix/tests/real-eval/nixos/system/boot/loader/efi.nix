# nixos/modules/system/boot/loader/efi.nix, complete option set (nixpkgs
# @0e1f31068d120f46c491fd21c285967ca6f4d6c1, 635 chars):
#   options.boot.loader.efi = {
#     canTouchEfiVariables = lib.mkOption { default = false; type = lib.types.bool; ... };
#     efiSysMountPoint = lib.mkOption { default = "/boot"; type = lib.types.str; ... };
#   };
# (its config only sets systemd.services.systemd-boot-random-seed.environment, not modelled)
{ lib, ... }:
{
  options.boot.loader.efi = {
    canTouchEfiVariables = lib.mkOption {
      default = false;
      type = lib.types.bool;
    };
    efiSysMountPoint = lib.mkOption {
      default = "/boot";
      type = lib.types.str;
    };
  };
}
