# nixos/modules/services/networking/firewall.nix (@0192bb844360b5b42ebaf7f575f84d79910a5927,
# partial copy /tmp/research/src/misc/firewall.nix.partial):
#   networking.firewall.enable = lib.mkOption { type = lib.types.bool; default = true; ... };
#   backend = lib.mkOption { type = lib.types.enum [ "iptables" "nftables" "firewalld" ];
#     default = if config.services.firewalld.enable then "firewalld"
#       else if config.networking.nftables.enable then "nftables" else "iptables"; };
# The other firewall options are not modelled.
{
  config,
  lib,
  ...
}:
{
  options.networking.firewall = {
    enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
    };
    backend = lib.mkOption {
      type = lib.types.enum [
        "iptables"
        "nftables"
        "firewalld"
      ];
      default =
        if config.services.firewalld.enable or false then
          "firewalld"
        else if config.networking.nftables.enable then
          "nftables"
        else
          "iptables";
    };
  };
}
