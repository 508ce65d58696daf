# lib.evalModules the way NixOS runs it (no freeform root), for a configuration of which only
# some NixOS options are modelled (`mirror`: the stand-ins under nixos/, real declarations and the checks we rely on).
#
# NixOS has a declaration for every option; we have one only for the modelled ones, so every
# other defined option needs a stand-in declaration, and which ones is only known from the
# definitions. A freeform root cannot provide them in the real evaluation: a module may define
# attributes whose NAMES depend on `config` (disko's module.nix:
# `boot = mkIf cfg.enableConfig cfg.devices._config.boot`; pxe-server.nix:
# `networking.firewall.interfaces.${cfg.interface}`), and a freeform root needs all names of
# all definitions under declared options to build `config` itself: infinite recursion.
# Hence two passes:
#
#   pass 1 (`definitions`): `modules` WITHOUT the mirror, under a freeform root, only to see
#     which attribute paths are defined (nothing of NixOS is declared there, so no definition
#     has to be taken apart);
#   pass 2 (`eval`): mirror + modules + one stand-in option (type lib/freeform.nix) for each
#     defined path that the mirror does not declare. No freeform root, exactly as in NixOS.
#
# `known` maps an option prefix ("boot.loader.grub") to the names nixpkgs declares there that
# the mirror does not model (or null: any name). Under such a prefix a definition of any other
# name gets no stand-in, and pass 2 fails with NixOS's own "The option `...' does not exist".
{
  lib,
  mirror,
  modules,
  specialArgs,
  # paths the mirror modules themselves define without declaring them
  mirrorUndeclared ? [ ],
  known ? { },
}:
let
  inherit (lib)
    concatLists
    elem
    filter
    isAttrs
    isOption
    mapAttrsToList
    showOption
    ;
  freeform = import ./freeform.nix { inherit lib; };

  definitions = lib.evalModules {
    inherit specialArgs;
    modules = modules ++ [
      {
        _file = "check-nix-real: pass 1 (freeform root: defined paths only)";
        freeformType = freeform.pathsType;
      }
    ];
  };
  # only its option tree is used (_module.check = false: undeclared definitions are expected)
  declarations = lib.evalModules {
    inherit specialArgs;
    modules = mirror ++ modules ++ [ { _module.check = false; } ];
  };

  undeclared =
    let
      walk =
        path: opts: cfg:
        concatLists (
          mapAttrsToList (
            n: v:
            let
              p = path ++ [ n ];
            in
            if n == "_module" then
              [ ]
            else if opts ? ${n} then
              (if isOption opts.${n} || !(isAttrs v) then [ ] else walk p opts.${n} v)
            else
              [ p ]
          ) cfg
        );
    in
    walk [ ] declarations.options definitions.config ++ mirrorUndeclared;

  isUnknown =
    p:
    let
      parent = showOption (lib.init p);
    in
    (known.${parent} or null) != null && !(elem (lib.last p) known.${parent});

  standIns = lib.attrValues (
    lib.listToAttrs (map (p: lib.nameValuePair (showOption p) p) (filter (p: !(isUnknown p)) undeclared))
  );
in
{
  standIns = map showOption standIns;
  unknownOptions = map showOption (filter isUnknown undeclared);
  eval = lib.evalModules {
    inherit specialArgs;
    modules =
      mirror
      ++ modules
      ++ [
        {
          _file = "check-nix-real: stand-in declarations of the options not modelled";
          options = lib.foldl' lib.recursiveUpdate { } (
            map (p: lib.setAttrByPath p (lib.mkOption { type = freeform.nixosLike; })) standIns
          );
        }
      ];
  };
}
