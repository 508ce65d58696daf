//! One test per bad-input rule: exit 2, every error at once, each naming the file, the
//! line:column where known, the node and the field; nothing written.

mod common;

use std::path::Path;

use common::{plasmagen, repo_root};

fn base() -> String {
    std::fs::read_to_string(repo_root().join("examples/runbook.toml")).unwrap()
}

/// Replace `from` (must occur) with `to` in the runbook inventory.
fn edit(src: &str, from: &str, to: &str) -> String {
    assert!(src.contains(from), "fixture does not contain {from:?}");
    src.replacen(from, to, 1)
}

/// Run `generate` on `text`; assert exit 2 and no output; return stderr.
fn rejected(name: &str, text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join(name);
    std::fs::write(&inv, text).unwrap();
    let out = dir.path().join("out");
    let o = plasmagen()
        .arg("generate")
        .arg(&inv)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(2),
        "expected exit 2, stderr:\n{stderr}"
    );
    assert!(!out.exists(), "nothing may be written for invalid input");
    assert!(
        stderr.contains(&inv.display().to_string()),
        "errors must name the file:\n{stderr}"
    );
    stderr
}

fn rejected_toml(text: &str) -> String {
    rejected("inventory.toml", text)
}

fn assert_has(stderr: &str, needles: &[&str]) {
    let line = stderr
        .lines()
        .find(|l| l.contains("error:") && needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no error line containing all of {needles:?} in:\n{stderr}"));
    assert!(line.contains("error:"), "{line}");
}

#[test]
fn invalid_toml_points_at_line_and_column() {
    let s = rejected_toml(&edit(
        &base(),
        "name = \"prod-cluster\"",
        "name = \"prod-cluster",
    ));
    assert_has(&s, &["inventory.toml:7:", "invalid TOML"]);
}

#[test]
fn invalid_json_points_at_line_and_column() {
    let s = rejected(
        "inventory.json",
        "{\n  \"cluster\": {\n    \"name\": 1,,\n  }\n}\n",
    );
    assert_has(&s, &["inventory.json:3:", "invalid JSON"]);
}

#[test]
fn json_inventory_goes_through_the_same_rules() {
    let s = rejected(
        "inventory.json",
        r#"{"cluster": {"name": "x"}, "networks": {}, "nodes": [{"hostname": "n1", "macc": "x"}]}"#,
    );
    assert_has(&s, &["cluster.domain", "missing required field"]);
    assert_has(&s, &["node n1", "nodes[0].macc", "did you mean `mac`"]);
    assert_has(&s, &["networks.provisioning", "missing"]);
}

#[test]
fn unknown_field_with_did_you_mean() {
    let s = rejected_toml(&edit(
        &base(),
        "production_ip = \"10.0.200.11\"",
        "prodution_ip = \"10.0.200.11\"",
    ));
    assert_has(
        &s,
        &[
            "node node02",
            "nodes[1].prodution_ip",
            "unknown field",
            "did you mean `production_ip`",
        ],
    );
    assert_has(
        &s,
        &[
            "node node02",
            "nodes[1].production_ip",
            "missing required field",
        ],
    );
}

#[test]
fn missing_field() {
    let s = rejected_toml(&edit(
        &base(),
        "state_version = \"26.05\"",
        "# no state_version",
    ));
    assert_has(&s, &["cluster.state_version", "missing required field"]);
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = edit(
        &edit(
            &edit(&base(), "52:54:00:12:34:57", "52:54:00:12:34"),
            "10.0.200.12",
            "10.0.201.12",
        ),
        "role = \"worker\"",
        "role = \"wroker\"",
    );
    let s = rejected_toml(&text);
    assert_has(&s, &["node node02", "nodes[1].mac", "malformed MAC"]);
    assert_has(
        &s,
        &[
            "node node03",
            "nodes[2].production_ip",
            "not a host address of the production subnet",
        ],
    );
    assert_has(
        &s,
        &[
            "node node04",
            "nodes[3].role",
            "unknown role",
            "did you mean \"worker\"",
        ],
    );
    assert!(s.lines().filter(|l| l.contains("error:")).count() >= 3);
}

#[test]
fn wrong_type() {
    let s = rejected_toml(&edit(
        &base(),
        "bootstrap = [\"node01\", \"node02\", \"node03\"]",
        "bootstrap = \"node01\"",
    ));
    assert_has(
        &s,
        &[
            "cluster.bootstrap",
            "expected an array of strings, found string",
        ],
    );
}

#[test]
fn duplicate_hostname() {
    let s = rejected_toml(&edit(
        &base(),
        "hostname = \"node05\"",
        "hostname = \"node04\"",
    ));
    assert_has(
        &s,
        &["node node04", "nodes[4].hostname", "duplicate hostname"],
    );
}

#[test]
fn duplicate_mac_case_insensitive() {
    let s = rejected_toml(
        &edit(&base(), "52:54:00:12:34:5a", "52:54:00:12:34:5A").replacen(
            "52:54:00:12:34:59",
            "52:54:00:12:34:5a",
            1,
        ),
    );
    assert_has(&s, &["node node05", "nodes[4].mac", "duplicate MAC"]);
}

#[test]
fn duplicate_ip() {
    let s = rejected_toml(&edit(
        &base(),
        "production_ip = \"10.0.200.21\"",
        "production_ip = \"10.0.200.20\"",
    ));
    assert_has(
        &s,
        &[
            "node node05",
            "nodes[4].production_ip",
            "already used by node04",
        ],
    );
}

#[test]
fn malformed_mac() {
    let s = rejected_toml(&edit(&base(), "52:54:00:12:34:56", "52:54:00:12:34:zz"));
    assert_has(
        &s,
        &[
            "inventory.toml:",
            "node node01",
            "nodes[0].mac",
            "malformed MAC",
        ],
    );
}

#[test]
fn malformed_ip() {
    let s = rejected_toml(&edit(&base(), "10.0.100.50", "10.0.100.500"));
    assert_has(
        &s,
        &[
            "node node01",
            "nodes[0].provisioning_ip",
            "malformed IPv4 address",
        ],
    );
}

#[test]
fn malformed_cidr() {
    let s = rejected_toml(&edit(
        &base(),
        "subnet = \"10.0.100.0/24\"",
        "subnet = \"10.0.100.7/24\"",
    ));
    assert_has(
        &s,
        &["networks.provisioning.subnet", "did you mean 10.0.100.0/24"],
    );
}

#[test]
fn malformed_hostname() {
    let s = rejected_toml(&edit(
        &base(),
        "hostname = \"node05\"",
        "hostname = \"Node_05\"",
    ));
    assert_has(&s, &["nodes[4].hostname", "RFC 1123"]);
}

#[test]
fn address_outside_subnet() {
    let s = rejected_toml(&edit(
        &base(),
        "provisioning_ip = \"10.0.100.51\"",
        "provisioning_ip = \"10.0.99.51\"",
    ));
    assert_has(
        &s,
        &[
            "node node02",
            "nodes[1].provisioning_ip",
            "not a host address of the provisioning subnet 10.0.100.0/24",
        ],
    );
}

#[test]
fn static_address_inside_dhcp_range() {
    let s = rejected_toml(&edit(
        &base(),
        "provisioning_ip = \"10.0.100.52\"",
        "provisioning_ip = \"10.0.100.150\"",
    ));
    assert_has(
        &s,
        &[
            "node node03",
            "nodes[2].provisioning_ip",
            "inside the DHCP range",
        ],
    );
}

#[test]
fn static_address_equal_to_gateway_or_pxe_server() {
    let s = rejected_toml(&edit(
        &edit(
            &base(),
            "provisioning_ip = \"10.0.100.52\"",
            "provisioning_ip = \"10.0.100.10\"",
        ),
        "production_ip = \"10.0.200.11\"",
        "production_ip = \"10.0.200.1\"",
    ));
    assert_has(
        &s,
        &[
            "node node03",
            "nodes[2].provisioning_ip",
            "already used by the PXE server",
        ],
    );
    assert_has(
        &s,
        &[
            "node node02",
            "nodes[1].production_ip",
            "already used by the production gateway",
        ],
    );
}

#[test]
fn bootstrap_empty() {
    let s = rejected_toml(&edit(
        &base(),
        "bootstrap = [\"node01\", \"node02\", \"node03\"]",
        "bootstrap = []",
    ));
    assert_has(&s, &["cluster.bootstrap", "empty"]);
}

#[test]
fn bootstrap_even_sized() {
    let s = rejected_toml(&edit(
        &base(),
        "bootstrap = [\"node01\", \"node02\", \"node03\"]",
        "bootstrap = [\"node01\", \"node02\"]",
    ));
    assert_has(&s, &["cluster.bootstrap", "odd number"]);
}

#[test]
fn bootstrap_unknown_node() {
    let s = rejected_toml(&edit(
        &base(),
        "bootstrap = [\"node01\", \"node02\", \"node03\"]",
        "bootstrap = [\"node01\", \"node02\", \"node33\"]",
    ));
    assert_has(
        &s,
        &[
            "cluster.bootstrap[2]",
            "not a node of the inventory",
            "did you mean \"node03\"",
        ],
    );
}

#[test]
fn bootstrap_non_control_plane() {
    let s = rejected_toml(&edit(
        &base(),
        "bootstrap = [\"node01\", \"node02\", \"node03\"]",
        "bootstrap = [\"node01\", \"node02\", \"node04\"]",
    ));
    assert_has(
        &s,
        &[
            "node node04",
            "cluster.bootstrap[2]",
            "founding members must be control-plane",
        ],
    );
}

#[test]
fn raid1_needs_two_disks() {
    let s = rejected_toml(&edit(
        &base(),
        "disk_layout = \"single\"",
        "disk_layout = \"raid1\"",
    ));
    assert_has(
        &s,
        &[
            "node node01",
            "nodes[0].disks",
            "raid1",
            "at least two disks",
        ],
    );
}

#[test]
fn disk_path_not_under_dev_is_an_error_and_kernel_names_a_warning() {
    let s = rejected_toml(&edit(
        &base(),
        "disks = [\"/dev/sda\"]",
        "disks = [\"sda\"]",
    ));
    assert_has(
        &s,
        &[
            "node node01",
            "nodes[0].disks[0]",
            "not an absolute device path under /dev",
        ],
    );
    // The runbook's own /dev/sda is accepted with a warning.
    let o = plasmagen()
        .arg("check")
        .arg(repo_root().join("examples/runbook.toml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("warning: node node01: nodes[0].disks[0]")
            && stderr.contains("/dev/disk/by-id"),
        "{stderr}"
    );
}

#[test]
fn unknown_role_and_disk_layout() {
    let s = rejected_toml(&edit(
        &edit(
            &base(),
            "role = \"control-plane\"",
            "role = \"controlplane\"",
        ),
        "disk_layout = \"single\"",
        "disk_layout = \"zfs\"",
    ));
    assert_has(
        &s,
        &[
            "node node01",
            "nodes[0].role",
            "unknown role",
            "did you mean \"control-plane\"",
        ],
    );
    assert_has(
        &s,
        &["node node01", "nodes[0].disk_layout", "unknown disk layout"],
    );
}

#[test]
fn malformed_ssh_key() {
    let s = rejected_toml(&edit(
        &base(),
        "AAAAC3NzaC1lZDI1NTE5AAAAIBkd86f/K36q5Khr2jtCpqAhME6U6WYvfZ+SRxEj42Ve",
        "AAAAC3NzaC1lZDI1NTE5AAAAI...",
    ));
    assert_has(
        &s,
        &["cluster.ssh_authorized_keys[0]", "malformed SSH public key"],
    );
}

#[test]
fn hostile_strings_are_rejected_before_any_format() {
    let s = rejected_toml(&edit(
        &base(),
        "hostname = \"node05\"",
        "hostname = \"node05\\\"; rm -rf /; #\"",
    ));
    assert_has(&s, &["nodes[4].hostname", "not a valid hostname"]);
    let s = rejected_toml(&edit(
        &base(),
        "collector_url = \"https://10.0.100.10:8443\"",
        "collector_url = \"https://10.0.100.10:8443/${builtins.abort}\"",
    ));
    assert_has(&s, &["cluster.collector_url", "metacharacters"]);
}

#[test]
fn check_json_lists_errors_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.toml");
    std::fs::write(&inv, edit(&base(), "52:54:00:12:34:56", "nope")).unwrap();
    let o = plasmagen()
        .args(["check", "--json"])
        .arg(&inv)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let e = &v["errors"][0];
    assert_eq!(e["node"], "node01");
    assert_eq!(e["field"], "nodes[0].mac");
    assert!(e["line"].as_u64().unwrap() > 1);
    assert!(Path::new(e["file"].as_str().unwrap()).ends_with("inv.toml"));
}

#[test]
fn dry_run_json_reports_invalid_input_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.toml");
    std::fs::write(
        &inv,
        edit(&base(), "hostname = \"node03\"", "hostname = \"node_03\""),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = plasmagen()
        .arg("generate")
        .arg(&inv)
        .arg("--out")
        .arg(&out)
        .args(["--dry-run", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"nodes[2].hostname"), "{fields:?}");
    assert!(!out.exists());
}
