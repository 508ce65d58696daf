//! `plasmagen check --nix`: the fleet evaluated through a recording stand-in `nix` (a shell
//! script first on PATH; the real nix, if installed, is never reached).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{generate, plasmagen, repo_root};
use plasmagen::nixcheck::{self, NodeOutcome};

const HOSTS: [&str; 5] = ["node01", "node02", "node03", "node04", "node05"];
const SKIPPED: &str = "nix not found on PATH (or without flakes support): skipping the Nix evaluation; the inventory is valid";

/// Records its argv (one line per argument, one file per call) in $NIX_STANDIN_RECORD and
/// answers like Nix 2.18: a .drv path, or, for the checks named in $NIX_STANDIN_FAIL, a
/// multi-line evaluation error. $NIX_STANDIN_OLD=1 plays a Nix without flakes (2.3).
/// Shell builtins only: the tests give it a PATH without coreutils.
const STANDIN: &str = r#"#!/bin/sh
n=0
while ! (set -C; : > "$NIX_STANDIN_RECORD/call.$$.$n") 2>/dev/null; do n=$((n+1)); done
for a in "$@"; do printf '%s\n' "$a" >> "$NIX_STANDIN_RECORD/call.$$.$n"; done
if [ "$1" = --version ]; then echo "nix (Nix) 2.18.1"; exit 0; fi
if [ "$NIX_STANDIN_OLD" = 1 ]; then echo "error: unrecognised flag '$1'" >&2; exit 1; fi
if [ "$1" != --extra-experimental-features ] || [ "$2" != "nix-command flakes" ]; then
  echo "error: experimental Nix feature 'nix-command' is disabled" >&2; exit 1
fi
shift 2
case "$1" in
  flake)
    if [ "$2" = lock ] && [ -n "$NIX_STANDIN_LOCK_FAIL" ]; then
      echo "error: unable to download 'https://api.github.com/repos/NixOS/nixpkgs/commits/nixos-unstable': Couldn't resolve host name (6)" >&2
      exit 1
    fi
    if [ "$2" = lock ]; then echo '{"version": 7}' > "$3/flake.lock"; fi
    exit 0 ;;
  eval) ;;
  *) echo "error: unexpected subcommand '$1'" >&2; exit 1 ;;
esac
for ref in "$@"; do :; done
dir=${ref%%#*}
if [ ! -f "$dir/flake.nix" ]; then echo "error: path '$dir' is not a flake" >&2; exit 1; fi
if [ ! -f "$dir/flake.lock" ]; then
  echo "error: flake 'path:$dir' requires lock file changes but they're not allowed due to '--no-update-lock-file'" >&2; exit 1
fi
check=${ref#*#checks.x86_64-linux.}
check=${check%.drvPath}
case " $NIX_STANDIN_FAIL " in
  *" $check "*)
    printf '%s\n' >&2 \
      "warning: Git tree '$dir' is dirty" \
      "error:" \
      "       … while calling the 'head' builtin" \
      "" \
      "         at /nix/store/fake-source/lib/attrsets.nix:1575:11:" \
      "" \
      "       … while evaluating the attribute 'config.system.build.toplevel'" \
      "" \
      "       (stack trace truncated; use '--show-trace' to show the full trace)" \
      "" \
      "       error:" \
      "       Failed assertions:" \
      "       - You must set the option 'boot.loader.grub.devices' or 'boot.loader.grub.mirroredBoots' to make the system bootable."
    exit 1 ;;
esac
printf '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-%s.drv' "$check"
"#;

struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        for d in ["bin", "calls", "empty"] {
            fs::create_dir(lab.path(d)).expect("mkdir");
        }
        let nix = lab.path("bin/nix");
        fs::write(&nix, STANDIN).expect("write stand-in");
        fs::set_permissions(&nix, fs::Permissions::from_mode(0o755)).expect("chmod");
        lab
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `plasmagen ARGS` with the stand-in first on PATH, failing the checks in `fail`.
    fn check(&self, args: &[&str], fail: &str, extra_env: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        self.run(args, &path, fail, extra_env)
    }

    fn run(&self, args: &[&str], path: &str, fail: &str, extra_env: &[(&str, &str)]) -> Output {
        plasmagen()
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env("NIX_STANDIN_RECORD", self.path("calls"))
            .env("NIX_STANDIN_FAIL", fail)
            .envs(extra_env.iter().copied())
            .args(args)
            .output()
            .expect("run plasmagen")
    }

    /// Every recorded call's argv.
    fn calls(&self) -> Vec<Vec<String>> {
        let mut calls: Vec<Vec<String>> = fs::read_dir(self.path("calls"))
            .expect("read calls")
            .map(|e| {
                let text = fs::read_to_string(e.expect("entry").path()).expect("read call");
                text.lines().map(String::from).collect()
            })
            .collect();
        calls.sort();
        calls
    }

    /// The recorded `eval` calls.
    fn evals(&self) -> Vec<Vec<String>> {
        self.calls()
            .into_iter()
            .filter(|c| c.get(2).is_some_and(|s| s == "eval"))
            .collect()
    }
}

fn inventory() -> String {
    repo_root()
        .join("examples/runbook.toml")
        .display()
        .to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every eval call has exactly the documented argv; returns the flake directory they name
/// and the checks evaluated.
fn eval_contract(evals: &[Vec<String>]) -> (String, BTreeSet<String>) {
    let mut dirs = BTreeSet::new();
    let mut checks = BTreeSet::new();
    for argv in evals {
        assert_eq!(argv.len(), 6, "{argv:?}");
        assert_eq!(
            argv[..5],
            [
                "--extra-experimental-features",
                "nix-command flakes",
                "eval",
                "--no-update-lock-file",
                "--raw"
            ]
        );
        let (dir, fragment) = argv[5].split_once('#').expect("a flake reference");
        assert!(Path::new(dir).is_absolute(), "{dir}");
        let check = fragment
            .strip_prefix("checks.x86_64-linux.")
            .and_then(|f| f.strip_suffix(".drvPath"))
            .unwrap_or_else(|| panic!("unexpected attribute {fragment}"));
        dirs.insert(dir.to_string());
        assert!(checks.insert(check.to_string()), "{check} evaluated twice");
    }
    assert_eq!(dirs.len(), 1, "one flake for all: {dirs:?}");
    (dirs.into_iter().next().unwrap(), checks)
}

fn all_checks(hosts: &[&str]) -> BTreeSet<String> {
    hosts
        .iter()
        .flat_map(|h| [h.to_string(), format!("{h}-disko")])
        .collect()
}

#[test]
fn every_node_and_its_disko_script_is_evaluated() {
    let lab = Lab::new();
    let inv = inventory();
    let o = lab.check(&["check", &inv, "--nix"], "", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);

    let calls = lab.calls();
    assert!(calls.contains(&vec!["--version".to_string()]));
    let probe = [
        "--extra-experimental-features",
        "nix-command flakes",
        "flake",
        "--help",
    ];
    assert!(calls.iter().any(|c| *c == probe), "{calls:?}");
    let (dir, checks) = eval_contract(&lab.evals());
    assert_eq!(checks, all_checks(&HOSTS));
    // The rendered flake was locked once, before the evaluations, in the same directory.
    let locks: Vec<_> = calls
        .iter()
        .filter(|c| c.get(3).is_some_and(|s| s == "lock"))
        .collect();
    assert_eq!(locks.len(), 1, "{calls:?}");
    assert_eq!(
        locks[0][..],
        [
            "--extra-experimental-features",
            "nix-command flakes",
            "flake",
            "lock",
            dir.as_str()
        ]
    );
    assert_eq!(calls.len(), 2 + 1 + 2 * HOSTS.len());
    assert!(!Path::new(&dir).exists(), "the temporary flake is removed");

    for host in HOSTS {
        assert!(err.contains(&format!("] {host} ... ok")), "{err}");
    }
    for n in 1..=HOSTS.len() {
        assert!(err.contains(&format!("[{n}/5] node")), "{err}");
    }
    assert!(
        stdout(&o).contains("nix: 5 nodes evaluate"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_failing_node_is_named_with_the_nix_error() {
    let lab = Lab::new();
    let inv = inventory();
    let o = lab.check(&["check", &inv, "--nix"], "node03", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    let expected = format!(
        "{inv}: node node03: nix evaluation failed: checks.x86_64-linux.node03: error:\n       … while calling the 'head' builtin"
    );
    assert!(err.contains(&expected), "{err}");
    assert!(
        err.contains("- You must set the option 'boot.loader.grub.devices'"),
        "{err}"
    );
    assert!(err.contains("] node03 ... FAILED"), "{err}");
    assert!(
        !err.contains("Git tree"),
        "warnings before the error are dropped: {err}"
    );
    assert_eq!(err.matches("nix evaluation failed:").count(), 1, "{err}");
    assert!(
        err.contains("nix evaluation failed for 1 of 5 nodes"),
        "{err}"
    );
    // The failure did not stop the others.
    let (_, checks) = eval_contract(&lab.evals());
    assert_eq!(checks, all_checks(&HOSTS));
    for host in ["node01", "node02", "node04", "node05"] {
        assert!(err.contains(&format!("] {host} ... ok")), "{err}");
    }
}

#[test]
fn a_failing_disko_script_alone_fails_the_node() {
    let lab = Lab::new();
    let inv = inventory();
    let o = lab.check(&["check", &inv, "--nix"], "node05-disko", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "node node05: nix evaluation failed: checks.x86_64-linux.node05-disko: error:"
        ),
        "{err}"
    );
}

#[test]
fn json_carries_each_nodes_result() {
    let lab = Lab::new();
    let inv = inventory();
    let o = lab.check(
        &["check", &inv, "--nix", "--json"],
        "node02 node02-disko",
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(doc["valid"], true);
    let nix = &doc["nix"];
    assert_eq!(nix["ran"], true);
    assert_eq!(nix["nodes"].as_object().unwrap().len(), 5);
    assert_eq!(nix["nodes"]["node01"]["ok"], true);
    assert!(nix["nodes"]["node01"]["error"].is_null());
    assert_eq!(
        nix["nodes"]["node01"]["drv_paths"]["checks.x86_64-linux.node01-disko"],
        "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-node01-disko.drv"
    );
    assert_eq!(nix["nodes"]["node02"]["ok"], false);
    let error = nix["nodes"]["node02"]["error"].as_str().unwrap();
    // Both checks failed the same way: the error once, after both names.
    assert!(
        error.starts_with("checks.x86_64-linux.node02, checks.x86_64-linux.node02-disko: error:\n"),
        "{error}"
    );
    assert!(error.contains("boot.loader.grub.devices"), "{error}");
    // Without --nix the document has no "nix" key (check --json's shape is unchanged).
    let o = lab.check(&["check", &inv, "--json"], "", &[]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(doc.get("nix").is_none());
}

#[test]
fn without_nix_on_path_the_evaluation_is_skipped() {
    let lab = Lab::new();
    let inv = inventory();
    let empty = lab.path("empty").display().to_string();
    let o = lab.run(&["check", &inv, "--nix"], &empty, "", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(SKIPPED), "{}", stderr(&o));
    assert!(stdout(&o).contains(": valid:"));

    let o = lab.run(&["check", &inv, "--nix", "--json"], &empty, "", &[]);
    assert_eq!(o.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["nix"]["ran"], false);
    assert!(lab.calls().is_empty());
}

#[test]
fn a_nix_without_flakes_is_skipped_too() {
    let lab = Lab::new();
    let inv = inventory();
    let o = lab.check(&["check", &inv, "--nix"], "", &[("NIX_STANDIN_OLD", "1")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(SKIPPED), "{}", stderr(&o));
    assert!(lab.evals().is_empty());
}

#[test]
fn inputs_that_cannot_be_locked_stop_the_check() {
    let lab = Lab::new();
    let inv = inventory();
    let o = lab.check(
        &["check", &inv, "--nix"],
        "",
        &[("NIX_STANDIN_LOCK_FAIL", "1")],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("nix could not lock the flake inputs"), "{err}");
    assert!(err.contains("Couldn't resolve host name"), "{err}");
    assert!(lab.evals().is_empty());
}

#[test]
fn an_invalid_inventory_never_reaches_nix() {
    let lab = Lab::new();
    let bad = lab.path("bad.toml");
    fs::write(&bad, "[cluster]\nname = 1\n").unwrap();
    let o = lab.check(&["check", bad.to_str().unwrap(), "--nix"], "", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(lab.calls().is_empty());
}

#[test]
fn flake_points_at_a_generated_directory() {
    let lab = Lab::new();
    let inv = inventory();
    generate(Path::new(&inv), &lab.path("out"));
    // Without flake.lock: refused, nothing evaluated (the operator locks the inputs).
    let o = lab.check(&["check", &inv, "--nix", "--flake", "out/flake"], "", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no flake.lock"), "{}", stderr(&o));
    assert!(lab.evals().is_empty());

    fs::write(lab.path("out/flake/flake.lock"), "{}\n").unwrap();
    let o = lab.check(&["check", &inv, "--nix", "--flake", "out/flake"], "", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("stale"), "{}", stderr(&o));
    let (dir, checks) = eval_contract(&lab.evals());
    assert_eq!(checks, all_checks(&HOSTS));
    // The relative directory became an absolute flake reference (`out/flake` would name the
    // registry flake `out`).
    let want = fs::canonicalize(lab.path("out/flake")).unwrap();
    assert_eq!(Path::new(&dir), want);
    // The operator's lock is used as it is: no `nix flake lock`.
    assert!(!lab.calls().iter().any(|c| c.iter().any(|a| a == "lock")));
    assert_eq!(
        fs::read_to_string(lab.path("out/flake/flake.lock")).unwrap(),
        "{}\n"
    );
}

#[test]
fn a_stale_flake_is_warned_about() {
    let lab = Lab::new();
    let inv = inventory();
    generate(Path::new(&inv), &lab.path("out"));
    fs::write(lab.path("out/flake/flake.lock"), "{}\n").unwrap();
    // The inventory moved on: node05 is gone.
    let text = fs::read_to_string(&inv).unwrap();
    let cut = text.rfind("[[nodes]]").unwrap();
    let newer = lab.path("newer.toml");
    fs::write(&newer, &text[..cut]).unwrap();
    let newer = newer.display().to_string();
    let o = lab.check(&["check", &newer, "--nix", "--flake", "out/flake"], "", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("is stale: flake.nix"), "{err}");
    assert!(err.contains("run plasmagen generate first"), "{err}");
    let (_, checks) = eval_contract(&lab.evals());
    assert_eq!(checks, all_checks(&HOSTS[..4]));
}

#[test]
fn flake_needs_nix() {
    let o = common::run(&["check", &inventory(), "--flake", "out/flake"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn excerpt_keeps_the_error_and_drops_the_rest() {
    let stderr = "warning: Git tree '/x' is dirty\n\u{1b}[31;1merror:\u{1b}[0m\n       … while evaluating\n\n       error: boom\n";
    assert_eq!(
        nixcheck::error_excerpt(stderr, Some(1)),
        "error:\n       … while evaluating\n       error: boom"
    );
    // A long trace: the first line, a marker, the innermost error.
    let mut long = String::from("error:\n");
    for i in 0..40 {
        long.push_str(&format!("       … while evaluating frame {i}\n"));
    }
    long.push_str("       error: the real problem\n       more detail\n");
    let e = nixcheck::error_excerpt(&long, Some(1));
    assert_eq!(
        e,
        "error:\n       … (40 lines omitted)\n       error: the real problem\n       more detail"
    );
    // Over-long lines are clipped.
    let wide = format!("error: {}", "x".repeat(1000));
    assert!(nixcheck::error_excerpt(&wide, Some(1)).chars().count() < 300);
    // No `error:` line at all.
    assert_eq!(
        nixcheck::error_excerpt("", Some(1)),
        "nix exited with status 1 and printed nothing"
    );
    assert_eq!(nixcheck::error_excerpt("Killed\n", None), "Killed");
}

#[test]
fn node_errors_are_grouped() {
    let check = |attr: &str, result: Result<&str, &str>| nixcheck::CheckOutcome {
        attr: attr.into(),
        flake_ref: format!("/f#{attr}.drvPath"),
        result: result.map(String::from).map_err(String::from),
    };
    let node = NodeOutcome {
        host: "n1".into(),
        checks: vec![check("a", Err("error: x")), check("b", Err("error: y"))],
    };
    assert_eq!(node.error().unwrap(), "a: error: x\nb: error: y");
    let node = NodeOutcome {
        host: "n1".into(),
        checks: vec![
            check("a", Ok("/nix/store/a.drv")),
            check("b", Ok("/nix/store/b.drv")),
        ],
    };
    assert!(node.ok() && node.error().is_none());
    assert!(nixcheck::flake_base(Path::new("out/flake")).is_err());
    assert!(nixcheck::flake_base(Path::new("/srv/a#b")).is_err());
    assert_eq!(
        nixcheck::flake_base(Path::new("/srv/flake")).unwrap(),
        "/srv/flake"
    );
}
