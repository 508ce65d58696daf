# Step 1 of scripts/check-nix-real.sh: evaluates one generated nodes/<fqdn>/disko.nix with
# disko's REAL module.nix, i.e. with disko's own option types (diskoLib.toplevel: disk, gpt,
# partition sizes and types, mdadm, luks, lvm_vg, filesystem, ...).
#
#   nix-instantiate --eval --strict --json nix/tests/real-eval/eval-disko.nix \
#     --argstr nixpkgsLib /path/to/nixpkgs.lib/lib --argstr disko /path/to/disko \
#     --argstr file /abs/out/flake/nodes/<fqdn>/disko.nix
#
# Result:
#   config            what disko's module.nix defines for NixOS (module.nix:307-309:
#                     fileSystems, boot, swapDevices from devices._config, mkIf/mkMerge resolved)
#   create            devices._create: the body of the disko-format script nixos-anywhere runs
#                     (forcing it checks every size / type / name disko validates)
#   mount             devices._mount: the mount script
#   failedAssertions  messages of module.nix's assertions that are false
#
# disko's module.nix is written for NixOS. Without nixos/ (only nixpkgs.lib is available) the
# root gets a freeform type (lib/freeform.nix) for the NixOS options it defines; its `pkgs`
# is never needed for _config / _create / _mount (it only builds the script derivations).
{
  nixpkgsLib,
  disko,
  file,
}:
let
  asPath = p: if builtins.isPath p then p else /. + p;
  lib = import (asPath nixpkgsLib);
  freeform = import ./lib/freeform.nix { inherit lib; };

  eval = lib.evalModules {
    specialArgs = {
      # module.nix passes "${modulesPath}/../tests/make-test-python.nix" and friends to
      # diskoLib lazily; they are only read by disko's VM tests.
      modulesPath = toString ./nixos;
    };
    modules = [
      {
        freeformType = freeform.type;
        # NixOS declares these with defaults; module.nix defines them under mkIf enableConfig.
        config = {
          fileSystems = { };
          boot = { };
          swapDevices = [ ];
          _module.args.pkgs = throw "eval-disko.nix: no package set here (only the disko scripts' derivations need one)";
        };
      }
      (asPath disko + "/module.nix")
      (asPath file)
    ];
  };

  inherit (eval.config.disko) devices;
in
{
  config = {
    inherit (eval.config) fileSystems boot swapDevices;
  };
  create = devices._create;
  mount = devices._mount;
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) eval.config.assertions);
}
