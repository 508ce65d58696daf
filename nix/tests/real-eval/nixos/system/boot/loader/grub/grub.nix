# Stand-in for nixos/modules/system/boot/loader/grub/grub.nix (the recent copy read by
# find_string id 62106987586, nixfmt era; /tmp/research/boot.md section c): the options disko and
# the generated boot.nix set, with their real types and defaults,
#   enable = mkOption { default = !config.boot.isContainer; type = types.bool; };   (on by default!)
#   device (str, ""), devices (listOf str, []), efiSupport, efiInstallAsRemovable (bool, false),
#   mirroredBoots = listOf (submodule { devices (listOf str, []); efiBootloaderId, efiSysMountPoint
#     (nullOr str, null); path (str, required) }), default [],
# how `device`/`devices` become the one mirroredBoots entry at /boot,
#   boot.loader.grub.mirroredBoots = mkIf (cfg.devices != [ ]) [
#     { inherit (cfg) devices; inherit (efi) efiSysMountPoint; path = "/boot"; } ];
# and the assertions we rely on (mkIf cfg.enable), messages as upstream; the duplicate check:
#   { assertion = cfg.efiSupport || all (c: c < 2) (mapAttrsToList (n: c: if n == "nodev" then 0 else c) bootDeviceCounters);
#     message = "You cannot have duplicated devices in mirroredBoots"; }
# The other grub options are listed by name in eval-node.nix (`known`): a misspelt or removed
# name is reported as in NixOS ("The option ... does not exist").
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.boot.loader.grub;
  option = type: default: mkOption { inherit type default; };
  # how often each device appears over all mirroredBoots
  counts = lib.foldl' (acc: d: acc // { ${d} = (acc.${d} or 0) + 1; }) { } (lib.concatMap (b: b.devices) cfg.mirroredBoots);
  assertion = assertion: message: { inherit assertion message; };
in
{
  options.boot.loader.grub = {
    enable = option types.bool (!config.boot.isContainer);
    device = option types.str "";
    devices = option (types.listOf types.str) [ ];
    efiInstallAsRemovable = option types.bool false;
    efiSupport = option types.bool false;
    mirroredBoots = option (types.listOf (
      types.submodule {
        options = {
          devices = option (types.listOf types.str) [ ];
          efiBootloaderId = option (types.nullOr types.str) null;
          efiSysMountPoint = option (types.nullOr types.str) null;
          path = mkOption { type = types.str; };
        };
      }
    )) [ ];
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      (assertion (cfg.mirroredBoots != [ ])
        "You must set the option ‘boot.loader.grub.devices’ or 'boot.loader.grub.mirroredBoots' to make the system bootable.")
      (assertion (cfg.efiSupport || lib.all (n: n == "nodev" || counts.${n} < 2) (lib.attrNames counts))
        "You cannot have duplicated devices in mirroredBoots")
      (assertion (cfg.efiInstallAsRemovable -> cfg.efiSupport)
        "If you wish to to use boot.loader.grub.efiInstallAsRemovable, then turn on boot.loader.grub.efiSupport")
      (assertion (cfg.efiInstallAsRemovable -> !config.boot.loader.efi.canTouchEfiVariables)
        "If you wish to to use boot.loader.grub.efiInstallAsRemovable, then turn off boot.loader.efi.canTouchEfiVariables")
    ]
    ++ lib.concatMap (b: [
      (assertion (b.devices != [ ]) "A boot path cannot have an empty devices string in ${b.path}")
      (assertion (lib.hasPrefix "/" b.path) "Boot paths must be absolute, not ${b.path}")
      (assertion (b.efiSysMountPoint == null || lib.hasPrefix "/" b.efiSysMountPoint)
        "EFI paths must be absolute, not ${toString b.efiSysMountPoint}")
    ] ++ map (d: assertion (d == "nodev" || lib.hasPrefix "/" d) "GRUB devices must be absolute paths, not ${d} in ${b.path}") b.devices
    ) cfg.mirroredBoots;

    boot.loader.grub.devices = lib.mkIf (cfg.device != "") [ cfg.device ];
    boot.loader.grub.mirroredBoots = lib.mkIf (cfg.devices != [ ]) [
      {
        inherit (cfg) devices;
        inherit (config.boot.loader.efi) efiSysMountPoint;
        path = "/boot";
      }
    ];
    # grub.nix: `boot.loader.supportsInitrdSecrets = true;`
    boot.loader.supportsInitrdSecrets = true;
  };
}
