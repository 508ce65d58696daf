# nixos/modules/system/boot/loader/systemd-boot/systemd-boot.nix (nixpkgs
# @01e499cec163a442f5edeffa7e618171002cc01e; /tmp/research/boot.md section d). Only what the
# generated configurations rely on:
#   enable (mkEnableOption, default false)
#   config = mkIf cfg.enable {
#     assertions = [ { assertion = (hasPrefix "/" efi.efiSysMountPoint);
#       message = "The ESP mount point '${toString efi.efiSysMountPoint}' must be an absolute path"; } ... ];
#     boot.loader.grub.enable = mkDefault false;
#     boot.loader.supportsInitrdSecrets = true;
# systemd-boot has NO evaluation-time check of the ESP's file system; its installer runs
#   findmnt ${efiSysMountPoint} > /dev/null || fail efiSysMountPoint ${efiSysMountPoint}
# (checkMountpoints), i.e. the ESP must be a mounted file system. eval-node.nix checks that
# fileSystems has an entry there (and reports its fsType) as a stand-in for that install step.
{
  config,
  lib,
  ...
}:
let
  cfg = config.boot.loader.systemd-boot;
  efi = config.boot.loader.efi;
in
{
  options.boot.loader.systemd-boot.enable = lib.mkEnableOption "the systemd-boot (formerly gummiboot) EFI boot manager";

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.hasPrefix "/" efi.efiSysMountPoint;
        message = "The ESP mount point '${toString efi.efiSysMountPoint}' must be an absolute path";
      }
    ];
    boot.loader.grub.enable = lib.mkDefault false;
    boot.loader.supportsInitrdSecrets = true;
  };
}
