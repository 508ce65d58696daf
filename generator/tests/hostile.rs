//! Hostile strings cannot break out of any artifact: validation rejects what a format cannot
//! carry, and whatever passes comes back unchanged through the real consumers.

mod common;

use std::path::Path;
use std::process::Command;

use common::{files_under, nix_eval, plasmagen, repo_root};

const HOSTILE: &[&str] = &[
    "\"; rm -rf / #",
    "${builtins.abort \"x\"}",
    "''${x}",
    "a\nb",
    "$(reboot)",
    "`reboot`",
    "x}; include \"/etc/passwd\"; {",
    "x' or '1'='1",
    "\\",
    "../../etc",
    "a b",
    "ä",
];

fn base() -> String {
    std::fs::read_to_string(repo_root().join("examples/runbook.toml")).unwrap()
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap() // a JSON string literal is a valid TOML basic string
}

/// Generate with `text`; return the flake dir when accepted, None when rejected with exit 2.
fn attempt(text: &str, dir: &Path) -> Option<std::path::PathBuf> {
    let inv = dir.join("inv.toml");
    std::fs::write(&inv, text).unwrap();
    let out = dir.join("out");
    let o = plasmagen()
        .arg("generate")
        .arg(&inv)
        .arg("--out")
        .arg(&out)
        .arg("--skip-certs")
        .output()
        .unwrap();
    match o.status.code() {
        Some(0) => Some(out.join("flake")),
        Some(2) => {
            assert!(!out.exists(), "rejected input must write nothing");
            None
        }
        other => panic!(
            "unexpected exit {other:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

#[test]
fn identifiers_that_reach_configs_and_scripts_are_rejected() {
    let fields = [
        ("hostname = \"node05\"", "hostname"),
        ("name = \"prod-cluster\"", "name"),
        ("domain = \"example.com\"", "domain"),
        (
            "collector_url = \"https://10.0.100.10:8443\"",
            "collector_url",
        ),
        (
            "username = \"admin\" }\n\n[[nodes]]\nhostname = \"node05\"",
            "username",
        ),
    ];
    for (orig, key) in fields {
        for h in HOSTILE {
            let dir = tempfile::tempdir().unwrap();
            let replacement = orig.replacen(
                &orig[orig.find('"').unwrap()
                    ..orig[orig.find('"').unwrap() + 1..].find('"').unwrap()
                        + orig.find('"').unwrap()
                        + 2],
                &toml_string(h),
                1,
            );
            let text = base().replacen(orig, &replacement, 1);
            assert_ne!(text, base(), "{key}: fixture edit");
            assert!(
                attempt(&text, dir.path()).is_none(),
                "{key} = {h:?} was accepted"
            );
        }
    }
}

#[test]
fn free_text_is_carried_verbatim_through_nix() {
    // SSH key comments and flake input URLs are free text: accepted, escaped, and evaluated back
    // to exactly the original by the real Nix evaluator.
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkd86f/K36q5Khr2jtCpqAhME6U6WYvfZ+SRxEj42Ve";
    for h in HOSTILE.iter().filter(|h| !h.contains('\n')) {
        let dir = tempfile::tempdir().unwrap();
        let full_key = format!("{key} {h}");
        let url = format!("github:NixOS/nixpkgs?x={h}");
        let text = base()
            .replacen(
                &format!("\"{key} provisioning@example.com\""),
                &toml_string(&full_key),
                1,
            )
            .replacen(
                "[networks.provisioning]",
                &format!(
                    "[flake.inputs]\nnixpkgs = {}\n\n[networks.provisioning]",
                    toml_string(&url)
                ),
                1,
            );
        let flake = attempt(&text, dir.path()).unwrap_or_else(|| panic!("{h:?} rejected"));
        for rel in files_under(&flake)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "nix"))
        {
            let o = Command::new("nix-instantiate")
                .arg("--parse")
                .arg(flake.join(&rel))
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{}: {}",
                rel.display(),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let v = nix_eval(
            &flake,
            "{ keys = (import ./nodes/node01.example.com/configuration.nix { config = {}; pkgs = {}; lib = {}; }).users.users.root.openssh.authorizedKeys.keys; url = (import ./flake.nix).inputs.nixpkgs.url; }",
        );
        assert_eq!(v["keys"][0], serde_json::json!(full_key));
        assert_eq!(v["url"], serde_json::json!(url));
    }
}
