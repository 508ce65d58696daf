# Optional part of scripts/check-nix-real.sh: the generated pxe-server.nix, imported the way the
# fleet flake's nixosModules.pxe-server does (this project's nix/modules/pxe-server.nix + the
# generated file + netbootImages), evaluated with lib.evalModules like eval-node.nix (two
# passes, lib/eval-with-stand-ins.nix). services.centra-pxe-server.* have their real types
# (nix/modules/pxe-server.nix), networking.nftables / networking.firewall.{enable,backend} have
# stand-ins (nixos/services/networking/*); what the module sets for NixOS (services.kea,
# services.nginx, systemd.services, ...) is not modelled.
#
#   nix-instantiate --eval --strict --json nix/tests/real-eval/eval-pxe-server.nix \
#     --argstr nixpkgsLib /path/to/nixpkgs.lib/lib --argstr flake /abs/out/flake
{
  nixpkgsLib,
  flake,
}:
let
  asPath = p: if builtins.isPath p then p else /. + p;
  lib = import (asPath nixpkgsLib);
  flakeDir = asPath flake;
  pkgs = import ./stub-pkgs.nix;
  moduleDir = toString ../../modules;

  evaluated = import ./lib/eval-with-stand-ins.nix {
    inherit lib;
    specialArgs.modulesPath = ./nixos;
    mirror = [
      ./nixos/misc/assertions.nix
      ./nixos/misc/version.nix
      ./nixos/services/networking/nftables.nix
      ./nixos/services/networking/firewall.nix
    ];
    known."networking.nftables" = [ ];
    modules = [
      ../../modules/pxe-server.nix
      (flakeDir + "/pxe-server.nix")
      {
        _file = "check-nix-real: stub pkgs, the provisioning host's own settings, flake.nix's netbootImages";
        _module.args.pkgs = pkgs;
        system.stateVersion = "26.05";
        # flake.nix: netbootImages = genAttrs profiles (p: self.packages.${system}."netboot-${p}")
        services.centra-pxe-server.netbootImages = lib.genAttrs [ "discovery" ] (p: pkgs.writeText "netboot-${p}" "");
      }
    ];
  };
  inherit (evaluated.eval) config options;

  modelled = lib.filter (
    opt:
    lib.any (d: lib.hasPrefix moduleDir (toString d) || lib.hasPrefix (toString ./nixos) (toString d)) opt.declarations
    && lib.showOption opt.loc != "assertions"
  ) (lib.collect lib.isOption options);
  forced = lib.foldl' (n: opt: if opt.isDefined then builtins.deepSeq opt.value (n + 1) else n) 0 modelled;
  cfg = config.services.centra-pxe-server;
in
builtins.seq forced {
  inherit forced;
  inherit (evaluated) unknownOptions;
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  inherit (config) warnings;
  inherit (cfg) interface;
  nodes = lib.length (lib.attrNames cfg.nodes);
  nftablesTables = lib.attrNames config.networking.nftables.tables;
  # what the module hands to Kea: forces the generated DHCP settings through the module
  keaSettingsBytes = lib.stringLength (builtins.toJSON config.services.kea.dhcp4.settings);
}
