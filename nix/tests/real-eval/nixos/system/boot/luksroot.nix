# Stand-in for nixos/modules/system/boot/luksroot.nix (nixpkgs
# @0080a8125b587185ec1f768e62dc0b50b885375e, chars 16000-41886). disko's luks type copies
# `{ device = ...; } // settings` into boot.initrd.luks.devices.<name> (facts-disko.md), so the
# device submodule is declared with every option of that copy (not freeform, as upstream):
#   boot.initrd.luks.devices = mkOption { default = { }; type = with types; attrsOf (submodule (
#     { config, name, ... }: { options = { device = mkOption { type = types.str; }; ...
# (gpgCard and yubikey are `nullOr (submodule ...)` upstream; their sub-options are not modelled.)
# boot.initrd.luks.reusePassphrases (bool, true) is declared for the assertion below; the other
# boot.initrd.luks options are listed by name in eval-node.nix (`known`).
# The systemd-stage-1 assertions we rely on (config = mkIf (luks.devices != {} || ...)):
#   { assertion = config.boot.initrd.systemd.enable -> all (dev: dev.preLVM) (attrValues luks.devices);
#     message = "boot.initrd.luks.devices.<name>.preLVM is not used by systemd stage 1."; }
# and likewise fallbackToPassword, reusePassphrases (`highestPrio == defaultPrio`, i.e. not set),
# pre/postOpenCommands; keyFileTimeout only WITH systemd stage 1.
{
  config,
  lib,
  options,
  ...
}:
let
  inherit (lib) mkOption types;
  option = type: default: mkOption { inherit type default; };
  luks = config.boot.initrd.luks;
  systemdStage1 = config.boot.initrd.systemd.enable;
  devs = lib.attrValues luks.devices;
  assertion = assertion: message: { inherit assertion message; };
  bool = option types.bool;
  nullOr = t: option (types.nullOr t) null;
in
{
  options.boot.initrd.luks = {
    reusePassphrases = bool true;
    devices = option (types.attrsOf (
      types.submodule (
        { name, ... }:
        {
          options = {
            name = option types.str name;
            device = mkOption { type = types.str; };
            header = nullOr types.str;
            keyFile = nullOr types.str;
            tryEmptyPassphrase = bool false;
            keyFileTimeout = nullOr types.int;
            keyFileSize = nullOr types.int;
            keyFileOffset = nullOr types.int;
            preLVM = bool true;
            allowDiscards = bool false;
            bypassWorkqueues = bool false;
            fallbackToPassword = bool false;
            gpgCard = nullOr (types.attrsOf types.unspecified);
            fido2 = {
              credential = nullOr types.str;
              credentials = option (types.listOf types.str) [ ];
              gracePeriod = option types.int 10;
              passwordLess = bool false;
            };
            yubikey = nullOr (types.attrsOf types.unspecified);
            preOpenCommands = option types.lines "";
            postOpenCommands = option types.lines "";
            crypttabExtraOpts = option (types.listOf types.singleLineStr) [ ];
          };
        }
      )
    )) { };
  };

  config = lib.mkIf (luks.devices != { }) {
    assertions = [
      (assertion (!systemdStage1 -> lib.all (x: x.keyFileTimeout == null) devs)
        "boot.initrd.luks.devices.<name>.keyFileTimeout is only supported for systemd initrd")
      (assertion (systemdStage1 -> lib.all (dev: !dev.fallbackToPassword) devs)
        "boot.initrd.luks.devices.<name>.fallbackToPassword is implied by systemd stage 1.")
      (assertion (systemdStage1 -> lib.all (dev: dev.preLVM) devs)
        "boot.initrd.luks.devices.<name>.preLVM is not used by systemd stage 1.")
      (assertion (systemdStage1 -> options.boot.initrd.luks.reusePassphrases.highestPrio == (lib.mkOptionDefault { }).priority)
        "boot.initrd.luks.reusePassphrases has no effect with systemd stage 1.")
      (assertion (systemdStage1 -> lib.all (dev: dev.preOpenCommands == "" && dev.postOpenCommands == "") devs)
        "boot.initrd.luks.devices.<name>.preOpenCommands and postOpenCommands is not supported by systemd stage 1. ...")
    ];
  };
}
