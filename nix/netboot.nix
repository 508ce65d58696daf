# Netboot installer image (the runbook's netboot-base.nix). One image per profile; the
# collector URL and boot MAC arrive on the kernel command line (set by the PXE server's
# boot.ipxe), so the same image serves every site and every machine.
{
  config,
  lib,
  pkgs,
  modulesPath,
  ...
}:
let
  cfg = config.plasmacloud.netboot;
  inherit (lib) mkOption types;
in
{
  # netboot-minimal keeps VARIANT_ID=installer in /etc/os-release, so nixos-anywhere installs
  # from the running image without a kexec.
  imports = [ "${modulesPath}/installer/netboot/netboot-minimal.nix" ];

  options.plasmacloud.netboot = {
    enable = lib.mkEnableOption "the PlasmaCloud netboot installer settings (SSH keys, hardware discovery)";

    profile = mkOption {
      type = types.str;
      default = "installer";
      example = "control-plane";
      description = "Profile this image is built for; names the output directory.";
    };

    sshAuthorizedKeys = mkOption {
      type = types.listOf types.str;
      example = [ "ssh-ed25519 AAAAC3Nza... provisioning@example.com" ];
      description = "Keys allowed to log in as root (nixos-anywhere); password login is off.";
    };

    package = lib.mkPackageOption pkgs "plasma-agent" { };

    collectorCaFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = lib.literalExpression "./secrets/ca-cert.pem";
      description = ''
        CA certificate (public) the image trusts for an https collector; copied into the
        image. `null` trusts the system roots only.
      '';
    };

    discover = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Post this machine's hardware to the collector named on the kernel command line.";
      };
      timeout = mkOption {
        type = types.ints.positive;
        default = 600;
        description = "Seconds `plasma-agent discover` keeps retrying before it gives up.";
      };
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.sshAuthorizedKeys != [ ];
        message = "plasmacloud.netboot.sshAuthorizedKeys is empty: nobody could install this machine.";
      }
    ];

    users.users.root.openssh.authorizedKeys.keys = cfg.sshAuthorizedKeys;
    services.openssh = {
      enable = true;
      settings = {
        PasswordAuthentication = false;
        KbdInteractiveAuthentication = false;
        PermitRootLogin = lib.mkForce "prohibit-password";
      };
    };

    systemd.services.plasmacloud-discover = lib.mkIf cfg.discover.enable {
      description = "Report this machine's hardware to the PlasmaCloud collector";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # `ipmitool lan print` through /dev/ipmi0 gives the BMC's address and MAC (enlistment).
      path = [ pkgs.ipmitool ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        # The IPMI device, where there is a BMC; "-": a machine without one is no failure
        # (systemd.service(5), ExecStart= prefixes).
        ExecStartPre = "-${pkgs.kmod}/bin/modprobe -a ipmi_si ipmi_devintf";
        # The agent retries on its own until the timeout; systemd only backs that deadline up.
        TimeoutStartSec = cfg.discover.timeout + 30;
        ExecStart = lib.concatStringsSep " " (
          [
            (lib.getExe' cfg.package "plasma-agent")
            "discover"
            "--collector-from-cmdline"
            "--timeout"
            (toString cfg.discover.timeout)
          ]
          ++ lib.optionals (cfg.collectorCaFile != null) [
            "--ca"
            "${cfg.collectorCaFile}"
          ]
        );
      };
    };

    # What the PXE server serves at /boot/nixos/<profile>/ (runbook 5.2).
    system.build.plasmacloudNetboot = pkgs.linkFarm "plasmacloud-netboot-${cfg.profile}" [
      {
        name = "bzImage";
        path = "${config.system.build.kernel}/${config.system.boot.loader.kernelFile}";
      }
      {
        name = "initrd";
        path = "${config.system.build.netbootRamdisk}/initrd";
      }
      {
        name = "netboot.ipxe";
        path = "${config.system.build.netbootIpxeScript}/netboot.ipxe";
      }
    ];
  };
}
