//! The generated operator scripts (scripts/*.sh) are wrappers of the operator subcommands:
//! shellcheck-clean, they find the output directory from wherever they are run, and pass
//! every argument on intact. The subcommands themselves are tested in provision.rs and
//! operate.rs.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{generate, repo_root, require_tool};

const SCRIPTS: [(&str, &str); 4] = [
    ("provision.sh", "provision"),
    ("verify-cluster.sh", "verify"),
    ("rolling-update.sh", "rollout"),
    ("decommission.sh", "decommission"),
];

#[test]
fn shellcheck_accepts_every_wrapper() {
    require_tool("shellcheck", "shellcheck");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    generate(&repo_root().join("examples/runbook.toml"), &out);
    let mut cmd = Command::new("shellcheck");
    cmd.args(["--severity=style", "--shell=bash"]);
    for (script, _) in SCRIPTS {
        cmd.arg(out.join("flake/scripts").join(script));
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn each_wrapper_runs_its_subcommand_on_its_own_output_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out dir");
    generate(&repo_root().join("examples/runbook.toml"), &out);
    let recorder = tmp.path().join("plasmagen");
    fs::write(
        &recorder,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n",
    )
    .unwrap();
    fs::set_permissions(&recorder, fs::Permissions::from_mode(0o755)).unwrap();
    let out = out.canonicalize().unwrap();
    for (script, subcommand) in SCRIPTS {
        let path = out.join("flake/scripts").join(script);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o111,
            0o111
        );
        // The recorder was just written: a test thread forking at that moment holds its write
        // descriptor until its exec, and exec then fails with ETXTBSY ("Text file busy").
        // Retried, as that window closes by itself.
        let run = || {
            Command::new(&path)
                .current_dir("/")
                .env("PLASMAGEN", &recorder)
                .args(["node 01", "--dry-run", "--", "--debug"])
                .output()
                .unwrap()
        };
        let mut o = run();
        for _ in 0..20 {
            if !String::from_utf8_lossy(&o.stderr).contains("Text file busy") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            o = run();
        }
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let argv: Vec<String> = String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(
            argv,
            [
                subcommand,
                out.to_str().unwrap(),
                "node 01",
                "--dry-run",
                "--",
                "--debug"
            ],
            "{script}"
        );
    }
}

#[test]
fn the_provision_wrapper_reaches_the_real_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    generate(&repo_root().join("examples/runbook.toml"), &out);
    let o = Command::new(out.join("flake/scripts/provision.sh"))
        .env("PLASMAGEN", env!("CARGO_BIN_EXE_plasmagen"))
        .env("IPMI_PASSWORD", "not-shown")
        .args(["node04", "--dry-run"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("chassis bootdev pxe options=efiboot"),
        "{text}"
    );
    assert!(
        text.contains("--flake") && text.contains("flake#node04"),
        "{text}"
    );
    assert!(!text.contains("not-shown"), "{text}");
}
