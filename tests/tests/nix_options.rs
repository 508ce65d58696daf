//! The options our modules declare, read with rnix (tests/src/nixopts.rs), and the check the
//! generator's tests use: every option a configuration sets is declared.

mod nix_support;

use std::collections::BTreeSet;

use plasma_tests::nixopts::{self, declared_options, is_declared};

fn set(prefix: &str, names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| format!("{prefix}.{n}")).collect()
}

#[test]
fn first_boot_options() {
    let got = declared_options(nix_support::repo().join("nix/modules/first-boot.nix"));
    let want = set(
        "services.first-boot-automation",
        &[
            "enable",
            "package",
            "configFile",
            "services",
            "iamHealthUrl",
            "healthTimeout",
            "joinTimeout",
        ],
    );
    assert_eq!(got, want);
}

#[test]
fn pxe_server_options() {
    let got = declared_options(nix_support::repo().join("nix/modules/pxe-server.nix"));
    let want = set(
        "services.centra-pxe-server",
        &[
            "enable",
            "interface",
            "serverAddress",
            "httpPort",
            "dhcp.subnet",
            "dhcp.netmask",
            "dhcp.broadcast",
            "dhcp.range.start",
            "dhcp.range.end",
            "dhcp.router",
            "dhcp.domainNameServers",
            "dhcp.domainName",
            "dhcp.defaultLeaseTime",
            "dhcp.maxLeaseTime",
            "nodes",
            "nodes.<name>.profile",
            "nodes.<name>.hostname",
            "nodes.<name>.ipAddress",
            "defaultProfile",
            "ipxeDir",
            "macScriptsDir",
            "macScriptsUrl",
            "bootDir",
            "netbootImages",
            "openFirewall",
            "collector.enable",
            "collector.package",
            "collector.listen",
            "collector.bootListen",
            "collector.url",
            "collector.dbPath",
            "collector.inventoryFile",
            "collector.secretsDir",
            "collector.extraArgs",
        ],
    );
    assert_eq!(got, want);
}

#[test]
fn netboot_options() {
    let got = declared_options(nix_support::repo().join("nix/netboot.nix"));
    let want = set(
        "plasmacloud.netboot",
        &[
            "enable",
            "profile",
            "sshAuthorizedKeys",
            "package",
            "collectorCaFile",
            "discover.enable",
            "discover.timeout",
        ],
    );
    assert_eq!(got, want);
}

/// rnix's reading agrees with evaluation: the option tree the stub evaluator builds from the
/// module has exactly the non-submodule options rnix found.
#[test]
fn rnix_reading_matches_evaluation() {
    let repo = nix_support::repo();
    for module in ["nix/modules/first-boot.nix", "nix/modules/pxe-server.nix"] {
        let expr = format!(
            r#"let
              m = import {repo}/{module} {{ config = {{}}; lib = import {repo}/nix/tests/stub-lib.nix; pkgs = import {repo}/nix/tests/stub-pkgs.nix; }};
              walk = prefix: a: builtins.concatLists (map (n:
                let v = a.${{n}}; p = if prefix == "" then n else "${{prefix}}.${{n}}"; in
                if (v._type or null) == "option" then [ p ] else walk p v) (builtins.attrNames a));
            in walk "" m.options"#,
            repo = repo.display(),
        );
        let evaluated: BTreeSet<String> =
            serde_json::from_value(nix_support::eval_json(&expr).unwrap()).unwrap();
        let read: BTreeSet<String> = declared_options(repo.join(module))
            .into_iter()
            .filter(|o| !o.contains("<name>"))
            .collect();
        assert_eq!(read, evaluated, "{module}");
    }
}

/// The runbook's own pxe-server.nix (5.1 Step 1.1) sets only declared options; a typo would
/// be reported.
#[test]
fn runbook_pxe_server_configuration_is_covered() {
    let declared = declared_options(nix_support::repo().join("nix/modules/pxe-server.nix"));
    let runbook = r#"
{ config, pkgs, lib, ... }:
{
  imports = [ /path/to/chainfire/baremetal/pxe-server/nixos-module.nix ];
  services.centra-pxe-server = {
    enable = true;
    interface = "eth0";
    serverAddress = "10.0.100.10";
    dhcp = {
      subnet = "10.0.100.0";
      netmask = "255.255.255.0";
      broadcast = "10.0.100.255";
      range = {
        start = "10.0.100.100";
        end = "10.0.100.200";
      };
      router = "10.0.100.1";
      domainNameServers = [ "10.0.100.1" "8.8.8.8" ];
    };
    nodes = {
      "52:54:00:12:34:56" = { profile = "control-plane"; hostname = "node01"; ipAddress = "10.0.100.50"; };
      "52:54:00:12:34:57" = { profile = "control-plane"; hostname = "node02"; ipAddress = "10.0.100.51"; };
    };
    collector = { enable = true; inventoryFile = "/srv/inventory.toml"; secretsDir = "/srv/secrets"; };
  };
}"#;
    let root = nixopts::parse_text(runbook, "pxe-server.nix").unwrap();
    let assigned = nixopts::assigned_option_paths(&root, "services.centra-pxe-server");
    assert_eq!(assigned.len(), 19, "{assigned:?}");
    assert_eq!(
        nixopts::undeclared(&declared, &root, "services.centra-pxe-server"),
        Vec::<String>::new()
    );

    let typo = runbook.replace("ipAddress = \"10.0.100.51\"", "ipAdress = \"10.0.100.51\"");
    let root = nixopts::parse_text(&typo, "typo.nix").unwrap();
    assert_eq!(
        nixopts::undeclared(&declared, &root, "services.centra-pxe-server"),
        ["services.centra-pxe-server.nodes.52:54:00:12:34:57.ipAdress"]
    );
}

/// The shape the generated node configuration uses (templates/flake/configuration.nix).
#[test]
fn generated_first_boot_block_is_covered() {
    let declared = declared_options(nix_support::repo().join("nix/modules/first-boot.nix"));
    let text = r#"{ ... }: {
      services.first-boot-automation = {
        enable = true;
        configFile = "/etc/plasmacloud/cluster-config.json";
        services = [ "chainfire" "flaredb" ];
        iamHealthUrl = "https://localhost:8080/health";
        healthTimeout = 120;
        joinTimeout = 300;
      };
    }"#;
    let root = nixopts::parse_text(text, "configuration.nix").unwrap();
    assert!(nixopts::undeclared(&declared, &root, "services.first-boot-automation").is_empty());
    let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
    assert!(!is_declared(
        &declared,
        &p("services.first-boot-automation.stateDir")
    ));
}
