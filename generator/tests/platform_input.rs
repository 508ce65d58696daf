//! Inventory rules for the platform fields: firmware, production NICs (bond, VLAN), the PXE
//! server's interface, LUKS unlock and the NixOS release. Errors exit 2 naming file, node and
//! field with nothing written; warnings name the field and still generate.

mod common;

use common::{plasmagen, repo_root};

fn base() -> String {
    std::fs::read_to_string(repo_root().join("examples/runbook.toml")).unwrap()
}

fn edit(src: &str, from: &str, to: &str) -> String {
    assert!(src.contains(from), "fixture does not contain {from:?}");
    src.replacen(from, to, 1)
}

/// `plasmagen check` on `text`: (exit code, stderr).
fn check(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.toml");
    std::fs::write(&inv, text).unwrap();
    let o = plasmagen().arg("check").arg(&inv).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn error_line<'a>(stderr: &'a str, needles: &[&str]) -> &'a str {
    stderr
        .lines()
        .find(|l| l.contains("error:") && needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no error line with all of {needles:?} in:\n{stderr}"))
}

fn warning_line<'a>(stderr: &'a str, needles: &[&str]) -> &'a str {
    stderr
        .lines()
        .find(|l| l.contains("warning:") && needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no warning line with all of {needles:?} in:\n{stderr}"))
}

#[test]
fn the_examples_are_valid_and_warn_only_about_the_runbooks_dev_sda() {
    for ex in ["examples/runbook.toml", "examples/mixed.toml"] {
        let (code, stderr) = check(&std::fs::read_to_string(repo_root().join(ex)).unwrap());
        assert_eq!(code, Some(0), "{ex}: {stderr}");
        let others: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("warning:") && !l.contains("\"/dev/sda\" is not a stable name"))
            .collect();
        assert!(others.is_empty(), "{ex}:\n{stderr}");
    }
}

#[test]
fn unknown_firmware_is_an_error_with_a_suggestion() {
    let text = edit(
        &base(),
        "role = \"control-plane\"\n",
        "role = \"control-plane\"\nfirmware = \"efi\"\n",
    );
    let (code, stderr) = check(&text);
    assert_eq!(code, Some(2));
    let line = error_line(&stderr, &["node01", "nodes[0].firmware", "\"efi\""]);
    assert!(line.contains("uefi, bios"), "{line}");
}

#[test]
fn a_production_mac_used_twice_is_an_error_naming_both_places() {
    // node02's production NIC given node01's PXE MAC.
    let text = edit(
        &base(),
        "production_macs = [\"52:54:00:12:35:57\"]",
        "production_macs = [\"52:54:00:12:34:56\"]",
    );
    let (code, stderr) = check(&text);
    assert_eq!(code, Some(2));
    let line = error_line(
        &stderr,
        &["node02", "nodes[1].production_macs[0]", "duplicate MAC"],
    );
    assert!(line.contains("nodes[0].mac (node01)"), "{line}");
}

#[test]
fn a_malformed_or_empty_production_mac_list_is_an_error() {
    let (code, stderr) = check(&edit(
        &base(),
        "production_macs = [\"52:54:00:12:35:57\"]",
        "production_macs = [\"52:54:00:12:35\"]",
    ));
    assert_eq!(code, Some(2));
    error_line(&stderr, &["node02", "nodes[1].production_macs[0]"]);
    let (code, stderr) = check(&edit(
        &base(),
        "production_macs = [\"52:54:00:12:35:57\"]",
        "production_macs = []",
    ));
    assert_eq!(code, Some(2));
    error_line(&stderr, &["node02", "nodes[1].production_macs", "empty"]);
}

#[test]
fn a_node_without_production_macs_is_a_warning_and_still_generates() {
    let text = edit(&base(), "production_macs = [\"52:54:00:12:35:57\"]\n", "");
    let (code, stderr) = check(&text);
    assert_eq!(code, Some(0), "{stderr}");
    let line = warning_line(&stderr, &["node02", "nodes[1].production_macs"]);
    assert!(line.contains("eth1"), "{line}");
}

#[test]
fn vlan_ids_outside_1_to_4094_are_errors() {
    for bad in ["0", "4095", "\"200\""] {
        let text = edit(
            &base(),
            "[networks.production]\n",
            &format!("[networks.production]\nvlan = {bad}\n"),
        );
        let (code, stderr) = check(&text);
        assert_eq!(code, Some(2), "vlan = {bad}");
        error_line(&stderr, &["networks.production.vlan"]);
    }
    let ok = edit(
        &base(),
        "[networks.production]\n",
        "[networks.production]\nvlan = 4094\n",
    );
    assert_eq!(check(&ok).0, Some(0));
}

#[test]
fn unknown_bond_mode_is_an_error() {
    let text = edit(
        &base(),
        "[networks.production]\n",
        "[networks.production]\nbond_mode = \"balance-rr\"\n",
    );
    let (code, stderr) = check(&text);
    assert_eq!(code, Some(2));
    let line = error_line(&stderr, &["networks.production.bond_mode", "balance-rr"]);
    assert!(line.contains("802.3ad, active-backup"), "{line}");
}

#[test]
fn the_pxe_server_interface_must_be_named_and_valid() {
    let text = edit(&base(), "interface = \"enp1s0\"", "# interface = ?");
    let (code, stderr) = check(&text);
    assert_eq!(code, Some(2));
    let line = error_line(
        &stderr,
        &["networks.provisioning.interface", "missing required field"],
    );
    assert!(line.contains("ip -br link"), "{line}");
    let (code, stderr) = check(&edit(
        &base(),
        "interface = \"enp1s0\"",
        "interface = \"enp0s20f0u1u2u3u4\"",
    ));
    assert_eq!(code, Some(2));
    error_line(
        &stderr,
        &[
            "networks.provisioning.interface",
            "not a Linux interface name",
        ],
    );
}

#[test]
fn an_unsupported_release_is_a_warning_naming_the_field() {
    let text = edit(
        &base(),
        "state_version = \"26.05\"",
        "state_version = \"24.11\"",
    );
    let (code, stderr) = check(&text);
    assert_eq!(code, Some(0), "{stderr}");
    let line = warning_line(&stderr, &["cluster.state_version", "24.11"]);
    assert!(line.contains("26.05, 25.11"), "{line}");

    let text = edit(
        &base(),
        "[networks.provisioning]",
        "[flake.inputs]\nnixpkgs = \"github:NixOS/nixpkgs/nixos-25.05\"\n\n[networks.provisioning]",
    );
    let (code, stderr) = check(&text);
    assert_eq!(code, Some(0), "{stderr}");
    let line = warning_line(&stderr, &["flake.inputs.nixpkgs", "25.05"]);
    assert!(line.contains("rustc"), "{line}");

    let text = edit(
        &base(),
        "[networks.provisioning]",
        "[flake.inputs]\nnixpkgs = \"github:NixOS/nixpkgs/nixos-25.11\"\n\n[networks.provisioning]",
    );
    let (_, stderr) = check(&text);
    assert!(!stderr.contains("flake.inputs.nixpkgs"), "{stderr}");
}

#[test]
fn luks_unlock_methods_not_built_yet_are_refused_for_luks_nodes() {
    let luks = edit(
        &base(),
        "disk_layout = \"single\"",
        "disk_layout = \"luks-lvm\"",
    );
    let text = edit(
        &luks,
        "collector_url =",
        "luks_unlock = \"tpm2\"\ncollector_url =",
    );
    let (code, stderr) = check(&text);
    assert_eq!(code, Some(2));
    error_line(&stderr, &["cluster.luks_unlock", "\"tpm2\"", "initrd-ssh"]);
    let text = edit(
        &luks,
        "collector_url =",
        "luks_unlock = \"clevis\"\ncollector_url =",
    );
    let (code, stderr) = check(&text);
    assert_eq!(code, Some(2));
    error_line(&stderr, &["cluster.luks_unlock", "\"clevis\""]);
}

#[test]
fn bmc_protocols_and_redfish_tls_settings() {
    let node01_bmc = "bmc = { address = \"10.0.10.50\", username = \"admin\" }";
    let with = |bmc: &str| edit(&base(), node01_bmc, bmc);

    let (code, stderr) = check(&with(
        "bmc = { protocol = \"redfish\", address = \"10.0.10.50\", username = \"admin\", system = \"System.Embedded.1\", ca_file = \"/etc/plasmacloud/bmc-ca.pem\" }",
    ));
    assert_eq!(code, Some(0), "{stderr}");

    let (code, stderr) = check(&with(
        "bmc = { protocol = \"redfsh\", address = \"10.0.10.50\", username = \"admin\" }",
    ));
    assert_eq!(code, Some(2));
    let line = error_line(&stderr, &["node01", "nodes[0].bmc.protocol", "redfsh"]);
    assert!(line.contains("did you mean \"redfish\""), "{line}");

    // Redfish-only settings on an IPMI BMC (the default protocol) are mistakes.
    let (code, stderr) = check(&with(
        "bmc = { address = \"10.0.10.50\", username = \"admin\", system = \"1\" }",
    ));
    assert_eq!(code, Some(2));
    error_line(&stderr, &["nodes[0].bmc.system", "Redfish setting", "ipmi"]);

    let (code, stderr) = check(&with(
        "bmc = { protocol = \"redfish\", address = \"10.0.10.50\", username = \"admin\", insecure = true }",
    ));
    assert_eq!(code, Some(0), "{stderr}");
    let line = warning_line(&stderr, &["node01", "nodes[0].bmc.insecure"]);
    assert!(line.contains("not checked"), "{line}");

    let (code, stderr) = check(&with(
        "bmc = { protocol = \"redfish\", address = \"10.0.10.50\", username = \"admin\", insecure = \"yes\" }",
    ));
    assert_eq!(code, Some(2));
    error_line(
        &stderr,
        &["nodes[0].bmc.insecure", "expected true or false"],
    );

    let (code, stderr) = check(&with(
        "bmc = { protocol = \"redfish\", address = \"10.0.10.50\", username = \"admin\", insecure = true, ca_file = \"/etc/ca.pem\" }",
    ));
    assert_eq!(code, Some(2));
    error_line(&stderr, &["nodes[0].bmc.insecure", "contradict"]);

    let (code, stderr) = check(&with(
        "bmc = { protocol = \"redfish\", address = \"10.0.10.50\", username = \"admin\", ca_file = \"ca.pem\" }",
    ));
    assert_eq!(code, Some(2));
    error_line(&stderr, &["nodes[0].bmc.ca_file", "absolute path"]);
}

#[test]
fn a_join_deadline_shorter_than_the_membership_queue_is_a_warning() {
    let base = base();
    let text = edit(&base, "[cluster]\n", "[cluster]\njoin_timeout_secs = 30\n");
    let (code, stderr) = check(&text);
    assert_eq!(code, Some(0), "a warning still generates: {stderr}");
    let line = warning_line(
        &stderr,
        &[
            "cluster.join_timeout_secs",
            "one membership change at a time",
            "at least 6",
        ],
    );
    // The runbook's joining nodes: two changes each at 200 ms, plus the margin.
    let joiners = base.matches("[[nodes]]").count() - 3;
    let want = format!("at least {}", (joiners as f64 * 0.4).ceil() as u64 + 60);
    assert!(line.contains(&want), "{want}: {line}");
}
