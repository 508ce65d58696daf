//! A hardware report dropped next to a node in a git flake is invisible to Nix until git knows
//! it: `generate` warns about each untracked one (checked with the real git), and stays quiet
//! once it is added or when the flake is not a git repository.

mod common;

use std::process::Command;

use common::{generate, repo_root};

fn git(dir: &std::path::Path, args: &[&str]) {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git (Debian package git)");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn untracked_reports_in_a_git_flake_are_named_until_added() {
    let out = tempfile::tempdir().unwrap();
    let inv = repo_root().join("examples/runbook.toml");
    assert!(generate(&inv, out.path()).status.success());
    let flake = out.path().join("flake");
    let node = flake.join("nodes/node01.example.com");
    std::fs::write(node.join("facter.json"), "{}\n").unwrap();

    // Not a git repository: a path flake sees every file, nothing to say.
    let o = generate(&inv, out.path());
    assert!(!String::from_utf8_lossy(&o.stderr).contains("git does not track"));

    git(&flake, &["init", "-q"]);
    let o = generate(&inv, out.path());
    assert!(o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("git does not track"))
        .unwrap_or_else(|| panic!("no warning:\n{stderr}"));
    assert!(
        line.contains("nodes/node01.example.com/facter.json"),
        "{line}"
    );
    assert!(
        line.contains("add nodes/node01.example.com/facter.json"),
        "{line}"
    );
    assert_eq!(stderr.matches("git does not track").count(), 1, "{stderr}");

    // nixos-anywhere's own way: git add --intent-to-add.
    git(
        &flake,
        &[
            "add",
            "--intent-to-add",
            "nodes/node01.example.com/facter.json",
        ],
    );
    let o = generate(&inv, out.path());
    assert!(!String::from_utf8_lossy(&o.stderr).contains("git does not track"));
}
