# PXE boot server (runbook 5.1): Kea DHCPv4 with architecture-based boot files and per-node
# reservations, TFTP for the iPXE binaries, nginx on httpPort for /boot/ and /health, and the
# plasmagen collector that receives discovery and progress reports.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.centra-pxe-server;
  inherit (lib) mkOption types;

  bootScript = pkgs.writeText "boot.ipxe" (import ../lib/boot-ipxe.nix { inherit cfg; });

  # Copies, not symlinks: the TFTP root must not depend on how the server treats links.
  tftpRoot = pkgs.runCommand "centra-pxe-tftp" { } ''
    mkdir -p $out
    cp ${pkgs.ipxe}/undionly.kpxe ${pkgs.ipxe}/ipxe.efi $out/
  '';

  portOf = listen: lib.toInt (lib.last (lib.splitString ":" listen));
  collectorPort = portOf cfg.collector.listen;
  bootPort = if cfg.collector.bootListen == null then null else portOf cfg.collector.bootListen;

  healthDir = "/run/centra-pxe-health";
  watched = {
    dhcp = "kea-dhcp4-server.service";
    tftp = "atftpd.service";
    http = "nginx.service";
  }
  // lib.optionalAttrs cfg.collector.enable { collector = "plasmagen-collector.service"; };
  # Writes the runbook's /health document from the units' states; nginx serves the file.
  healthScript = pkgs.writeShellScript "centra-pxe-health" ''
    set -u
    status=healthy
    fields=""
    ${lib.concatStrings (
      lib.mapAttrsToList (key: unit: ''
        if ${pkgs.systemd}/bin/systemctl is-active --quiet ${unit}; then s=running; else s=stopped; status=degraded; fi
        fields="$fields''${fields:+,}\"${key}\":\"$s\""
      '') watched
    )}
    printf '{"status":"%s","services":{%s}}\n' "$status" "$fields" > ${healthDir}/health.json.tmp
    mv ${healthDir}/health.json.tmp ${healthDir}/health.json
  '';

  nodeModule = {
    options = {
      profile = mkOption {
        type = types.str;
        example = "control-plane";
        description = "Netboot profile the machine boots (a key of `netbootImages` or a directory under `bootDir`/nixos).";
      };
      hostname = mkOption {
        type = types.str;
        example = "node01";
        description = "Host name handed out with the reservation (DHCP option 12).";
      };
      ipAddress = mkOption {
        type = types.str;
        example = "10.0.100.50";
        description = "Reserved provisioning-network address.";
      };
    };
  };
in
{
  options.services.centra-pxe-server = {
    enable = lib.mkEnableOption "the PlasmaCloud PXE boot server (Kea DHCP, TFTP, HTTP, collector)";

    interface = mkOption {
      type = types.str;
      example = "eth0";
      description = "Interface on the provisioning network; DHCP and the firewall openings are limited to it.";
    };

    serverAddress = mkOption {
      type = types.str;
      example = "10.0.100.10";
      description = "This server's address on the provisioning network (next-server, boot URLs).";
    };

    httpPort = mkOption {
      type = types.port;
      default = 8080;
      description = "Port of the HTTP boot server (`/boot/`, `/health`).";
    };

    dhcp = {
      subnet = mkOption {
        type = types.str;
        example = "10.0.100.0";
        description = "Provisioning subnet address.";
      };
      netmask = mkOption {
        type = types.str;
        example = "255.255.255.0";
        description = "Provisioning subnet mask (dotted quad).";
      };
      broadcast = mkOption {
        type = types.str;
        example = "10.0.100.255";
        description = "Broadcast address handed to clients.";
      };
      range = {
        start = mkOption {
          type = types.str;
          example = "10.0.100.100";
          description = "First address of the dynamic pool.";
        };
        end = mkOption {
          type = types.str;
          example = "10.0.100.200";
          description = "Last address of the dynamic pool.";
        };
      };
      router = mkOption {
        type = types.str;
        example = "10.0.100.1";
        description = "Default gateway handed to clients.";
      };
      domainNameServers = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [
          "10.0.100.1"
          "8.8.8.8"
        ];
        description = "DNS servers handed to clients.";
      };
      domainName = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "prov.example.com";
        description = "Domain name handed to clients (option 15).";
      };
      defaultLeaseTime = mkOption {
        type = types.ints.positive;
        default = 600;
        description = "Lease time in seconds.";
      };
      maxLeaseTime = mkOption {
        type = types.ints.positive;
        default = 7200;
        description = "Longest lease in seconds a client may ask for.";
      };
    };

    nodes = mkOption {
      type = types.attrsOf (types.submodule nodeModule);
      default = { };
      example = {
        "52:54:00:12:34:56" = {
          profile = "control-plane";
          hostname = "node01";
          ipAddress = "10.0.100.50";
        };
      };
      description = "Known machines by MAC: DHCP reservation and netboot profile.";
    };

    defaultProfile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "worker";
      description = ''
        Netboot profile for machines not listed in `nodes`, so they boot the installer and
        report their hardware to the collector. `null` sends unknown machines on to their next
        boot device.
      '';
    };

    ipxeDir = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = lib.literalExpression "./pxe";
      description = ''
        Directory of ready-made iPXE scripts (plasmagen's PXE output: `boot.ipxe`,
        `nodes/<mac>.ipxe`, `discovery.ipxe`), served at `/boot/ipxe/`. When set, its
        `boot.ipxe` replaces the one this module writes from `nodes`; DHCP is unchanged.
      '';
    };

    macScriptsDir = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/srv/provisioning/out/pxe/mac";
      description = ''
        Directory of per-machine iPXE scripts named `<mac>.ipxe` (lower-case, colon-separated,
        as iPXE prints `''${netX/mac}`), served at `/boot/mac/`. boot.ipxe chains a machine's
        script first and falls back to the selection by `nodes` when there is none.
      '';
    };

    macScriptsUrl = mkOption {
      type = types.nullOr types.str;
      default =
        if cfg.collector.enable && bootPort != null then
          "http://${cfg.serverAddress}:${toString bootPort}/boot"
        else if cfg.macScriptsDir != null then
          "http://${cfg.serverAddress}:${toString cfg.httpPort}/boot/mac"
        else
          null;
      defaultText = lib.literalExpression ''
        the collector's boot listener (http://''${serverAddress}:<port of collector.bootListen>/boot)
        when the collector runs with one, else http://''${serverAddress}:''${httpPort}/boot/mac
        when macScriptsDir is set, else null
      '';
      description = ''
        Base URL of per-machine iPXE scripts (`<url>/<mac>.ipxe`), tried before the selection by
        `nodes`. Must be plain http unless iPXE trusts the server's CA.
      '';
    };

    bootDir = mkOption {
      type = types.str;
      default = "/var/lib/pxe-boot";
      description = ''
        Directory served under `/boot/`; netboot images copied by hand go to
        `<bootDir>/nixos/<profile>/` (runbook 5.2). Images in `netbootImages` take precedence.
      '';
    };

    netbootImages = mkOption {
      type = types.attrsOf types.package;
      default = { };
      example = lib.literalExpression ''{ control-plane = self.packages.x86_64-linux.netboot-control-plane; }'';
      description = ''
        Netboot images by profile, each a directory with `bzImage`, `initrd` and `netboot.ipxe`
        (`config.system.build.plasmacloudNetboot` of an image built with the netboot module),
        served at `/boot/nixos/<profile>/`.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Open DHCP, TFTP, HTTP and the collector's port on `interface`.";
    };

    collector = {
      enable = lib.mkEnableOption "the plasmagen collector (discovery and progress reports)";

      package = lib.mkPackageOption pkgs "plasmagen" { };

      listen = mkOption {
        type = types.str;
        default = "0.0.0.0:8443";
        description = "Address and port of the collector's HTTPS API (`--listen`).";
      };

      bootListen = mkOption {
        type = types.nullOr types.str;
        default = "0.0.0.0:8081";
        description = ''
          Address and port of the collector's plain-HTTP boot listener (`--boot-listen`), which
          answers `GET /boot/<mac>.ipxe` by install state (local boot once installed). boot.ipxe
          chains it first (see `macScriptsUrl`). `null` turns it off.
        '';
      };

      url = mkOption {
        type = types.str;
        default = "https://${cfg.serverAddress}:${toString collectorPort}";
        defaultText = lib.literalExpression ''"https://''${serverAddress}:<port of listen>"'';
        description = ''
          Collector URL given to netbooted machines on the kernel command line
          (`plasmacloud.collector=`); the netboot image must trust its CA
          (`plasmacloud.netboot.collectorCaFile`) when it is https.
        '';
      };

      dbPath = mkOption {
        type = types.str;
        default = "/var/lib/plasmagen-collector/collector.db";
        description = ''
          SQLite database of received reports (`--db`). The service runs as a dynamic user
          that can only write under /var/lib/plasmagen-collector.
        '';
      };

      inventoryFile = mkOption {
        type = types.path;
        example = "/srv/provisioning/inventory.toml";
        description = "The fleet inventory the collector checks reports against (`--inventory`).";
      };

      secretsDir = mkOption {
        type = types.str;
        example = "/srv/provisioning/out/secrets";
        description = ''
          The generated secrets directory. A runtime path, never copied to the store; systemd
          hands the collector `pxe-server/pxe-server-{cert,key}.pem` and `ca/ca-cert.pem` from
          it as credentials, so it may stay readable by root only.
        '';
      };

      extraArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Further arguments for `plasmagen collector`.";
      };
    };
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        services.kea.dhcp4 = {
          enable = true;
          settings = import ../lib/kea-dhcp4.nix { inherit cfg; };
        };

        services.atftpd = {
          enable = true;
          root = "${tftpRoot}";
          extraOptions = [ "--bind-address ${cfg.serverAddress}" ];
        };

        services.nginx = {
          enable = true;
          virtualHosts.centra-pxe = {
            default = true;
            listen = [
              {
                addr = "0.0.0.0";
                port = cfg.httpPort;
              }
            ];
            locations = {
              "= /health" = {
                alias = "${healthDir}/health.json";
                extraConfig = "default_type application/json;";
              };
              "/boot/".alias = "${cfg.bootDir}/";
            }
            // (
              if cfg.ipxeDir == null then
                { "= /boot/ipxe/boot.ipxe".alias = "${bootScript}"; }
              else
                { "/boot/ipxe/".alias = "${cfg.ipxeDir}/"; }
            )
            // lib.optionalAttrs (cfg.macScriptsDir != null) {
              "/boot/mac/".alias = "${cfg.macScriptsDir}/";
            }
            // lib.mapAttrs' (
              profile: image: lib.nameValuePair "/boot/nixos/${profile}/" { alias = "${image}/"; }
            ) cfg.netbootImages;
          };
        };

        systemd.tmpfiles.rules = [
          "d ${cfg.bootDir} 0755 root root -"
          "d ${cfg.bootDir}/nixos 0755 root root -"
        ];

        systemd.services.centra-pxe-health = {
          description = "Write the PXE server's /health document";
          after = lib.attrValues watched;
          serviceConfig = {
            Type = "oneshot";
            ExecStart = healthScript;
            RuntimeDirectory = "centra-pxe-health";
            RuntimeDirectoryMode = "0755";
            RuntimeDirectoryPreserve = "yes";
            UMask = "0022";
          };
        };
        systemd.timers.centra-pxe-health = {
          wantedBy = [ "timers.target" ];
          timerConfig = {
            OnActiveSec = "5s";
            OnUnitActiveSec = "15s";
          };
        };

        networking.firewall.interfaces.${cfg.interface} = lib.mkIf cfg.openFirewall {
          allowedUDPPorts = [
            67
            69
          ];
          allowedTCPPorts = [
            cfg.httpPort
          ]
          ++ lib.optionals cfg.collector.enable ([ collectorPort ] ++ lib.optional (bootPort != null) bootPort);
        };
      }

      (lib.mkIf cfg.collector.enable {
        systemd.services.plasmagen-collector = {
          description = "PlasmaCloud collector (discovery and progress reports)";
          wantedBy = [ "multi-user.target" ];
          after = [ "network.target" ];
          serviceConfig = {
            ExecStart = lib.escapeShellArgs (
              [
                (lib.getExe' cfg.collector.package "plasmagen")
                "collector"
                "--listen"
                cfg.collector.listen
                "--db"
                cfg.collector.dbPath
                "--inventory"
                "${cfg.collector.inventoryFile}"
                # %d: systemd's credentials directory (LoadCredential below).
                "--tls-cert"
                "%d/tls-cert"
                "--tls-key"
                "%d/tls-key"
                "--client-ca"
                "%d/client-ca"
              ]
              ++ lib.optionals (cfg.collector.bootListen != null) [
                "--boot-listen"
                cfg.collector.bootListen
              ]
              ++ cfg.collector.extraArgs
            );
            # systemd reads the key as root and gives the unprivileged service a private copy.
            LoadCredential = [
              "tls-cert:${cfg.collector.secretsDir}/pxe-server/pxe-server-cert.pem"
              "tls-key:${cfg.collector.secretsDir}/pxe-server/pxe-server-key.pem"
              "client-ca:${cfg.collector.secretsDir}/ca/ca-cert.pem"
            ];
            DynamicUser = true;
            StateDirectory = "plasmagen-collector";
            StateDirectoryMode = "0750";
            Restart = "on-failure";
            RestartSec = "5s";
            # Every connection is a file: soft = hard = 524288, systemd's own default hard limit
            # (systemd.exec(5) advises against lowering it), whatever the host's
            # DefaultLimitNOFILE. The collector raises its soft limit to the hard one itself;
            # its connection caps (512 API + 256 boot) fit far below.
            LimitNOFILE = 524288;
            NoNewPrivileges = true;
            ProtectSystem = "strict";
            ProtectHome = true;
            PrivateTmp = true;
          };
        };
      })
    ]
  );
}
