//! Every option the generated flake sets under our modules' namespaces is declared by those
//! modules: both sides read with rnix, the generated side from a real `plasmagen generate`.

use std::path::{Path, PathBuf};

use plasma_tests::nixopts::{self, declared_options};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn generate(inventory: &Path) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    // In-process, through the same code path as the CLI, so the check never sees a stale binary.
    let args = plasmagen::command::generate::Args::flake_only(
        inventory.to_path_buf(),
        out.path().to_path_buf(),
    );
    plasmagen::command::generate::run(&args).expect("generate");
    out
}

fn check(file: &Path, module: &str, prefix: &str, min_assigned: usize) {
    let declared = declared_options(repo().join(module));
    let text = std::fs::read_to_string(file).unwrap();
    let root = nixopts::parse_text(&text, &file.display().to_string()).unwrap();
    let assigned = nixopts::assigned_option_paths(&root, prefix);
    assert!(
        assigned.len() >= min_assigned,
        "{}: only {} assignments under {prefix}: {assigned:?}",
        file.display(),
        assigned.len()
    );
    let missing = nixopts::undeclared(&declared, &root, prefix);
    assert!(
        missing.is_empty(),
        "{} sets options {module} does not declare: {missing:?}",
        file.display()
    );
}

#[test]
fn generated_node_and_pxe_server_options_are_declared() {
    for case in [
        "examples/runbook.toml",
        "tests/cases/layouts/inventory.toml",
    ] {
        let out = generate(&repo().join(case));
        let flake = out.path().join("flake");
        let mut nodes = 0;
        for entry in std::fs::read_dir(flake.join("nodes")).unwrap() {
            let conf = entry.unwrap().path().join("configuration.nix");
            check(
                &conf,
                "nix/modules/first-boot.nix",
                "services.first-boot-automation",
                5,
            );
            nodes += 1;
        }
        assert!(nodes >= 2);
        check(
            &flake.join("pxe-server.nix"),
            "nix/modules/pxe-server.nix",
            "services.centra-pxe-server",
            15,
        );
        check(
            &flake.join("flake.nix"),
            "nix/netboot.nix",
            "plasmacloud.netboot",
            3,
        );
        check(
            &flake.join("flake.nix"),
            "nix/modules/pxe-server.nix",
            "services.centra-pxe-server",
            1,
        );
    }
}

#[test]
fn a_misspelt_generated_option_would_be_caught() {
    let out = generate(&repo().join("examples/runbook.toml"));
    let conf = out
        .path()
        .join("flake/nodes/node01.example.com/configuration.nix");
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("joinTimeout", "joinTimout");
    let root = nixopts::parse_text(&text, "node01").unwrap();
    let declared = declared_options(repo().join("nix/modules/first-boot.nix"));
    assert_eq!(
        nixopts::undeclared(&declared, &root, "services.first-boot-automation"),
        ["services.first-boot-automation.joinTimout"]
    );
}
