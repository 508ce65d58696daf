# Stand-in for nixos/modules/system/boot/networkd.nix: the option trees systemd.network and
# boot.initrd.systemd.network with their real container types, and plasmagen's checked contract
# for the unit sections (lib/systemd.nix). Line numbers (L...) refer to nixpkgs
# @7b6b6045feab801f30fb3e6e19c33ae5da7149bc (copy /tmp/research/src/networkd/networkd.nix).
#
# Declared as upstream:
#   L3570 `systemd.network = commonOptions true; boot.initrd.systemd.network = commonOptions "shallow";`
#   L3264-3289 links / netdevs / networks = attrsOf (submodule [ { options = ...; } ]): the unit
#     submodules are not freeform, an attribute that is no unit option is "does not exist";
#   every section is `attrsOf unitOption` (L1938 matchConfig has no check; the others addCheck);
#   L3010-3073 address, gateway, dns, bond, vlan = listOf str, default [ ].
# Checked (the contract): the sections and keys templates/flake/network.nix and boot.nix emit,
# each with the values nixpkgs allows (cited below). Any other key of these sections, and any
# other unit option nixpkgs declares (routes, dhcpV4Config, ntp, name, ...), is rejected with
# "not in plasmagen's checked contract": add it here, with the nixpkgs check it is subject to.
# Not declared: the removed dhcpConfig & co. (which throw upstream), `units` (internal).
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  sd = import ../../../lib/systemd.nix { inherit lib; };
  inherit (sd) section unused oneOf intIn anyValue boolValues;
  words = s: lib.filter (w: w != "") (lib.splitString " " (builtins.replaceStrings [ "\n" ] [ " " ] s));
  opt = type: default: mkOption { inherit type default; };
  sectionType = types.attrsOf sd.unitOption;
  unusedAll = type: default: names: lib.genAttrs (words names) (n: unused n type default);

  contract = {
    # L246-295 [NetDev]: assertHasField "Name", assertHasField "Kind" and
    #   (assertValueOneOf "Kind" [ "bond" "bridge" ... "batadv" ]); Name has no value check.
    netdev = section "Netdev" {
      required = [ "Name" "Kind" ];
      fields.Name = anyValue;
      fields.Kind = oneOf (words ''
        bond bridge dummy gre gretap erspan ip6gre ip6tnl ip6gretap ipip ipvlan ipvtap macvlan
        macvtap sit tap tun veth vlan vti vti6 vxlan geneve l2tp macsec wlan vrf vcan vxcan
        wireguard netdevsim nlmon fou xfrm ifb batadv'');
    };
    # L346-347 [VLAN]: (assertInt "Id") (assertRange "Id" 0 4094)
    vlan = section "VLAN" { fields.Id = intIn 0 4094; };
    # L588-633 [Bond]: assertValueOneOf on Mode, TransmitHashPolicy, LACPTransmitRate;
    #   MIIMonitorSec is only listed in assertOnlyFields (no value check).
    bond = section "Bond" {
      fields = {
        Mode = oneOf [ "balance-rr" "active-backup" "balance-xor" "broadcast" "802.3ad" "balance-tlb" "balance-alb" ];
        TransmitHashPolicy = oneOf [ "layer2" "layer3+4" "layer2+3" "encap2+3" "encap3+4" ];
        LACPTransmitRate = oneOf [ "slow" "fast" ];
        MIIMonitorSec = anyValue;
      };
    };
    # L773-793 .network [Link]: RequiredForOnline is boolValues, an operational state or a range
    #   "min:max" of them (`imap0 (i: min: map (max: "${min}:${max}") (drop i operationalStates))`).
    link = section "Link" {
      fields.RequiredForOnline = sd.stateOrRange (words ''
        missing off no-carrier dormant degraded-carrier carrier degraded enslaved routable'');
    };
    # L812-893 [Network]: Bond is only listed in assertOnlyFields; L880 DHCP (set by
    #   network-interfaces.nix's useDHCP networks) and L886 LinkLocalAddressing are enums. (The
    #   newest copy, find_string id 51883431331, drops "fallback" / "ipv4-fallback".)
    network = section "Network" {
      fields = {
        Bond = anyValue;
        DHCP = oneOf (boolValues ++ [ "ipv4" "ipv6" ]);
        LinkLocalAddressing = oneOf (boolValues ++ [ "ipv4" "ipv6" "fallback" "ipv4-fallback" ]);
      };
    };
  };

  # L1926 commonNetworkOptions (enable, matchConfig, extraConfig)
  commonNetworkOptions = {
    enable = opt types.bool true;
    matchConfig = opt sectionType { };
    extraConfig = unused "extraConfig" types.lines "";
  };
  # L2008 .link units: plasmagen writes none
  linkOptions = commonNetworkOptions // {
    linkConfig = unused "linkConfig (.link)" sectionType { };
  };
  # L2052 .netdev units; L2054 netdevConfig has no default
  netdevOptions =
    commonNetworkOptions
    // {
      netdevConfig = mkOption { type = contract.netdev; };
      vlanConfig = opt contract.vlan { };
      bondConfig = opt contract.bond { };
    }
    // unusedAll sectionType { } ''
      bridgeConfig ipvlanConfig ipvtapConfig macvlanConfig vxlanConfig tunnelConfig fooOverUDPConfig
      peerConfig tunConfig tapConfig l2tpConfig wireguardConfig xfrmConfig vrfConfig wlanConfig
      batmanAdvancedConfig''
    // unusedAll (types.listOf sectionType) [ ] "l2tpSessions wireguardPeers";
  # L2351 .network units
  networkOptions =
    commonNetworkOptions
    // {
      linkConfig = opt contract.link { };
      networkConfig = opt contract.network { };
    }
    // lib.genAttrs [ "address" "gateway" "dns" "bond" "vlan" ] (_: opt (types.listOf types.str) [ ])
    // unusedAll sectionType { } ''
      dhcpV4Config dhcpV6Config dhcpPrefixDelegationConfig ipv6AcceptRAConfig dhcpServerConfig
      ipv6SendRAConfig bridgeConfig lldpConfig canConfig ipoIBConfig qdiscConfig networkEmulatorConfig
      tokenBucketFilterConfig pieConfig flowQueuePIEConfig stochasticFairBlueConfig
      stochasticFairnessQueueingConfig bfifoConfig pfifoConfig pfifoHeadDropConfig pfifoFastConfig
      cakeConfig controlledDelayConfig deficitRoundRobinSchedulerConfig
      deficitRoundRobinSchedulerClassConfig enhancedTransmissionSelectionConfig
      genericRandomEarlyDetectionConfig fairQueueingControlledDelayConfig fairQueueingConfig
      trivialLinkEqualizerConfig hierarchyTokenBucketConfig hierarchyTokenBucketClassConfig
      heavyHitterFilterConfig quickFairQueueingConfig quickFairQueueingConfigClass''
    // unusedAll (types.listOf sectionType) [ ] ''
      ipv6PREF64Prefixes dhcpServerStaticLeases ipv6Prefixes ipv6RoutePrefixes bridgeFDBs bridgeMDBs
      bridgeVLANs addresses routingPolicyRules routes''
    // unusedAll (types.listOf types.str) [ ] "ntp bridge vrf macvlan ipvlan macvtap vxlan tunnel xfrm"
    # L2986-3002 shorthands for matchConfig.Name / networkConfig.DHCP / Domains
    // unusedAll (types.nullOr types.str) null "name DHCP"
    // { domains = unused "domains" (types.nullOr (types.listOf types.str)) null; };

  # L3247 commonOptions (`config` is a submodule upstream: networkd.conf, unused here)
  commonOptions = {
    enable = opt types.bool false;
    links = opt (types.attrsOf (types.submodule [ { options = linkOptions; } ])) { };
    netdevs = opt (types.attrsOf (types.submodule [ { options = netdevOptions; } ])) { };
    networks = opt (types.attrsOf (types.submodule [ { options = networkOptions; } ])) { };
    config = unused "config (networkd.conf)" (types.attrsOf types.unspecified) { };
    wait-online = {
      enable = opt types.bool true;
      anyInterface = opt types.bool config.networking.useDHCP;
      ignoredInterfaces = opt (types.listOf types.str) [ ];
      timeout = opt types.ints.unsigned 120;
      extraArgs = opt (types.listOf types.str) [ ];
    };
  };
in
{
  options = {
    systemd.network = commonOptions;
    boot.initrd.systemd.network = commonOptions;
  };

  config = lib.mkIf config.boot.initrd.systemd.enable {
    # L3576-3586, the module's one assertion:
    #   assertion = !config.boot.initrd.network.udhcpc.enable && config.boot.initrd.network.udhcpc.extraArgs == [ ];
    assertions = [
      {
        assertion = !config.boot.initrd.network.udhcpc.enable && config.boot.initrd.network.udhcpc.extraArgs == [ ];
        message = "systemd stage 1 networking does not support 'boot.initrd.network.udhcpc'. ...";
      }
    ];
    # L3511 `systemd.network.enable = mkDefault config.boot.initrd.network.enable;` (in boot.initrd)
    boot.initrd.systemd.network.enable = lib.mkDefault config.boot.initrd.network.enable;
  };
}
