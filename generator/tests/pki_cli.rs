//! The PKI through `plasmagen`: generate creates it once and keeps it, an inventory change
//! re-issues only the affected certificate, `certs list` / `certs rotate` work on the result,
//! a corrupted CA stops everything, and concurrent runs do not corrupt the directory.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{files_under, plasmagen, repo_root};

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, String) {
    let text = fs::read_to_string(repo_root().join("examples/runbook.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.toml");
    fs::write(&inv, &text).unwrap();
    let out = dir.path().join("out");
    (dir, inv, out, text)
}

fn run_generate(inv: &Path, out: &Path) -> std::process::Output {
    plasmagen()
        .arg("generate")
        .arg(inv)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn secrets_snapshot(out: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let s = out.join("secrets");
    files_under(&s)
        .into_iter()
        .filter(|p| !p.ends_with(".lock"))
        .map(|p| {
            let b = fs::read(s.join(&p)).unwrap();
            (p, b)
        })
        .collect()
}

#[test]
fn inventory_ip_change_reissues_only_that_certificate_with_the_same_key() {
    let (_d, inv, out, text) = setup();
    assert!(run_generate(&inv, &out).status.success());
    let before = secrets_snapshot(&out);
    // Same inventory: nothing changes.
    assert!(run_generate(&inv, &out).status.success());
    assert_eq!(before, secrets_snapshot(&out));

    fs::write(&inv, text.replace("10.0.200.21", "10.0.200.29")).unwrap();
    let dry = plasmagen()
        .arg("generate")
        .arg(&inv)
        .arg("--out")
        .arg(&out)
        .arg("--dry-run")
        .output()
        .unwrap();
    assert_eq!(dry.status.code(), Some(1));
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry_out.contains("secrets: re-issue cert for node05"),
        "{dry_out}"
    );
    assert!(
        dry_out.contains("10.0.200.29"),
        "the reason names the new SAN: {dry_out}"
    );

    assert!(run_generate(&inv, &out).status.success());
    let after = secrets_snapshot(&out);
    let changed: Vec<String> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a)
        .map(|(b, _)| b.0.display().to_string())
        .collect();
    // known_hosts follows the node's new address; its host key stays.
    assert_eq!(
        changed,
        [
            "known_hosts",
            "nodes/node05/etc/nixos/secrets/node05-cert.pem"
        ]
    );

    let list = plasmagen()
        .args(["certs", "list", "--json"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(list.status.success());
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let node05 = v
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["subject"].as_str().unwrap().contains("node05"))
        .unwrap();
    assert!(
        node05["sans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "10.0.200.29")
    );
    assert!(v.as_array().unwrap().iter().all(|c| c["verifies"] == true));
}

#[test]
fn rotate_keeps_the_old_files() {
    let (_d, inv, out, _) = setup();
    assert!(run_generate(&inv, &out).status.success());
    let key = out.join("secrets/nodes/node02/etc/nixos/secrets/node02-key.pem");
    let old = fs::read(&key).unwrap();
    let o = plasmagen()
        .args(["certs", "rotate"])
        .arg(&inv)
        .arg("--out")
        .arg(&out)
        .args(["--node", "node02"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_ne!(fs::read(&key).unwrap(), old, "a new key");
    let rotated = out.join("secrets/rotated/nodes/node02/etc/nixos/secrets");
    let kept: Vec<_> = fs::read_dir(&rotated)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("node02-key.pem."))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(fs::read(rotated.join(&kept[0])).unwrap(), old);
    let bad = plasmagen()
        .args(["certs", "rotate"])
        .arg(&inv)
        .arg("--out")
        .arg(&out)
        .args(["--node", "node99"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn corrupted_ca_is_an_error_naming_the_file_and_nothing_is_replaced() {
    let (_d, inv, out, _) = setup();
    assert!(run_generate(&inv, &out).status.success());
    let ca_key = out.join("secrets/ca/ca-key.pem");
    fs::write(
        &ca_key,
        "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let before = secrets_snapshot(&out);
    let o = run_generate(&inv, &out);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ca-key.pem"), "{err}");
    assert_eq!(before, secrets_snapshot(&out), "nothing may be regenerated");
}

#[test]
fn concurrent_generates_leave_one_consistent_pki() {
    let (_d, inv, out, _) = setup();
    let children: Vec<_> = (0..4)
        .map(|_| {
            plasmagen()
                .arg("generate")
                .arg(&inv)
                .arg("--out")
                .arg(&out)
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let list = plasmagen()
        .args(["certs", "list", "--json"])
        .arg(&out)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    // One CA, every certificate verifies against it.
    assert_eq!(
        v.as_array()
            .unwrap()
            .iter()
            .filter(|c| c["is_ca"] == true)
            .count(),
        1
    );
    assert!(
        v.as_array().unwrap().iter().all(|c| c["verifies"] == true),
        "{v:#}"
    );
    let dry = plasmagen()
        .arg("generate")
        .arg(&inv)
        .arg("--out")
        .arg(&out)
        .arg("--dry-run")
        .output()
        .unwrap();
    assert_eq!(
        dry.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&dry.stdout)
    );
}
