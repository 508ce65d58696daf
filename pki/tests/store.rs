//! The secrets directory: layout, modes, idempotence, re-issue rules, safety, locking, rotation.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::Duration as StdDuration;

use common::*;
use plasma_pki::store::{
    self, IssueReason, LeafId, Rotate, SecretAction, StoreInput, apply, list_at, plan, rotate,
};
use plasma_pki::{Ca, KeyAlgorithm, LeafSpec, PkiError, inspect, verifies_against};
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn node(h: &str) -> LeafId {
    LeafId::Node(h.into())
}

#[test]
fn first_apply_creates_the_runbook_layout_with_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets_dir(&tmp);
    let actions = apply(&s, &input(), now()).unwrap();
    assert_eq!(actions[0], SecretAction::CreateCa);
    for h in ["node01", "node02", "node03"] {
        assert!(
            actions.contains(&SecretAction::NewKey { leaf: node(h) }),
            "{actions:?}"
        );
        assert!(actions.contains(&SecretAction::CopyCaCert { hostname: h.into() }));
    }
    assert!(actions.contains(&SecretAction::NewKey {
        leaf: LeafId::PxeServer
    }));
    assert!(actions.contains(&SecretAction::NewKey {
        leaf: LeafId::Operator
    }));

    let expect = [
        ("", 0o700),
        ("ca", 0o700),
        ("ca/ca-cert.pem", 0o644),
        ("ca/ca-key.pem", 0o600),
        ("nodes", 0o700),
        // Copied onto the target's /, /etc, /etc/nixos by nixos-anywhere: must stay 0755.
        ("nodes/node01", 0o755),
        ("nodes/node01/etc", 0o755),
        ("nodes/node01/etc/nixos", 0o755),
        ("nodes/node01/etc/nixos/secrets", 0o700),
        ("nodes/node01/etc/nixos/secrets/ca-cert.pem", 0o644),
        ("nodes/node01/etc/nixos/secrets/node01-cert.pem", 0o644),
        ("nodes/node01/etc/nixos/secrets/node01-key.pem", 0o600),
        ("pxe-server", 0o700),
        ("pxe-server/pxe-server-cert.pem", 0o644),
        ("pxe-server/pxe-server-key.pem", 0o600),
        ("operator", 0o700),
        ("operator/operator-cert.pem", 0o644),
        ("operator/operator-key.pem", 0o600),
    ];
    for (rel, m) in expect {
        assert_eq!(mode(s.join(rel)), m, "mode of {rel:?}");
    }
    // Exactly these files per node directory: nothing else gets copied to the target.
    let mut files: Vec<String> = fs::read_dir(s.join("nodes/node02/etc/nixos/secrets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["ca-cert.pem", "node02-cert.pem", "node02-key.pem"]);
    assert_eq!(
        read(s.join("nodes/node02/etc/nixos/secrets/ca-cert.pem")),
        read(s.join("ca/ca-cert.pem"))
    );
    // No temp files left behind anywhere.
    assert!(
        snapshot(&s)
            .keys()
            .all(|p| !p.to_string_lossy().contains(".tmp-")),
        "{:?}",
        snapshot(&s).keys().collect::<Vec<_>>()
    );
}

#[test]
fn modes_do_not_depend_on_the_umask_of_the_caller() {
    // The umask is process-wide; run a child with a hostile one (000) and a strict one (077).
    for umask in ["000", "077"] {
        let tmp = tempfile::tempdir().unwrap();
        let s = secrets_dir(&tmp);
        let exe = std::env::current_exe().unwrap();
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask {umask} && exec \"$0\" --exact child_apply --nocapture --test-threads=1"
            ))
            .arg(&exe)
            .env("PLASMA_PKI_CHILD_DIR", &s)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(mode(s.join("ca/ca-key.pem")), 0o600, "umask {umask}");
        assert_eq!(
            mode(s.join("nodes/node01/etc/nixos/secrets/node01-cert.pem")),
            0o644,
            "umask {umask}"
        );
        assert_eq!(mode(s.join("nodes/node01/etc")), 0o755, "umask {umask}");
        assert_eq!(
            mode(s.join("nodes/node01/etc/nixos/secrets")),
            0o700,
            "umask {umask}"
        );
        assert_eq!(mode(&s), 0o700, "umask {umask}");
    }
}

/// Not a test on its own: the body of the child processes spawned by other tests.
#[test]
fn child_apply() {
    let Ok(dir) = std::env::var("PLASMA_PKI_CHILD_DIR") else {
        return;
    };
    let n: usize = std::env::var("PLASMA_PKI_CHILD_NODES").map_or(3, |v| v.parse().unwrap());
    let input = if n == 3 { input() } else { input_with_nodes(n) };
    let actions = apply(Path::new(&dir), &input, now()).unwrap();
    println!("ACTIONS:{}", serde_json::to_string(&actions).unwrap());
}

#[test]
fn second_apply_changes_no_byte_no_mode_and_no_mtime() {
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets_dir(&tmp);
    apply(&s, &input(), now()).unwrap();
    let before = snapshot(&s);
    std::thread::sleep(StdDuration::from_millis(20)); // so a rewrite would show in mtimes
    let actions = apply(&s, &input(), now()).unwrap();
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(snapshot(&s), before);
    assert!(plan(&s, &input(), now()).unwrap().is_empty());
}

#[test]
fn plan_writes_nothing_and_matches_what_apply_does() {
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets_dir(&tmp);
    let planned = plan(&s, &input(), now()).unwrap();
    assert!(!s.exists(), "plan must not create the secrets directory");
    assert_eq!(planned[0], SecretAction::CreateCa);
    let done = apply(&s, &input(), now()).unwrap();
    assert_eq!(planned, done);

    // With an existing directory too: plan leaves every byte and mtime alone.
    let mut changed = input();
    changed.nodes[0].ips[0] = ip("10.0.200.111");
    let before = snapshot(&s);
    let planned = plan(&s, &changed, now()).unwrap();
    assert_eq!(snapshot(&s), before);
    assert_eq!(planned, apply(&s, &changed, now()).unwrap());
}

#[test]
fn san_change_reissues_only_that_node_with_the_same_key() {
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets_dir(&tmp);
    let mut input = input();
    apply(&s, &input, now()).unwrap();
    let before = snapshot(&s);
    let old_cert = read(node_cert(&s, "node02"));

    input.nodes[1].ips[0] = ip("10.0.200.22"); // was 10.0.200.12
    let planned = plan(&s, &input, now()).unwrap();
    assert_eq!(
        planned,
        [SecretAction::IssueCert {
            leaf: node("node02"),
            reason: IssueReason::SansChanged {
                added: vec!["10.0.200.22".into()],
                removed: vec!["10.0.200.12".into()],
            },
        }]
    );
    assert_eq!(
        planned[0].to_string(),
        "re-issue cert for node02 because SANs changed: +10.0.200.22 -10.0.200.12"
    );
    std::thread::sleep(StdDuration::from_millis(20));
    apply(&s, &input, now()).unwrap();
    let after = snapshot(&s);
    let cert_rel = Path::new("nodes/node02/etc/nixos/secrets/node02-cert.pem");
    for (path, entry) in &before {
        if path == cert_rel {
            assert_ne!(after[path].bytes, entry.bytes, "node02 cert must change");
        } else {
            assert_eq!(
                &after[path].bytes,
                &entry.bytes,
                "{} must not change",
                path.display()
            );
            if path.extension().is_some_and(|e| e == "pem") {
                assert_eq!(
                    after[path].mtime,
                    entry.mtime,
                    "{} must not be rewritten",
                    path.display()
                );
            }
        }
    }
    let info = inspect(&read(node_cert(&s, "node02"))).unwrap();
    assert!(info.ip_addresses.contains(&ip("10.0.200.22")));
    assert!(!info.ip_addresses.contains(&ip("10.0.200.12")));
    assert_ne!(info.serial_hex, inspect(&old_cert).unwrap().serial_hex);
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        s.join("ca/ca-cert.pem").to_str().unwrap(),
        node_cert(&s, "node02").to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    // fqdn change: CN changes too, still the same key.
    input.nodes[1].fqdn = "node02.other.example".into();
    let planned = plan(&s, &input, now()).unwrap();
    assert!(
        matches!(&planned[..], [SecretAction::IssueCert { leaf, reason: IssueReason::SubjectChanged { .. } }] if *leaf == node("node02")),
        "{planned:?}"
    );
}

#[test]
fn certificates_are_renewed_within_renew_before_and_not_earlier() {
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets_dir(&tmp);
    let t0 = now();
    apply(&s, &input(), t0).unwrap();
    let key = read(node_key(&s, "node01"));

    // 334 days later: 31 days left, nothing to do with the default 30.
    assert!(
        plan(&s, &input(), t0 + Duration::days(334))
            .unwrap()
            .is_empty()
    );
    // 340 days later: 25 days left: every leaf, and only the leaves (not the CA).
    let t1 = t0 + Duration::days(340);
    let planned = plan(&s, &input(), t1).unwrap();
    assert_eq!(planned.len(), 6, "{planned:?}");
    for a in &planned {
        match a {
            SecretAction::IssueCert {
                reason: IssueReason::ExpiresSoon { days_left: 25 },
                ..
            } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        planned[0]
            .to_string()
            .ends_with("because expires in 25 days"),
        "{}",
        planned[0]
    );
    // Custom --renew-before 20: 25 days left is fine.
    let mut lenient = input();
    lenient.renew_before_days = 20;
    assert!(plan(&s, &lenient, t1).unwrap().is_empty());

    apply(&s, &input(), t1).unwrap();
    assert_eq!(read(node_key(&s, "node01")), key, "renewal keeps the key");
    let info = inspect(&read(node_cert(&s, "node01"))).unwrap();
    assert_eq!(
        info.not_after_unix,
        (t1 + Duration::days(365)).unix_timestamp()
    );
    assert!(plan(&s, &input(), t1).unwrap().is_empty());

    // Already expired.
    let t2 = t1 + Duration::days(400);
    let planned = plan(&s, &input(), t2).unwrap();
    assert!(
        planned[0]
            .to_string()
            .ends_with("because expired 35 days ago"),
        "{}",
        planned[0]
    );
}

#[test]
fn wrong_modes_are_reported_and_fixed_without_touching_content() {
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets_dir(&tmp);
    apply(&s, &input(), now()).unwrap();
    let key = node_key(&s, "node03");
    let set = |p: &Path, m: u32| {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap()
    };
    set(&key, 0o644);
    set(&s, 0o755);
    set(&s.join("nodes/node03/etc"), 0o700);
    let bytes = fs::read(&key).unwrap();
    let planned = plan(&s, &input(), now()).unwrap();
    assert_eq!(planned.len(), 3, "{planned:?}");
    assert!(planned.contains(&SecretAction::FixMode {
        path: key.clone(),
        from: 0o644,
        to: 0o600
    }));
    apply(&s, &input(), now()).unwrap();
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&s), 0o700);
    assert_eq!(mode(s.join("nodes/node03/etc")), 0o755);
    assert_eq!(fs::read(&key).unwrap(), bytes);
    assert!(apply(&s, &input(), now()).unwrap().is_empty());
}

fn assert_refuses(s: &Path, input: &StoreInput, needle: &str, file: &str) {
    let before = snapshot(s);
    let err = apply(s, input, now()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(file), "error must name {file}: {msg}");
    assert!(msg.contains(needle), "error must say {needle:?}: {msg}");
    assert!(err.is_user_error(), "{msg}");
    assert_eq!(err.exit_code(), 2);
    assert_eq!(snapshot(s), before, "nothing may be written after: {msg}");
    // The dry run reports the same problem.
    assert!(plan(s, input, now()).is_err());
}

#[test]
fn corrupted_ca_is_an_error_naming_the_file_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets_dir(&tmp);
    apply(&s, &input(), now()).unwrap();
    let mut grown = input();
    grown.nodes.push(store::NodeIdentity {
        hostname: "node04".into(),
        fqdn: "node04.example.com".into(),
        ips: vec![ip("10.0.200.14")],
    });
    let ca_key = s.join("ca/ca-key.pem");
    let ca_cert = s.join("ca/ca-cert.pem");
    let good_key = fs::read(&ca_key).unwrap();
    let good_cert = fs::read(&ca_cert).unwrap();

    // Truncated key.
    fs::write(&ca_key, &good_key[..good_key.len() / 2]).unwrap();
    assert_refuses(&s, &grown, "invalid CA private key", "ca-key.pem");
    // Another CA's key.
    let other = Ca::generate("prod-cluster", 10, KeyAlgorithm::EcdsaP256).unwrap();
    fs::write(&ca_key, other.key_pem()).unwrap();
    assert_refuses(&s, &grown, "does not match", "ca-key.pem");
    fs::write(&ca_key, &good_key).unwrap();

    // Garbage certificate, and a leaf certificate where the CA belongs.
    fs::write(&ca_cert, b"\x00\x01 not a certificate").unwrap();
    assert_refuses(&s, &grown, "invalid CA certificate", "ca-cert.pem");
    fs::copy(node_cert(&s, "node01"), &ca_cert).unwrap();
    assert_refuses(&s, &grown, "not a CA certificate", "ca-cert.pem");
    fs::write(&ca_cert, &good_cert).unwrap();

    // Half a CA.
    fs::remove_file(&ca_key).unwrap();
    assert_refuses(&s, &grown, "refusing to create a new CA", "ca-key.pem");
    fs::write(&ca_key, &good_key).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&ca_key, fs::Permissions::from_mode(0o600)).unwrap();
    }

    // Unreadable (a directory where the file should be).
    fs::remove_file(&ca_cert).unwrap();
    fs::create_dir(&ca_cert).unwrap();
    assert_refuses(&s, &grown, "cannot read", "ca-cert.pem");
    fs::remove_dir(&ca_cert).unwrap();
    fs::write(&ca_cert, &good_cert).unwrap();

    // The whole CA gone while nodes exist: no silent new CA either.
    fs::rename(s.join("ca"), tmp.path().join("ca.saved")).unwrap();
    assert_refuses(&s, &grown, "refusing to create a new CA", "ca");
    fs::rename(tmp.path().join("ca.saved"), s.join("ca")).unwrap();

    // Restored: the run goes through and only adds node04.
    let actions = apply(&s, &grown, now()).unwrap();
    assert_eq!(
        actions,
        [
            SecretAction::NewKey {
                leaf: node("node04")
            },
            SecretAction::CopyCaCert {
                hostname: "node04".into()
            }
        ]
    );
    assert_eq!(fs::read(&ca_key).unwrap(), good_key);
}

#[test]
fn corrupted_node_key_is_an_error_but_a_missing_or_bad_cert_is_reissued() {
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets_dir(&tmp);
    apply(&s, &input(), now()).unwrap();
    let key = node_key(&s, "node01");
    let good = read(&key);
    fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    assert_refuses(&s, &input(), "invalid private key", "node01-key.pem");
    fs::write(&key, &good).unwrap();

    // The certificate is derived data: missing or garbage means a new one for the same key.
    fs::remove_file(node_cert(&s, "node01")).unwrap();
    fs::write(node_cert(&s, "node02"), "junk").unwrap();
    let actions = apply(&s, &input(), now()).unwrap();
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(
        actions[0],
        SecretAction::IssueCert {
            leaf: node("node01"),
            reason: IssueReason::Missing
        }
    );
    assert!(matches!(
        &actions[1],
        SecretAction::IssueCert {
            reason: IssueReason::Unreadable { .. },
            ..
        }
    ));
    assert_eq!(read(&key), good);
    for h in ["node01", "node02"] {
        let cert = read(node_cert(&s, h));
        assert!(verifies_against(&cert, &read(s.join("ca/ca-cert.pem"))).unwrap());
        let (_, cert_pub) = openssl(&[
            "x509",
            "-noout",
            "-pubkey",
            "-in",
            node_cert(&s, h).to_str().unwrap(),
        ]);
        let (_, key_pub) = openssl(&["pkey", "-pubout", "-in", node_key(&s, h).to_str().unwrap()]);
        assert_eq!(cert_pub, key_pub);
    }

    // A certificate from another CA, or for another key, is replaced too.
    let other = Ca::generate("prod-cluster", 10, KeyAlgorithm::EcdsaP256).unwrap();
    let foreign = other
        .issue(
            &LeafSpec::node(
                "node03",
                "node03.example.com",
                &[ip("10.0.200.13"), ip("10.0.100.53")],
                365,
            ),
            Some(&read(node_key(&s, "node03"))),
        )
        .unwrap();
    fs::write(node_cert(&s, "node03"), &foreign.cert_pem).unwrap();
    fs::copy(node_cert(&s, "node01"), node_cert(&s, "node02")).unwrap();
    let planned = plan(&s, &input(), now()).unwrap();
    assert_eq!(
        planned,
        [
            SecretAction::IssueCert {
                leaf: node("node02"),
                reason: IssueReason::KeyMismatch
            },
            SecretAction::IssueCert {
                leaf: node("node03"),
                reason: IssueReason::NotIssuedByCa
            },
        ]
    );
}

#[test]
fn removed_nodes_keep_their_secrets_unless_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets_dir(&tmp);
    apply(&s, &input(), now()).unwrap();
    let mut smaller = input();
    smaller.nodes.remove(2);
    let before = snapshot(&s);
    let actions = apply(&s, &smaller, now()).unwrap();
    assert_eq!(
        actions,
        [SecretAction::KeepOrphan {
            hostname: "node03".into()
        }]
    );
    assert!(!actions[0].changes_files());
    assert_eq!(snapshot(&s), before);

    smaller.prune_secrets = true;
    let actions = apply(&s, &smaller, now()).unwrap();
    assert_eq!(
        actions,
        [SecretAction::Prune {
            hostname: "node03".into()
        }]
    );
    assert!(!s.join("nodes/node03").exists());
    assert!(node_key(&s, "node02").exists());
    assert!(apply(&s, &smaller, now()).unwrap().is_empty());
}

#[test]
fn concurrent_applies_from_threads_create_one_ca_and_one_key_each() {
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets_dir(&tmp);
    let input = input_with_nodes(60);
    let barrier = Arc::new(Barrier::new(4));
    let results: Vec<Vec<SecretAction>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (b, s, input) = (barrier.clone(), s.clone(), input.clone());
                scope.spawn(move || {
                    b.wait();
                    apply(&s, &input, now()).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    check_single_writer(&s, &input, &results);
}

#[test]
fn concurrent_applies_from_processes_create_one_ca_and_one_key_each() {
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets_dir(&tmp);
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "child_apply", "--nocapture", "--test-threads=1"])
                .env("PLASMA_PKI_CHILD_DIR", &s)
                .env("PLASMA_PKI_CHILD_NODES", "60")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let results: Vec<Vec<SecretAction>> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            let text = String::from_utf8(out.stdout).unwrap();
            let line = text
                .lines()
                .find_map(|l| l.split_once("ACTIONS:").map(|(_, json)| json))
                .unwrap_or_else(|| panic!("no ACTIONS line in {text}"));
            actions_from_json(line)
        })
        .collect();
    check_single_writer(&s, &input_with_nodes(60), &results);
}

/// The JSON form of the actions, reduced to what the concurrency check needs.
fn actions_from_json(line: &str) -> Vec<SecretAction> {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|a| match a["action"].as_str().unwrap() {
            "create-ca" => Some(SecretAction::CreateCa),
            "new-key" => {
                let leaf = match a["leaf"]["kind"].as_str().unwrap() {
                    "node" => node(a["leaf"]["name"].as_str().unwrap()),
                    "pxe-server" => LeafId::PxeServer,
                    "viewer" => LeafId::Viewer,
                    _ => LeafId::Operator,
                };
                Some(SecretAction::NewKey { leaf })
            }
            _ => None,
        })
        .collect()
}

/// Exactly one run did the work, every other one found nothing to do, and the result is whole.
fn check_single_writer(s: &Path, input: &StoreInput, results: &[Vec<SecretAction>]) {
    let creators = results
        .iter()
        .filter(|r| r.contains(&SecretAction::CreateCa))
        .count();
    assert_eq!(creators, 1, "exactly one run creates the CA");
    let new_keys = results
        .iter()
        .flatten()
        .filter(|a| matches!(a, SecretAction::NewKey { .. }))
        .count();
    assert_eq!(
        new_keys,
        input.nodes.len() + 3,
        "one key per leaf, never two"
    );
    for r in results
        .iter()
        .filter(|r| !r.contains(&SecretAction::CreateCa))
    {
        assert!(r.is_empty(), "a waiting run must find nothing to do: {r:?}");
    }
    let ca = read(s.join("ca/ca-cert.pem"));
    for n in &input.nodes {
        assert!(verifies_against(&read(node_cert(s, &n.hostname)), &ca).unwrap());
    }
    assert!(plan(s, input, now()).unwrap().is_empty());
    assert!(snapshot(s).keys().all(
        |p| !p.to_string_lossy().contains(".tmp-") && !p.to_string_lossy().contains(".ca-new-")
    ));
}

#[test]
fn rotate_one_node_keeps_the_old_files_with_a_timestamp() {
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets_dir(&tmp);
    apply(&s, &input(), now()).unwrap();
    let old_key = read(node_key(&s, "node01"));
    let old_cert = read(node_cert(&s, "node01"));
    let other_before = read(node_key(&s, "node02"));
    let t = OffsetDateTime::new_utc(
        time::Date::from_calendar_date(2026, time::Month::November, 24).unwrap(),
        time::Time::from_hms(5, 15, 0).unwrap(),
    );
    // `t` is in the future relative to the certificates; rotation does not care.
    let actions = rotate(&s, &input(), Rotate::Node("node01".into()), t).unwrap();
    // Kept outside nodes/<host>/ so `--extra-files` never ships a retired key to the machine.
    let dir = s.join("rotated/nodes/node01/etc/nixos/secrets");
    let kept_key = dir.join("node01-key.pem.20261124T051500Z");
    let kept_cert = dir.join("node01-cert.pem.20261124T051500Z");
    assert_eq!(
        actions,
        [SecretAction::Rotated {
            leaf: node("node01"),
            kept: vec![kept_key.clone(), kept_cert.clone()]
        }]
    );
    assert_eq!(read(&kept_key), old_key);
    assert_eq!(read(&kept_cert), old_cert);
    assert_eq!(mode(&kept_key), 0o600);
    assert_eq!(mode(s.join("rotated")), 0o700);
    assert_eq!(mode(&dir), 0o700);
    let live: Vec<String> = fs::read_dir(s.join("nodes/node01/etc/nixos/secrets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        live.iter().all(|n| n.ends_with(".pem")),
        "only live files under nodes/: {live:?}"
    );
    let new_key = read(node_key(&s, "node01"));
    assert_ne!(new_key, old_key);
    assert_eq!(mode(node_key(&s, "node01")), 0o600);
    assert!(
        verifies_against(
            &read(node_cert(&s, "node01")),
            &read(s.join("ca/ca-cert.pem"))
        )
        .unwrap()
    );
    assert_eq!(read(node_key(&s, "node02")), other_before);

    // Same second again: a second suffix, nothing overwritten.
    rotate(&s, &input(), Rotate::Node("node01".into()), t).unwrap();
    assert_eq!(read(dir.join("node01-key.pem.20261124T051500Z.1")), new_key);
    assert_eq!(read(&kept_key), old_key);

    // generate afterwards accepts the rotated certificate as is.
    assert!(apply(&s, &input(), t).unwrap().is_empty());
}

#[test]
fn rotate_all_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets_dir(&tmp);
    // Nothing to rotate yet.
    let err = rotate(&s, &input(), Rotate::All, now()).unwrap_err();
    assert!(
        err.is_user_error() && err.to_string().contains("generate"),
        "{err}"
    );
    apply(&s, &input(), now()).unwrap();
    let ca_before = fs::read(s.join("ca/ca-key.pem")).unwrap();
    let keys_before: Vec<String> = ["node01", "node02", "node03"]
        .iter()
        .map(|h| read(node_key(&s, h)))
        .collect();
    let actions = rotate(&s, &input(), Rotate::All, now()).unwrap();
    assert_eq!(actions.len(), 6, "{actions:?}");
    assert!(
        actions
            .iter()
            .all(|a| matches!(a, SecretAction::Rotated { kept, .. } if kept.len() == 2))
    );
    for (h, old) in ["node01", "node02", "node03"].iter().zip(&keys_before) {
        assert_ne!(&read(node_key(&s, h)), old);
    }
    assert_eq!(
        fs::read(s.join("ca/ca-key.pem")).unwrap(),
        ca_before,
        "the CA is never rotated"
    );

    let err = rotate(&s, &input(), Rotate::Node("node09".into()), now()).unwrap_err();
    assert!(matches!(err, PkiError::UnknownLeaf(_)), "{err}");
    assert!(err.to_string().contains("node09"));

    // A node whose key was corrupted can still be rotated; the broken key is kept.
    fs::write(node_key(&s, "node02"), "broken").unwrap();
    rotate(&s, &input(), Rotate::Node("node02".into()), now()).unwrap();
    assert!(apply(&s, &input(), now()).unwrap().is_empty());
    let kept_broken = fs::read_dir(s.join("rotated/nodes/node02/etc/nixos/secrets"))
        .unwrap()
        .filter_map(|e| fs::read_to_string(e.unwrap().path()).ok())
        .any(|c| c == "broken");
    assert!(kept_broken);
}

#[test]
fn list_shows_every_certificate_with_expiry_and_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets_dir(&tmp);
    let t = now();
    apply(&s, &input(), t).unwrap();
    let listed = list_at(&s, t).unwrap();
    assert_eq!(listed.len(), 7, "{listed:?}");
    assert!(listed[0].is_ca && listed[0].leaf.is_none());
    assert_eq!(listed[0].subject, "prod-cluster CA");
    assert_eq!(listed[0].days_left, 3650);
    let n1 = listed
        .iter()
        .find(|c| c.leaf == Some(node("node01")))
        .unwrap();
    assert_eq!(n1.subject, "node01.example.com");
    assert_eq!(
        n1.sans,
        [
            "node01.example.com",
            "node01",
            "localhost",
            "10.0.200.11",
            "10.0.100.51",
            "127.0.0.1",
            "::1"
        ]
    );
    assert_eq!(n1.days_left, 365);
    assert_eq!(n1.path, node_cert(&s, "node01"));
    assert!(listed.iter().all(|c| c.verifies), "{listed:?}");
    assert_eq!(
        list_at(&s, t + Duration::days(300)).unwrap()[1].days_left,
        65
    );

    // A certificate from a foreign CA shows up as not verifying; the JSON form is stable.
    let other = Ca::generate("prod-cluster", 10, KeyAlgorithm::EcdsaP256).unwrap();
    let foreign = other.issue(&LeafSpec::operator(10), None).unwrap();
    fs::write(s.join("operator/operator-cert.pem"), foreign.cert_pem).unwrap();
    let listed = store::list(&s).unwrap();
    let op = listed
        .iter()
        .find(|c| c.leaf == Some(LeafId::Operator))
        .unwrap();
    assert!(!op.verifies);
    let json = serde_json::to_value(op).unwrap();
    assert_eq!(json["leaf"]["kind"], "operator");
    assert_eq!(json["verifies"], false);

    // A corrupted certificate names the file.
    fs::write(node_cert(&s, "node03"), "junk").unwrap();
    let err = store::list(&s).unwrap_err();
    assert!(err.to_string().contains("node03-cert.pem"), "{err}");
    assert!(store::list(&tmp.path().join("missing")).is_err());
}

type Mutation = Box<dyn Fn(&mut StoreInput)>;

#[test]
fn bad_inventory_is_rejected_before_touching_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets_dir(&tmp);
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|i| i.nodes[0].hostname = "../etc".into()),
            "not a lower-case DNS label",
        ),
        (
            Box::new(|i| i.nodes[1].hostname = "node01".into()),
            "appears twice",
        ),
        (
            Box::new(|i| i.nodes[0].fqdn = "bad..name".into()),
            "not a valid DNS name",
        ),
        (Box::new(|i| i.cluster_name = " ".into()), "cluster name"),
        (Box::new(|i| i.renew_before_days = 400), "renew-before"),
        (Box::new(|i| i.node_validity_days = 0), "at least one day"),
    ];
    for (mutate, needle) in cases {
        let mut input = input();
        mutate(&mut input);
        let err = apply(&s, &input, now()).unwrap_err();
        assert!(matches!(err, PkiError::InvalidInput(_)), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
        assert_eq!(err.exit_code(), 2);
        assert!(!s.exists());
    }
}
