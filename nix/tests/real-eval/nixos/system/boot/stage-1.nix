# Stand-in for nixos/modules/system/boot/stage-1.nix (the copy read by find_string id 62781097,
# chars 16000-25924): the initrd options we rely on and two of its assertions.
#   boot.initrd.enable = mkOption { type = types.bool; default = !config.boot.isContainer; ...
#   boot.initrd.secrets = mkOption { default = {}; type = types.attrsOf (types.nullOr types.path); ...
#   boot.loader.supportsInitrdSecrets = mkOption { internal = true; default = false; type = types.bool; ...
#   fileSystems.<name>.neededForBoot (bool, false); boot.resumeDevice (str, "": disko's swap type sets it)
# Assertions (config = mkIf config.boot.initrd.enable):
#   { assertion = any (fs: fs.mountPoint == "/") fileSystems;
#     message = "The ‘fileSystems’ option does not specify your root file system."; }
#   { assertion = !config.boot.loader.supportsInitrdSecrets -> all (source: builtins.isPath source ||
#       (builtins.isString source && hasPrefix builtins.storeDir source)) (attrValues config.boot.initrd.secrets); ...
# (initrd-ssh.nix turns the host keys into initrd secrets: strings outside the store need a
# bootloader that appends secrets, GRUB or systemd-boot.) The scripted-initrd hooks are declared
# (`types.lines`, "") because systemd/initrd.nix asserts they stay empty under systemd stage 1.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  option = type: default: mkOption { inherit type default; };
  hooks = "preLVMCommands preDeviceCommands postDeviceCommands postResumeCommands postMountCommands preFailCommands extraUtilsCommands extraUtilsCommandsTest extraUdevRulesCommands";
in
{
  options = {
    # declared outside stage-1.nix in nixpkgs (the container switch)
    boot.isContainer = option types.bool false;
    boot.resumeDevice = option types.str "";
    boot.initrd = {
      enable = option types.bool (!config.boot.isContainer);
      secrets = option (types.attrsOf (types.nullOr types.path)) { };
    }
    // lib.genAttrs (lib.splitString " " hooks) (_: option types.lines "");
    boot.loader.supportsInitrdSecrets = option types.bool false;
    fileSystems = mkOption {
      type = types.attrsOf (types.submodule { options.neededForBoot = option types.bool false; });
    };
  };

  config = lib.mkIf config.boot.initrd.enable {
    assertions = [
      {
        assertion = lib.any (fs: fs.mountPoint == "/") (lib.attrValues config.fileSystems);
        message = "The ‘fileSystems’ option does not specify your root file system.";
      }
      {
        assertion =
          !config.boot.loader.supportsInitrdSecrets
          -> lib.all (s: builtins.isPath s || (builtins.isString s && lib.hasPrefix builtins.storeDir s)) (
            lib.attrValues config.boot.initrd.secrets
          );
        message = "boot.loader.initrd.secrets values must be unquoted paths when using a bootloader that doesn't natively support initrd secrets ...";
      }
    ];
  };
}
