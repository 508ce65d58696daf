//! Generated Nix checked by its values with the real evaluator (Debian's nix-bin), with stub
//! module arguments: hostnames, addresses, services, bootstrap flags and disk layouts must match
//! the inventory.

mod common;

use std::path::Path;

use common::{files_under, generate, nix_eval, repo_root, require_tool};
use plasmagen::inventory;
use serde_json::{Value, json};

const STUB_LIB: &str = r#"{
  optional = c: x: if c then [ x ] else [ ];
  optionalAttrs = c: a: if c then a else { };
  mkDefault = x: x;
  mkIf = c: x: x;
}"#;

fn node_values(flake: &Path, fqdn: &str) -> Value {
    let expr = format!(
        r#"let
  lib = {STUB_LIB};
  conf = import ./nodes/{fqdn}/configuration.nix {{ config = {{ }}; pkgs = {{ }}; inherit lib; }};
  hw = import ./nodes/{fqdn}/hardware.nix {{ inherit lib; modulesPath = "/modules"; }};
in {{
  imports = map toString conf.imports;
  networking = conf.networking;
  services = builtins.removeAttrs conf.services [ "first-boot-automation" ];
  firstBoot = conf.services.first-boot-automation;
  etcSource = toString conf.environment.etc."plasmacloud/cluster-config.json".source;
  keys = conf.users.users.root.openssh.authorizedKeys.keys;
  stateVersion = conf.system.stateVersion;
  hwImports = map toString hw.imports;
  hwFacter = hw ? hardware;
  disko = (import ./nodes/{fqdn}/disko.nix {{ }}).disko.devices;
}}"#
    );
    nix_eval(flake, &expr)
}

#[test]
fn every_generated_nix_file_parses_with_nix_instantiate() {
    require_tool("nix-instantiate", "nix-bin");
    for case in ["runbook", "layouts"] {
        let out = tempfile::tempdir().unwrap();
        generate(
            &repo_root().join(format!("tests/cases/{case}/inventory.toml")),
            out.path(),
        );
        let flake = out.path().join("flake");
        let nix_files: Vec<_> = files_under(&flake)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "nix"))
            .collect();
        assert!(
            nix_files.len() > 10,
            "{case}: only {} .nix files",
            nix_files.len()
        );
        for rel in nix_files {
            let o = std::process::Command::new("nix-instantiate")
                .arg("--parse")
                .arg(flake.join(&rel))
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{case}: {} does not parse: {}",
                rel.display(),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

#[test]
fn node_configurations_match_the_inventory() {
    let inv_path = repo_root().join("examples/runbook.toml");
    let inv = inventory::load(&inv_path).unwrap().inventory;
    let out = tempfile::tempdir().unwrap();
    generate(&inv_path, out.path());
    let flake = out.path().join("flake");
    for node in &inv.nodes {
        let fqdn = inv.fqdn(node);
        let v = node_values(&flake, &fqdn);
        let net = &v["networking"];
        assert_eq!(net["hostName"], json!(node.hostname), "{fqdn}");
        assert_eq!(net["domain"], json!("example.com"));
        assert_eq!(net["usePredictableInterfaceNames"], json!(false));
        assert_eq!(
            net["interfaces"]["eth0"]["ipv4"]["addresses"][0],
            json!({"address": node.provisioning_ip.to_string(), "prefixLength": 24})
        );
        assert_eq!(
            net["interfaces"]["eth1"]["ipv4"]["addresses"][0],
            json!({"address": node.production_ip.to_string(), "prefixLength": 24})
        );
        assert_eq!(net["defaultGateway"], json!("10.0.200.1"));
        assert_eq!(net["nameservers"], json!(["10.0.200.1", "8.8.8.8"]));

        let role = node.role.as_str();
        let imports: Vec<String> = serde_json::from_value(v["imports"].clone()).unwrap();
        assert!(
            imports[0].ends_with(&format!("/profiles/{role}.nix")),
            "{imports:?}"
        );
        assert!(imports.iter().any(|i| i.ends_with("/disko.nix")));

        let services = v["services"].as_object().unwrap();
        let cp = node.role.is_control_plane();
        assert_eq!(services.contains_key("flaredb"), cp, "{fqdn} flaredb");
        assert_eq!(services.contains_key("iam"), cp, "{fqdn} iam");
        let cf = &services["chainfire"];
        assert_eq!(cf["port"], json!(2379));
        assert_eq!(cf["raftPort"], json!(2380));
        assert_eq!(cf["gossipPort"], json!(2381));
        assert_eq!(cf["settings"]["node_id"], json!(node.hostname));
        assert_eq!(cf["settings"]["cluster_name"], json!("prod-cluster"));
        assert_eq!(
            cf["settings"]["tls"]["key_path"],
            json!(format!("/etc/nixos/secrets/{}-key.pem", node.hostname))
        );

        let fb = &v["firstBoot"];
        assert_eq!(fb["enable"], json!(true));
        assert_eq!(
            fb["configFile"],
            json!("/etc/plasmacloud/cluster-config.json")
        );
        let expected_services = if cp {
            json!(["chainfire", "flaredb"])
        } else {
            json!(["chainfire"])
        };
        assert_eq!(fb["services"], expected_services);
        assert_eq!(fb.get("iamHealthUrl").is_some(), cp);
        assert!(
            v["etcSource"]
                .as_str()
                .unwrap()
                .ends_with(&format!("nodes/{fqdn}/cluster-config.json"))
        );
        assert_eq!(v["keys"], json!(inv.cluster.ssh_authorized_keys));
        assert_eq!(v["stateVersion"], json!("24.11"));
        // No facter.json yet: the placeholder must not reference the facter option.
        assert_eq!(v["hwFacter"], json!(false));

        let disk = &v["disko"]["disk"]["main"];
        assert_eq!(disk["device"], json!("/dev/sda"));
        let parts = &disk["content"]["partitions"];
        assert_eq!(parts["ESP"]["size"], json!("1G"));
        assert_eq!(parts["ESP"]["type"], json!("EF00"));
        assert_eq!(parts["ESP"]["content"]["mountpoint"], json!("/boot"));
        assert_eq!(parts["root"]["size"], json!("100%"));
        assert_eq!(parts["root"]["content"]["format"], json!("ext4"));

        // cluster-config.json: runbook fields with the runbook's meaning.
        let cc: Value = serde_json::from_slice(
            &std::fs::read(flake.join(format!("nodes/{fqdn}/cluster-config.json"))).unwrap(),
        )
        .unwrap();
        let bootstrap = inv.cluster.bootstrap.contains(&node.hostname);
        assert_eq!(cc["bootstrap"], json!(bootstrap), "{fqdn}");
        assert_eq!(cc["node_role"], json!(role));
        assert_eq!(
            cc["raft_addr"],
            json!(format!("{}:2380", node.production_ip))
        );
        assert_eq!(cc["leader_url"], json!("https://node01.example.com:2379"));
        if bootstrap {
            assert_eq!(
                cc["initial_peers"],
                json!([
                    "node01.example.com:2380",
                    "node02.example.com:2380",
                    "node03.example.com:2380"
                ])
            );
            assert_eq!(
                cc["flaredb_peers"],
                json!([
                    "node01.example.com:2480",
                    "node02.example.com:2480",
                    "node03.example.com:2480"
                ])
            );
        } else {
            assert_eq!(cc["initial_peers"], json!([]));
        }
        assert_eq!(
            cc["services"]["chainfire"]["join_urls"],
            json!([
                "https://10.0.200.10:2379",
                "https://10.0.200.11:2379",
                "https://10.0.200.12:2379"
            ])
        );
        assert_eq!(
            cc["services"]["chainfire"]["raft_addr"],
            json!(format!("{}:2380", node.production_ip))
        );
        assert_eq!(cc["services"].get("flaredb").is_some(), cp);
        // The agent's own parser accepts it.
        let parsed: plasma_wire::ClusterConfig = serde_json::from_value(cc).unwrap();
        assert_eq!(parsed.node_id, node.hostname);
    }
}

#[test]
fn raid1_and_luks_layouts_follow_diskos_schema() {
    let out = tempfile::tempdir().unwrap();
    generate(
        &repo_root().join("tests/cases/layouts/inventory.toml"),
        out.path(),
    );
    let flake = out.path().join("flake");

    let raid = node_values(&flake, "aio1.lab.example.org");
    let disks = raid["disko"]["disk"].as_object().unwrap();
    assert_eq!(disks.len(), 2);
    assert_eq!(
        disks["disk0"]["device"],
        json!("/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64ANS0T111111")
    );
    assert_eq!(
        disks["disk1"]["device"],
        json!("/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64ANS0T222222")
    );
    for d in disks.values() {
        let p = &d["content"]["partitions"];
        assert_eq!(
            p["ESP"]["content"],
            json!({"type": "mdraid", "name": "boot"})
        );
        assert_eq!(
            p["root"]["content"],
            json!({"type": "mdraid", "name": "root"})
        );
    }
    let md = &raid["disko"]["mdadm"];
    assert_eq!(md["boot"]["level"], json!(1));
    assert_eq!(md["boot"]["metadata"], json!("1.0"));
    assert_eq!(md["boot"]["content"]["mountpoint"], json!("/boot"));
    assert_eq!(md["root"]["content"]["mountpoint"], json!("/"));
    // all-in-one runs every service and joins both Raft clusters.
    assert_eq!(
        raid["firstBoot"]["services"],
        json!(["chainfire", "flaredb"])
    );
    assert!(raid["services"].get("iam").is_some());

    let luks = node_values(&flake, "secure1.lab.example.org");
    let main = &luks["disko"]["disk"]["main"];
    let part = &main["content"]["partitions"]["luks"]["content"];
    assert_eq!(part["type"], json!("luks"));
    assert_eq!(part["passwordFile"], json!("/tmp/secret.key"));
    assert_eq!(part["content"], json!({"type": "lvm_pv", "vg": "pool"}));
    assert_eq!(
        luks["disko"]["lvm_vg"]["pool"]["lvs"]["root"]["content"]["mountpoint"],
        json!("/")
    );

    // Every partition size is in disko's accepted syntax.
    let sizes = [
        main["content"]["partitions"]["ESP"]["size"]
            .as_str()
            .unwrap(),
        main["content"]["partitions"]["luks"]["size"]
            .as_str()
            .unwrap(),
    ];
    for s in sizes {
        let ok = s == "100%"
            || (s[..s.len() - 1].bytes().all(|b| b.is_ascii_digit())
                && "KMGTP".contains(&s[s.len() - 1..]));
        assert!(ok, "size {s:?} is not disko syntax");
    }
}

#[test]
fn flake_outputs_cover_every_node_and_profile() {
    let out = tempfile::tempdir().unwrap();
    generate(
        &repo_root().join("tests/cases/layouts/inventory.toml"),
        out.path(),
    );
    let flake = out.path().join("flake");
    // Stub the inputs: nixosSystem returns its arguments so the module lists can be inspected.
    let v = nix_eval(
        &flake,
        r#"let
  f = import ./flake.nix;
  stubSystem = args: args // { config.system.build = { kernel = "k"; netbootRamdisk = "i"; netbootIpxeScript = "s"; }; };
  nixpkgs = { lib.nixosSystem = stubSystem; legacyPackages.x86_64-linux.symlinkJoin = a: a; };
  mod = name: { nixosModules = { first-boot = "fb"; netboot = "nb"; pxe-server = "pxe"; default = "svc"; }; };
  o = f.outputs { self = o; inherit nixpkgs; disko = { nixosModules.disko = "disko"; }; plasmacloud-provisioning = mod "p"; plasmacloud-services = mod "s"; };
in {
  inputs = builtins.mapAttrs (n: i: if i ? url then i.url else i) f.inputs;
  nodes = builtins.attrNames o.nixosConfigurations;
  aio1 = map toString o.nixosConfigurations.aio1.modules;
  packages = builtins.attrNames o.packages.x86_64-linux;
  netboot = o.packages.x86_64-linux.netboot-worker.name;
}"#,
    );
    assert_eq!(
        v["inputs"]["nixpkgs"],
        json!("github:NixOS/nixpkgs/nixos-25.05")
    );
    assert_eq!(
        v["inputs"]["plasmacloud-services"],
        json!("git+https://git.example.org/plasmacloud/services?ref=main")
    );
    assert_eq!(v["inputs"]["disko"], json!("github:nix-community/disko"));
    assert_eq!(v["nodes"], json!(["aio1", "pxe-server", "secure1"]));
    let mods = v["aio1"].as_array().unwrap();
    assert_eq!(mods[0], json!("disko"));
    assert_eq!(mods[1], json!("fb"));
    assert_eq!(mods[2], json!("svc"));
    assert!(
        mods[3]
            .as_str()
            .unwrap()
            .ends_with("nodes/aio1.lab.example.org/configuration.nix")
    );
    assert_eq!(
        v["packages"],
        json!([
            "netboot-all-in-one",
            "netboot-control-plane",
            "netboot-worker"
        ])
    );
    assert_eq!(v["netboot"], json!("netboot-worker"));
}
