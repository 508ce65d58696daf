//! Re-running is safe: same inventory → no file touched; removed node → its files removed;
//! --dry-run reports exactly what a run would do and writes nothing.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::SystemTime;

use common::{files_under, generate, plasmagen, repo_root};

fn snapshot(root: &Path) -> Vec<(String, Vec<u8>, SystemTime)> {
    files_under(root)
        .into_iter()
        .map(|rel| {
            let p = root.join(&rel);
            (
                rel.display().to_string(),
                fs::read(&p).unwrap(),
                fs::metadata(&p).unwrap().modified().unwrap(),
            )
        })
        .collect()
}

fn dry_run(inv: &Path, out: &Path, json: bool) -> (i32, String) {
    let mut cmd = plasmagen();
    cmd.arg("generate")
        .arg(inv)
        .arg("--out")
        .arg(out)
        .arg("--dry-run");
    if json {
        cmd.arg("--json");
    }
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap(),
        String::from_utf8(o.stdout).unwrap(),
    )
}

#[test]
fn rerun_changes_no_byte_and_no_mtime() {
    let inv = repo_root().join("examples/runbook.toml");
    let out = tempfile::tempdir().unwrap();
    generate(&inv, out.path());
    let before = snapshot(&out.path().join("flake"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    generate(&inv, out.path());
    assert_eq!(before, snapshot(&out.path().join("flake")));
    let (code, stdout) = dry_run(&inv, out.path(), false);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("nothing to do"));
}

#[test]
fn secrets_dir_is_private_and_never_inside_the_flake() {
    let inv = repo_root().join("examples/runbook.toml");
    let out = tempfile::tempdir().unwrap();
    generate(&inv, out.path());
    let mode = fs::metadata(out.path().join("secrets"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    let o = plasmagen()
        .arg("generate")
        .arg(&inv)
        .arg("--out")
        .arg(out.path())
        .arg("--secrets")
        .arg(out.path().join("flake/./secrets"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing secrets directory"));
}

#[test]
fn removed_node_files_are_removed_and_listed_by_dry_run() {
    let text = fs::read_to_string(repo_root().join("examples/runbook.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.toml");
    fs::write(&inv, &text).unwrap();
    let out = dir.path().join("out");
    generate(&inv, &out);
    let flake = out.join("flake");
    // Files the operator adds next to ours are never removed.
    fs::write(flake.join("nodes/node05.example.com/facter.json"), "{}").unwrap();
    fs::write(flake.join("flake.lock"), "{}").unwrap();

    let node05 = text.find("[[nodes]]\nhostname = \"node05\"").unwrap();
    fs::write(&inv, &text[..node05]).unwrap();
    let (code, stdout) = dry_run(&inv, &out, false);
    assert_eq!(code, 1);
    for f in [
        "configuration.nix",
        "disko.nix",
        "hardware.nix",
        "cluster-config.json",
    ] {
        assert!(
            stdout.contains(&format!(
                "remove {}",
                flake.join("nodes/node05.example.com").join(f).display()
            )),
            "{stdout}"
        );
    }
    assert!(stdout.contains(&format!("change {}", flake.join("flake.nix").display())));
    assert!(
        stdout.contains("-        \"node05\" = mkNode \"node05.example.com\";"),
        "unified diff expected:\n{stdout}"
    );
    let (code, json) = dry_run(&inv, &out, true);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["changes"], true);
    // The node's six files (configuration, boot, network, hardware, disko, cluster-config.json)
    // and its iPXE script.
    assert_eq!(v["flake"]["remove"].as_array().unwrap().len(), 7);
    assert!(stdout.contains("pxe/nodes/52-54-00-12-34-5a.ipxe"));
    let changed: Vec<&str> = v["flake"]["change"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(
        changed.contains(&"flake.nix") && changed.contains(&"pxe/dhcpd.conf"),
        "{changed:?}"
    );
    // Dry-run wrote nothing.
    assert!(
        flake
            .join("nodes/node05.example.com/configuration.nix")
            .exists()
    );

    generate(&inv, &out);
    assert!(
        !flake
            .join("nodes/node05.example.com/configuration.nix")
            .exists()
    );
    assert!(flake.join("nodes/node05.example.com/facter.json").exists());
    assert!(flake.join("flake.lock").exists());
    assert!(
        !fs::read_to_string(flake.join("flake.nix"))
            .unwrap()
            .contains("node05")
    );
    assert_eq!(dry_run(&inv, &out, false).0, 0);
}

#[test]
fn dry_run_on_a_fresh_directory_lists_creates_and_writes_nothing() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("new");
    let (code, stdout) = dry_run(&repo_root().join("examples/runbook.toml"), &target, false);
    assert_eq!(code, 1);
    assert!(stdout.contains(&format!(
        "create {}",
        target.join("flake/flake.nix").display()
    )));
    assert!(!target.exists());
}

#[test]
fn changed_inventory_rewrites_only_affected_files() {
    let text = fs::read_to_string(repo_root().join("examples/runbook.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.toml");
    fs::write(&inv, &text).unwrap();
    let out = dir.path().join("out");
    generate(&inv, &out);
    let before = snapshot(&out.join("flake"));
    fs::write(
        &inv,
        text.replace(
            "production_ip = \"10.0.200.21\"",
            "production_ip = \"10.0.200.22\"",
        ),
    )
    .unwrap();
    generate(&inv, &out);
    let after = snapshot(&out.join("flake"));
    let changed: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a)
        .map(|(b, _)| b.0.as_str())
        .collect();
    assert_eq!(
        changed,
        [
            "dns/200.0.10.in-addr.arpa.zone",
            "dns/example.com.zone",
            "inventory.toml",
            "nodes/node05.example.com/cluster-config.json",
            "nodes/node05.example.com/network.nix",
            // Not the operator scripts: they read inventory.toml at run time.
        ]
    );
}
