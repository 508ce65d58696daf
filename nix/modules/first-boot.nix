# First-boot automation (runbook 4.4, 8.3): one oneshot unit per Raft service that bootstraps
# or joins the cluster with `plasma-agent join`, once. The agent writes
# /var/lib/plasma-agent/<service>.joined when done; the unit's condition then skips it on every
# later boot, so a rebuilt or rebooted node never re-joins.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.first-boot-automation;
  inherit (lib) mkOption types;

  stateDir = "/var/lib/plasma-agent";

  # systemd must not kill the agent before its own deadlines (health wait, then the join).
  startTimeout = cfg.healthTimeout + cfg.joinTimeout + 60;

  # Shared by every unit: restart with backoff on temporary failures (exit 75), but not on a
  # configuration error (exit 2) that only the operator can fix; give up after a while.
  retry = {
    Restart = "on-failure";
    RestartSec = "10s";
    RestartSteps = 5;
    RestartMaxDelaySec = "2min";
    RestartPreventExitStatus = "2";
  };

  joinUnit = service: {
    name = "${service}-cluster-join";
    value = {
      description = "Join ${service} to the PlasmaCloud cluster (first boot)";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ] ++ lib.optional (service == "flaredb" && lib.elem "chainfire" cfg.services) "chainfire-cluster-join.service";
      requires = [ "${service}.service" ];
      # FlareDB points at Chainfire, so its join waits for Chainfire's.
      after = [
        "network-online.target"
        "${service}.service"
      ]
      ++ lib.optional (service == "flaredb" && lib.elem "chainfire" cfg.services) "chainfire-cluster-join.service";
      # A configuration switch must never re-run a join.
      restartIfChanged = false;
      startLimitIntervalSec = 3600;
      startLimitBurst = 10;
      unitConfig.ConditionPathExists = "!${stateDir}/${service}.joined";
      serviceConfig = retry // {
        Type = "oneshot";
        RemainAfterExit = true;
        StateDirectory = "plasma-agent";
        StateDirectoryMode = "0700";
        TimeoutStartSec = startTimeout;
        ExecStart = "${lib.getExe' cfg.package "plasma-agent"} join --config ${cfg.configFile} --service ${service} --state-dir ${stateDir}";
      };
    };
  };

  iamUnit = {
    description = "Wait for IAM to report a connected database (first boot)";
    wantedBy = [ "multi-user.target" ];
    wants = [ "network-online.target" ];
    requires = [ "iam.service" ];
    after = [
      "network-online.target"
      "iam.service"
    ]
    ++ lib.optional (lib.elem "flaredb" cfg.services) "flaredb-cluster-join.service";
    restartIfChanged = false;
    startLimitIntervalSec = 3600;
    startLimitBurst = 10;
    serviceConfig = retry // {
      Type = "oneshot";
      RemainAfterExit = true;
      StateDirectory = "plasma-agent";
      StateDirectoryMode = "0700";
      TimeoutStartSec = cfg.healthTimeout + 60;
      ExecStart = "${lib.getExe' cfg.package "plasma-agent"} wait-healthy --config ${cfg.configFile} --url ${cfg.iamHealthUrl} --expect database=connected";
    };
  };
in
{
  options.services.first-boot-automation = {
    enable = lib.mkEnableOption "first-boot bootstrap or join of Chainfire and FlareDB with plasma-agent";

    package = lib.mkPackageOption pkgs "plasma-agent" { };

    configFile = mkOption {
      type = types.path;
      example = "/etc/nixos/secrets/cluster-config.json";
      description = ''
        The node's cluster-config.json written by `plasmagen generate`. A string is used as a
        runtime path on the node (the file is copied there with nixos-anywhere --extra-files);
        a Nix path literal is copied into the store (the file holds no secrets, only paths).
      '';
    };

    services = mkOption {
      type = types.listOf (
        types.enum [
          "chainfire"
          "flaredb"
        ]
      );
      default = [
        "chainfire"
        "flaredb"
      ];
      description = ''
        Raft services to bootstrap or join; each needs an entry under `services` in
        cluster-config.json and its own `<service>.service` unit on the node. Produces
        `<service>-cluster-join.service` for each.
      '';
    };

    iamHealthUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://localhost:8080/health";
      description = ''
        When set (control-plane and all-in-one nodes), `iam-initial-health.service` waits after
        the FlareDB join until IAM at this URL reports `database=connected`.
      '';
    };

    healthTimeout = mkOption {
      type = types.ints.positive;
      default = 120;
      description = ''
        Seconds the agent may wait for the local service to become healthy. The agent's own
        deadline is `health_timeout_secs` in cluster-config.json; this sizes systemd's start
        timeout so systemd never kills the agent first. Keep it equal to the config's value.
      '';
    };

    joinTimeout = mkOption {
      type = types.ints.positive;
      default = 300;
      description = ''
        Seconds the agent may spend joining (`join_timeout_secs` in cluster-config.json); sizes
        systemd's start timeout together with `healthTimeout`.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.services != [ ];
        message = "services.first-boot-automation.services must name at least one service.";
      }
    ];

    systemd.services = lib.listToAttrs (map joinUnit cfg.services) // lib.optionalAttrs (cfg.iamHealthUrl != null) {
      iam-initial-health = iamUnit;
    };
  };
}
