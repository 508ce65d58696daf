# nixos/modules/misc/version.nix: system.stateVersion is a plain string (the generated
# configuration.nix sets it from cluster.state_version). Other modules compare it with
# lib.versionOlder (swraid.nix, nftables.nix), so it must be set.
# (declared `type = types.str;` in nixpkgs; not re-read from a stored copy for this tool)
{ lib, ... }:
{
  options.system.stateVersion = lib.mkOption {
    type = lib.types.str;
  };
}
