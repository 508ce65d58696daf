//! Generated Nix checked by its values with the real evaluator (Debian's nix-bin), with stub
//! module arguments: hostnames, addresses, services, bootstrap flags and disk layouts must match
//! the inventory.

mod common;

use std::path::Path;

use common::{files_under, generate, nix_eval, repo_root, require_tool};
use plasmagen::inventory;
use serde_json::{Value, json};

/// The node's configuration.nix and hardware.nix imported as NixOS imports modules
/// (nix/tests/as-module.nix), plus its network.nix settings.
fn node_values(flake: &Path, fqdn: &str) -> Value {
    let harness = repo_root().join("nix/tests/as-module.nix");
    let expr = format!(
        r#"let
  m = file: import {harness} {{ path = ./nodes/{fqdn} + "/${{file}}"; }};
  conf = m "configuration.nix";
  c = conf.config;
  hw = m "hardware.nix";
in {{
  imports = conf.imports;
  networking = (m "network.nix").config.networking;
  services = builtins.removeAttrs c.services [ "first-boot-automation" ];
  firstBoot = c.services.first-boot-automation;
  etcSource = toString c.environment.etc."plasmacloud/cluster-config.json".source;
  keys = c.users.users.root.openssh.authorizedKeys.keys;
  stateVersion = c.system.stateVersion;
  hwImports = hw.imports;
  hwFacter = hw.config ? hardware;
  disko = (m "disko.nix").config.disko.devices;
}}"#,
        harness = harness.display()
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
        // NICs by MAC (nix_modules.rs checks the networkd units); names never matter.
        assert!(net.get("usePredictableInterfaceNames").is_none());
        assert!(net.get("interfaces").is_none());
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
        assert_eq!(v["stateVersion"], json!("26.05"));
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
  stubSystem = args: args // { config.system.build = { plasmacloudNetboot = "netboot-dir"; toplevel = "toplevel"; diskoScript = "disko-script"; }; };
  lib = {
    nixosSystem = stubSystem;
    genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    mapAttrs = builtins.mapAttrs;
    nameValuePair = name: value: { inherit name value; };
    mapAttrs' = f: set: builtins.listToAttrs (map (n: f n set.${n}) (builtins.attrNames set));
  };
  nixpkgs = { inherit lib; };
  mod = name: { nixosModules = { first-boot = "fb"; netboot = "nb"; pxe-server = "pxe"; default = "svc"; }; };
  o = f.outputs { self = o; inherit nixpkgs; disko = { nixosModules.disko = "disko"; }; plasmacloud-provisioning = mod "p"; plasmacloud-services = mod "s"; };
in {
  inputs = builtins.mapAttrs (n: i: if i ? url then i.url else i) f.inputs;
  nodes = builtins.attrNames o.nixosConfigurations;
  aio1 = map toString o.nixosConfigurations.aio1.modules;
  packages = builtins.attrNames o.packages.x86_64-linux;
  netboot = o.packages.x86_64-linux.netboot-worker;
  checks = o.checks.x86_64-linux;
  pxeImports = map (m: if builtins.isAttrs m then "inline" else toString m) o.nixosModules.pxe-server.imports;
  pxeImages = (builtins.elemAt o.nixosModules.pxe-server.imports 2).services.centra-pxe-server.netbootImages;
}"#,
    );
    assert_eq!(
        v["inputs"]["nixpkgs"],
        json!("github:NixOS/nixpkgs/nixos-25.11")
    );
    assert_eq!(
        v["inputs"]["plasmacloud-services"],
        json!("git+https://git.example.org/plasmacloud/services?ref=main")
    );
    assert_eq!(v["inputs"]["disko"], json!("github:nix-community/disko"));
    // The PXE server is a module for the operator's host, not a half system that cannot evaluate.
    assert_eq!(v["nodes"], json!(["aio1", "secure1"]));
    assert_eq!(v["pxeImports"][0], json!("pxe"));
    assert!(
        v["pxeImports"][1]
            .as_str()
            .unwrap()
            .ends_with("/pxe-server.nix")
    );
    assert_eq!(v["pxeImages"]["worker"], json!("netboot-dir"));
    // `nix flake check` evaluates every node's system and disko script.
    assert_eq!(
        v["checks"],
        json!({"aio1": "toplevel", "aio1-disko": "disko-script", "secure1": "toplevel", "secure1-disko": "disko-script"})
    );
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
    // The image is the netboot module's own directory (bzImage, initrd, netboot.ipxe).
    assert_eq!(v["netboot"], json!("netboot-dir"));
}
