//! Every .nix file of the project parses, with Nix itself and with rnix.
//! (Generated flakes are checked by the generator's tests; templates/ holds askama sources.)

mod nix_support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if ![".git", "target", "templates", "out"].contains(&name.as_str())
                && !name.starts_with("result")
            {
                nix_files(&path, out);
            }
        } else if name.ends_with(".nix") {
            out.push(path);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    let repo = nix_support::repo();
    let mut files = Vec::new();
    nix_files(&repo, &mut files);
    files.sort();
    for ours in [
        "flake.nix",
        "nix/modules/first-boot.nix",
        "nix/modules/pxe-server.nix",
        "nix/netboot.nix",
        "nix/package.nix",
        "nix/tests/first-boot.nix",
    ] {
        assert!(files.contains(&repo.join(ours)), "{ours} not found");
    }

    let mut failures = Vec::new();
    for file in &files {
        let out = Command::new("nix-instantiate")
            .arg("--parse")
            .arg(file)
            .output()
            .expect("nix-instantiate runs (Debian package nix-bin)");
        if !out.status.success() {
            failures.push(format!(
                "{}: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let text = std::fs::read_to_string(file).unwrap();
        if let Err(e) = plasma_tests::nixopts::parse_text(&text, &file.display().to_string()) {
            failures.push(e.to_string());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_broken_file_is_caught() {
    // The check above must be able to fail: feed it a file with a missing semicolon.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.nix");
    std::fs::write(&bad, "{ a = 1 b = 2; }").unwrap();
    let out = Command::new("nix-instantiate")
        .arg("--parse")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(plasma_tests::nixopts::parse_text("{ a = 1 b = 2; }", "bad.nix").is_err());
}
