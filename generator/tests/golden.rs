//! Golden files: every case under tests/cases/<name>/ renders exactly its expected/ tree.
//! (Certificates are random, so the flake is rendered with --skip-certs.)
//! Update after an intended change with `UPDATE_GOLDEN=1 cargo test -p plasmagen --test golden`.

mod common;

use std::fs;
use std::path::Path;

use common::{files_under, generate_flake_only, repo_root};

fn check_case(name: &str) {
    let inventory = repo_root()
        .join("tests/cases")
        .join(name)
        .join("inventory.toml");
    check_case_of(name, &inventory);
}

/// A case whose inventory lives elsewhere (an example): tests/cases/<name>/expected only.
fn check_case_of(name: &str, inventory: &Path) {
    let case = repo_root().join("tests/cases").join(name);
    let out = tempfile::tempdir().expect("tempdir");
    generate_flake_only(inventory, out.path());
    let actual_root = out.path().join("flake");
    let expected_root = case.join("expected/flake");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    if update {
        let _ = fs::remove_dir_all(&expected_root);
        for rel in files_under(&actual_root) {
            let dst = expected_root.join(&rel);
            fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
            fs::copy(actual_root.join(&rel), &dst).expect("copy");
        }
        return;
    }
    let actual = files_under(&actual_root);
    let expected = files_under(&expected_root);
    assert_eq!(
        actual, expected,
        "case {name}: file lists differ (UPDATE_GOLDEN=1 to accept)"
    );
    for rel in &actual {
        let a = fs::read_to_string(actual_root.join(rel)).expect("read actual");
        let e = fs::read_to_string(expected_root.join(rel)).expect("read expected");
        assert!(
            a == e,
            "case {name}: {} differs from the golden file (UPDATE_GOLDEN=1 to accept):\n{}",
            rel.display(),
            diff(&e, &a)
        );
    }
}

fn diff(expected: &str, actual: &str) -> String {
    similar::TextDiff::from_lines(expected, actual)
        .unified_diff()
        .header("expected", "actual")
        .to_string()
}

#[test]
fn runbook_fleet() {
    check_case("runbook");
}

#[test]
fn every_layout_and_role() {
    check_case("layouts");
}

#[test]
fn every_firmware_and_layout_with_single_and_bonded_nics() {
    check_case("every-combination");
}

#[test]
fn mixed_firmware_layouts_bonds_and_vlan() {
    check_case_of("mixed", &repo_root().join("examples/mixed.toml"));
}

#[test]
fn every_case_directory_is_tested() {
    let mut names: Vec<String> = fs::read_dir(repo_root().join("tests/cases"))
        .expect("cases dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| {
            repo_root()
                .join("tests/cases")
                .join(n)
                .join("expected")
                .exists()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["every-combination", "layouts", "mixed", "runbook"],
        "add a #[test] for each new case"
    );
}
