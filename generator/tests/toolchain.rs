//! The binaries build with the Rust of every supported NixOS release: the workspace's
//! `rust-version` is at most the `rustc` of each release in `plasmagen::release::SUPPORTED`
//! (docs/nix.md cites the nixpkgs file each was read from), every locked dependency needs no
//! newer Rust than that, and both flakes follow a supported release. (`cargo clippy` enforces
//! the same `rust-version` on the code itself through its `incompatible_msrv` lint.)

mod common;

use common::{generate_flake_only, repo_root};
use plasmagen::release;

fn version(v: &str) -> (u32, u32, u32) {
    let mut parts = v.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

fn workspace_rust_version() -> String {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap()).unwrap();
    manifest["workspace"]["package"]["rust-version"]
        .as_str()
        .expect("workspace.package.rust-version")
        .to_string()
}

#[test]
fn every_supported_release_has_a_rustc_new_enough_for_the_workspace() {
    let msrv = workspace_rust_version();
    for r in release::SUPPORTED {
        assert!(
            version(r.rustc) >= version(&msrv),
            "NixOS {} ships rustc {}, older than the workspace rust-version {msrv}",
            r.version,
            r.rustc
        );
    }
}

#[test]
fn no_locked_dependency_needs_a_newer_rust_than_the_workspace_declares() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let o = std::process::Command::new(cargo)
        .current_dir(repo_root())
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let msrv = version(&workspace_rust_version());
    let too_new: Vec<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let rv = p["rust_version"].as_str()?;
            (version(rv) > msrv).then(|| format!("{} {} needs {rv}", p["name"], p["version"]))
        })
        .collect();
    assert!(too_new.is_empty(), "{too_new:?}");
}

#[test]
fn the_project_flake_and_the_fleet_flake_follow_supported_releases() {
    let flake = std::fs::read_to_string(repo_root().join("flake.nix")).unwrap();
    let url = flake
        .lines()
        .find_map(|l| l.trim().strip_prefix("inputs.nixpkgs.url = \""))
        .and_then(|rest| rest.split('"').next())
        .expect("inputs.nixpkgs.url in flake.nix");
    let pinned = release::release_of_nixpkgs_url(url).expect("a release branch");
    assert!(release::is_supported(&pinned), "flake.nix pins {url}");

    let out = tempfile::tempdir().unwrap();
    generate_flake_only(&repo_root().join("examples/runbook.toml"), out.path());
    let fleet = std::fs::read_to_string(out.path().join("flake/flake.nix")).unwrap();
    assert!(
        fleet.contains(&format!(
            "nixpkgs.url = \"{}\";",
            release::nixpkgs_url(release::DEFAULT)
        )),
        "{fleet}"
    );
    // plasmagen and plasma-agent are built with the fleet's nixpkgs, so with its rustc.
    let provisioning = &fleet[fleet.find("plasmacloud-provisioning = {").unwrap()..];
    let block = &provisioning[..provisioning.find("};").unwrap()];
    assert!(
        block.contains("inputs.nixpkgs.follows = \"nixpkgs\";"),
        "{block}"
    );
}
