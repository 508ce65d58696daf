# Stand-in for the networking.* options the generated network.nix sets, and what useNetworkd
# does with them.
# nixos/modules/tasks/network-interfaces.nix (copy find_string id 112875094; the newest copy id
# 62433272478 declares useDHCP / useNetworkd the same way):
#   networking.hostName = mkOption { default = config.system.nixos.distroId;
#     type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";   (no FQDN)
#   domain (nullOr str, null), nameservers / search (listOf str, []), enableIPv6 (bool, true),
#   useDHCP (bool, true), useNetworkd (bool, false)
# nixos/modules/services/hardware/udev.nix (copy find_string id 161456118):
#   networking.usePredictableInterfaceNames (bool, true)
# nixos/modules/tasks/network-interfaces-systemd.nix (@fca69bec662b251234b1e1b4b477bd2827618e9e,
# /tmp/research/net.md section 2.2), what we rely on useDHCP = false to prevent:
#   genericDhcpNetworks = initrd: mkIf cfg.useDHCP {
#     networks."99-ethernet-default-dhcp" = { matchConfig.Name = [ "en*" "eth*" ]; DHCP = "yes"; ...
#     networks."99-wireless-client-dhcp" = { matchConfig.WLANInterfaceType = "station"; DHCP = "yes"; ...
#   (mkIf cfg.useNetworkd { networking.dhcpcd.enable = mkDefault false;
#     systemd.network = mkMerge [ { enable = true; } ... (genericDhcpNetworks false) ... ]; })
#   and the same networks in boot.initrd.systemd.network under boot.initrd.network.enable.
# Only their [Match] and DHCP are modelled here (upstream adds IPv6PrivacyExtensions and route
# metrics, outside plasmagen's networkd contract).
{ config, lib, ... }:
let
  inherit (lib) types;
  option = type: default: lib.mkOption { inherit type default; };
  cfg = config.networking;
  dhcpNetworks = lib.mkIf cfg.useDHCP {
    networks."99-ethernet-default-dhcp" = {
      matchConfig.Name = [ "en*" "eth*" ];
      networkConfig.DHCP = "yes";
    };
    networks."99-wireless-client-dhcp" = {
      matchConfig.WLANInterfaceType = "station";
      networkConfig.DHCP = "yes";
    };
  };
in
{
  options.networking = {
    hostName = option (types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$") "nixos";
    domain = option (types.nullOr types.str) null;
    nameservers = option (types.listOf types.str) [ ];
    search = option (types.listOf types.str) [ ];
    enableIPv6 = option types.bool true;
    useDHCP = option types.bool true;
    useNetworkd = option types.bool false;
    usePredictableInterfaceNames = option types.bool true;
  };

  config = lib.mkMerge [
    (lib.mkIf config.boot.initrd.network.enable { boot.initrd.systemd.network = dhcpNetworks; })
    (lib.mkIf cfg.useNetworkd {
      networking.dhcpcd.enable = lib.mkDefault false;
      systemd.network = lib.mkMerge [
        { enable = true; }
        dhcpNetworks
      ];
    })
  ];
}
