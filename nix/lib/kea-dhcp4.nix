# Kea DHCPv4 settings for services.centra-pxe-server (runbook 3.2 translated from ISC dhcpd).
# Builtins only, so the repository's tests can evaluate it without nixpkgs and check the
# result with `kea-dhcp4 -t`.
{ cfg }:
let
  octets = s: builtins.filter builtins.isString (builtins.split "\\." s);
  maskBits = {
    "255" = 8;
    "254" = 7;
    "252" = 6;
    "248" = 5;
    "240" = 4;
    "224" = 3;
    "192" = 2;
    "128" = 1;
    "0" = 0;
  };
  prefixLength = builtins.foldl' (
    acc: o:
    if maskBits ? ${o} then acc + maskBits.${o} else throw "centra-pxe-server: bad netmask ${cfg.dhcp.netmask}"
  ) 0 (octets cfg.dhcp.netmask);

  lowerHex = builtins.replaceStrings [ "A" "B" "C" "D" "E" "F" ] [ "a" "b" "c" "d" "e" "f" ];

  bootScriptUrl = "http://${cfg.serverAddress}:${toString cfg.httpPort}/boot/ipxe/boot.ipxe";

  # Option 77 (user class) is "iPXE" once iPXE runs; option 93 is the client architecture.
  isIpxe = "option[77].hex == 'iPXE'";

  optionData =
    [
      {
        name = "routers";
        data = cfg.dhcp.router;
      }
      {
        name = "broadcast-address";
        data = cfg.dhcp.broadcast;
      }
    ]
    ++ (
      if cfg.dhcp.domainNameServers == [ ] then
        [ ]
      else
        [
          {
            name = "domain-name-servers";
            data = builtins.concatStringsSep ", " cfg.dhcp.domainNameServers;
          }
        ]
    )
    ++ (
      if cfg.dhcp.domainName == null then
        [ ]
      else
        [
          {
            name = "domain-name";
            data = cfg.dhcp.domainName;
          }
        ]
    );

  reservation = mac: node: {
    hw-address = lowerHex mac;
    ip-address = node.ipAddress;
    hostname = node.hostname;
    option-data = [
      {
        name = "host-name";
        data = node.hostname;
      }
    ];
  };
in
{
  interfaces-config.interfaces = [ cfg.interface ];
  authoritative = true;
  valid-lifetime = cfg.dhcp.defaultLeaseTime;
  max-valid-lifetime = cfg.dhcp.maxLeaseTime;
  lease-database = {
    type = "memfile";
    persist = true;
    name = "/var/lib/kea/dhcp4.leases";
  };

  # Mutually exclusive classes, so exactly one boot file applies (runbook's if/elsif chain).
  client-classes = [
    {
      name = "ipxe";
      test = isIpxe;
      boot-file-name = bootScriptUrl;
    }
    {
      name = "bios";
      test = "not member('ipxe') and option[93].hex == 0x0000";
      boot-file-name = "undionly.kpxe";
    }
    {
      name = "uefi";
      test = "not member('ipxe') and (option[93].hex == 0x0007 or option[93].hex == 0x0009)";
      boot-file-name = "ipxe.efi";
    }
    {
      # Runbook: anything else falls back to UEFI.
      name = "fallback";
      test = "not member('ipxe') and not member('bios') and not member('uefi')";
      boot-file-name = "ipxe.efi";
    }
  ];

  subnet4 = [
    {
      id = 1;
      subnet = "${cfg.dhcp.subnet}/${toString prefixLength}";
      pools = [ { pool = "${cfg.dhcp.range.start} - ${cfg.dhcp.range.end}"; } ];
      next-server = cfg.serverAddress;
      option-data = optionData;
      reservations = builtins.attrValues (builtins.mapAttrs reservation cfg.nodes);
    }
  ];
}
