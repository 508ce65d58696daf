//! The binaries as they ship (each package built on its own, release profile: what
//! nix/package.nix builds) against https endpoints. Built together with plasmagen, Cargo's
//! feature unification once hid that plasma-agent alone had no TLS crypto provider and
//! panicked on its first https request; these runs fail if that ever comes back, for either
//! binary. The VM tests run the same binaries (lab::build_binaries).

use std::process::{Command, Output};

use plasma_tests::e2e::lab;

fn text(o: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_no_panic(o: &Output) {
    let all = text(o);
    assert_ne!(o.status.code(), Some(101), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    assert!(!all.contains("crypto provider"), "{all}");
}

#[test]
fn shipped_agent_and_plasmagen_speak_https_without_a_provider_panic() {
    let bins = lab::build_binaries().unwrap_or_else(|e| panic!("{e}"));

    // Nothing listens on port 1: the agent must get as far as connecting, and retry.
    let o = Command::new(&bins.agent)
        .args([
            "discover",
            "--collector",
            "https://127.0.0.1:1",
            "--timeout",
            "1",
        ])
        .args(["--mac", "52:54:00:00:00:01"])
        .output()
        .unwrap();
    assert_no_panic(&o);
    assert_eq!(o.status.code(), Some(75), "{}", text(&o));
    assert!(text(&o).contains("Connection refused"), "{}", text(&o));

    let dir = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = dir.path().join("out");
    let o = Command::new(&bins.plasmagen)
        .arg("generate")
        .arg(repo.join("examples/runbook.toml"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new(&bins.plasmagen)
        .args(["status", "--collector", "https://127.0.0.1:1", "--secrets"])
        .arg(out.join("secrets"))
        .output()
        .unwrap();
    assert_no_panic(&o);
    assert_eq!(o.status.code(), Some(69), "{}", text(&o));
}
