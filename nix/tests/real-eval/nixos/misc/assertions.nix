# nixos/modules/misc/assertions.nix: the two options every module reports problems through.
# NixOS fails the build of system.build.toplevel with the messages of the failed assertions and
# prints the warnings; eval-node.nix returns both and check-nix-real.sh prints them.
#   assertions = mkOption { type = types.listOf types.unspecified; internal = true; default = []; ... };
#   warnings   = mkOption { internal = true; default = []; type = types.listOf types.str; ... };
# (declarations as in nixpkgs; not re-read from a stored copy for this tool)
{ lib, ... }:
{
  options = {
    assertions = lib.mkOption {
      type = lib.types.listOf lib.types.unspecified;
      internal = true;
      default = [ ];
    };
    warnings = lib.mkOption {
      internal = true;
      default = [ ];
      type = lib.types.listOf lib.types.str;
    };
  };
}
