# nixos/modules/system/build.nix: system.build is a lazy attribute set of derivations.
#   system.build = mkOption { default = { }; type = types.submoduleWith { modules = [ {
#     freeformType = with types; lazyAttrsOf (uniq unspecified); } ]; }; };
# disko's module.nix puts its scripts here (they need real packages); nothing here reads them,
# and eval-node.nix never forces this option.
{ lib, ... }:
{
  options.system.build = lib.mkOption {
    default = { };
    type = lib.types.submoduleWith {
      modules = [ { freeformType = with lib.types; lazyAttrsOf (uniq unspecified); } ];
    };
  };
}
