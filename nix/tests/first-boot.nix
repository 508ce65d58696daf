# NixOS VM test of the first-boot units (needs Nix and KVM: `nix flake check` or
# `nix build .#checks.x86_64-linux.first-boot-vm`). chainfire/flaredb/iam are stand-ins
# served by admin-sim.py; the node is a joining (non-bootstrap) member.
{ pkgs, module }:
let
  sim = name: port: {
    description = "Admin-API simulator standing in for ${name}";
    wantedBy = [ "multi-user.target" ];
    serviceConfig.ExecStart = "${pkgs.python3}/bin/python3 ${./admin-sim.py} ${name} ${toString port}";
  };
  endpoint = port: {
    local_url = "http://127.0.0.1:${toString port}";
    join_urls = [ "http://127.0.0.1:${toString port}" ];
    raft_addr = "10.0.200.20:${toString (port + 1)}";
  };
  clusterConfig = {
    node_id = "node04";
    node_role = "control-plane";
    bootstrap = false;
    cluster_name = "vm-test";
    leader_url = "http://127.0.0.1:2379";
    raft_addr = "10.0.200.20:2380";
    services = {
      chainfire = endpoint 2379;
      flaredb = endpoint 2479;
    };
    # Plain http here: the agent does not need the TLS files.
    tls = {
      ca = "/etc/plasmacloud/ca-cert.pem";
      cert = "/etc/plasmacloud/node04-cert.pem";
      key = "/etc/plasmacloud/node04-key.pem";
    };
    collector_url = "http://127.0.0.1:8081";
    health_timeout_secs = 60;
    join_timeout_secs = 60;
  };
in
pkgs.testers.runNixOSTest {
  name = "plasmacloud-first-boot";

  nodes.machine = {
    imports = [ module ];
    environment.systemPackages = [ pkgs.curl ];
    environment.etc."plasmacloud/cluster-config.json".text = builtins.toJSON clusterConfig;

    systemd.services.chainfire = sim "chainfire" 2379;
    systemd.services.flaredb = sim "flaredb" 2479;
    systemd.services.iam = sim "iam" 8080;
    systemd.services.collector-sim = sim "collector" 8081;

    services.first-boot-automation = {
      enable = true;
      configFile = "/etc/plasmacloud/cluster-config.json";
      iamHealthUrl = "http://127.0.0.1:8080/health";
      healthTimeout = 60;
      joinTimeout = 60;
    };
  };

  testScript = ''
    import json

    def prop(unit, name):
        return machine.succeed(f"systemctl show -P {name} {unit}").strip()

    machine.wait_for_unit("chainfire-cluster-join.service")
    machine.wait_for_unit("flaredb-cluster-join.service")
    machine.wait_for_unit("iam-initial-health.service")
    machine.succeed("test -s /var/lib/plasma-agent/chainfire.joined")
    machine.succeed("test -s /var/lib/plasma-agent/flaredb.joined")

    want = lambda port: [{"id": "node04", "raft_addr": f"10.0.200.20:{port + 1}"}]
    for port in (2379, 2479):
        adds = json.loads(machine.succeed(f"curl -sf http://127.0.0.1:{port}/test/adds"))
        assert adds == want(port), adds

    # FlareDB's join starts only after Chainfire's has finished.
    chainfire_done = int(prop("chainfire-cluster-join.service", "ExecMainExitTimestampMonotonic"))
    flaredb_start = int(prop("flaredb-cluster-join.service", "ExecMainStartTimestampMonotonic"))
    assert flaredb_start >= chainfire_done, (chainfire_done, flaredb_start)

    # Progress reached the collector: both services ended as members of node04.
    reports = json.loads(machine.succeed("curl -sf http://127.0.0.1:8081/test/reports"))
    assert all(r["node_id"] == "node04" for r in reports), reports
    for service in ("chainfire", "flaredb"):
        assert any(r["service"] == service and r["phase"] == "joined" for r in reports), reports

    with subtest("the marker keeps a restarted unit from joining again"):
        machine.succeed("systemctl restart chainfire-cluster-join.service")
        assert prop("chainfire-cluster-join.service", "ConditionResult") == "no"
        adds = json.loads(machine.succeed("curl -sf http://127.0.0.1:2379/test/adds"))
        assert len(adds) == 1, adds

    with subtest("after a reboot the joins are skipped"):
        machine.shutdown()
        machine.start()
        machine.wait_for_unit("multi-user.target")
        for unit in ("chainfire-cluster-join.service", "flaredb-cluster-join.service"):
            assert prop(unit, "ConditionResult") == "no", unit
        for port in (2379, 2479):
            machine.wait_until_succeeds(f"curl -sf http://127.0.0.1:{port}/health")
            assert json.loads(machine.succeed(f"curl -sf http://127.0.0.1:{port}/test/adds")) == []

  '';
}
