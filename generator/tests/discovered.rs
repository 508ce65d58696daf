//! `plasmagen discovered` against a real collector (mTLS, in-process): discovery reports from
//! an unknown MAC and from an inventory node's MAC; only the unknown one becomes a `[[nodes]]`
//! entry, with its by-id disk path, and the TOML parses.

mod collector_support;

use plasma_wire::discover::{Cpu, DiscoverReport, Disk, Nic};
use plasmagen::collector::Config;

use collector_support::{As, client, runbook, secrets_for, serve_tls, state};

fn report(mac: &str, serial: &str) -> DiscoverReport {
    DiscoverReport {
        primary_mac: mac.into(),
        nics: vec![Nic {
            name: "eno1".into(),
            mac: mac.into(),
            speed_mbps: Some(25000),
            carrier: Some(true),
            driver: None,
        }],
        disks: vec![Disk {
            name: "nvme0n1".into(),
            size_bytes: 960_197_124_096,
            by_id: vec![
                "/dev/disk/by-id/nvme-eui.0025388b9150e4a2".into(),
                format!("/dev/disk/by-id/nvme-SAMSUNG_MZQL2960HCJR_{serial}"),
            ],
            model: Some("SAMSUNG MZQL2960HCJR-00A07".into()),
            rotational: Some(false),
            removable: None,
        }],
        memory_bytes: 256 << 30,
        cpu: Cpu {
            model: "AMD EPYC 7313P 16-Core Processor".into(),
            logical_cpus: 32,
        },
        hostname: None,
        firmware: None,
        bmc: None,
    }
}

fn discovered(url: &str, secrets: &std::path::Path, format: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_plasmagen"))
        .args(["discovered", "--collector", url, "--secrets"])
        .arg(secrets)
        .args(["--format", format])
        .output()
        .expect("run plasmagen discovered");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_discovered_machines_become_inventory_entries() {
    let inv = runbook();
    let known_mac = inv.nodes[0].mac.as_str().to_string();
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets_for(&inv, dir.path());
    let url = serve_tls(state(inv, dir.path(), Config::default()), &secrets).await;
    let http = client(&secrets, &secrets, As::Nobody);
    for (mac, serial) in [
        ("52:54:00:aa:bb:cc", "S64FNE0R1"),
        (known_mac.as_str(), "S64FNE0R2"),
    ] {
        let resp = http
            .post(format!("{url}/v1/discover"))
            .json(&report(mac, serial))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }

    let (u, s) = (url.clone(), secrets.clone());
    let text = tokio::task::spawn_blocking(move || discovered(&u, &s, "toml"))
        .await
        .unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{text}");
    let n = nodes[0].as_table().unwrap();
    assert_eq!(n["mac"].as_str(), Some("52:54:00:aa:bb:cc"));
    assert_eq!(
        n["disks"].as_array().unwrap()[0].as_str(),
        Some("/dev/disk/by-id/nvme-SAMSUNG_MZQL2960HCJR_S64FNE0R1"),
        "serial-based name preferred over the EUI"
    );
    assert!(
        !text.contains(&known_mac),
        "an inventory node is not proposed:\n{text}"
    );
    assert!(
        text.contains("# 32 x AMD EPYC 7313P 16-Core Processor, 256.0 GiB memory"),
        "{text}"
    );

    let (u, s) = (url.clone(), secrets.clone());
    let json = tokio::task::spawn_blocking(move || discovered(&u, &s, "json"))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["mac"], "52:54:00:aa:bb:cc");
    assert_eq!(v[0]["remote"], "127.0.0.1");
}

/// `plasmagen discovered ARGS` with `stdin` (no terminal): (exit code, stdout, stderr).
fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_plasmagen"))
        .arg("discovered")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run plasmagen discovered");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The same on a terminal (`script`), typing `typed`: (exit code, transcript).
fn run_on_terminal(args: &[&str], typed: &str) -> (i32, String) {
    let inner = std::iter::once(env!("CARGO_BIN_EXE_plasmagen").to_string())
        .chain(std::iter::once("discovered".to_string()))
        .chain(args.iter().map(|a| format!("'{a}'")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &inner, "/dev/null"]);
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script (bsdutils)");
    use std::io::Write;
    let mut keyboard = child.stdin.take().unwrap();
    keyboard.write_all(typed.as_bytes()).unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("plasmagen discovered --prune hung on a terminal");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    drop(keyboard);
    let out = child.wait_with_output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn listed(url: &str, secrets: &std::path::Path) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&discovered(url, secrets, "json")).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| m["mac"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_shows_asks_and_forgets_only_unknown_machines() {
    let inv = runbook();
    let known_mac = inv.nodes[0].mac.as_str().to_string();
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets_for(&inv, dir.path());
    let s = state(inv, dir.path(), Config::default());
    let url = serve_tls(s.clone(), &secrets).await;
    let http = client(&secrets, &secrets, As::Nobody);
    let unknown = [
        "52:54:00:aa:bb:01",
        "52:54:00:aa:bb:02",
        "52:54:00:aa:bb:03",
    ];
    for (i, mac) in unknown.iter().chain([&known_mac.as_str()]).enumerate() {
        let resp = http
            .post(format!("{url}/v1/discover"))
            .json(&report(mac, &format!("S{i}")))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }
    let sec = secrets.display().to_string();
    let (u, sc) = (url.clone(), sec.clone());
    tokio::task::spawn_blocking(move || {
        let conn = ["--collector", u.as_str(), "--secrets", sc.as_str()];
        let with = |more: &[&'static str]| -> Vec<&str> {
            conn.iter().copied().chain(more.iter().copied()).collect()
        };
        let secrets = std::path::Path::new(&sc);
        // No terminal, no --yes: refused before anything is removed.
        let (code, _, err) = run(&with(&["--prune"]), "prune 3\n");
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("--yes"), "{err}");
        assert!(
            err.contains("52:54:00:aa:bb:01"),
            "the machines are shown first: {err}"
        );
        assert_eq!(listed(&u, secrets).len(), 3);
        // A MAC that is not a discovered unknown machine: nothing pruned.
        let (code, _, err) = run(
            &with(&["--prune", "--mac", "52:54:00:12:34:56", "--yes"]),
            "",
        );
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("nothing was pruned"), "{err}");
        // On a terminal: the wrong answer does nothing, the right one prunes.
        let (code, out) = run_on_terminal(
            &with(&["--prune", "--mac", "52-54-00-AA-BB-02"]),
            "prune 2\n",
        );
        assert_eq!(code, 2, "{out}");
        assert!(out.contains("not confirmed"), "{out}");
        assert_eq!(listed(&u, secrets).len(), 3);
        let (code, out) = run_on_terminal(
            &with(&["--prune", "--mac", "52-54-00-AA-BB-02"]),
            "prune 1\n",
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("Type prune 1 to forget them"), "{out}");
        assert!(out.contains("pruned 1 discovered machine(s)"), "{out}");
        assert_eq!(
            listed(&u, secrets),
            ["52:54:00:aa:bb:01", "52:54:00:aa:bb:03"]
        );
        // --yes: every unknown machine; run again, nothing left to do.
        let (code, out, err) = run(&with(&["--prune", "--yes"]), "");
        assert_eq!(
            (code, out.as_str()),
            (0, "pruned 2 discovered machine(s)\n"),
            "{err}"
        );
        assert!(listed(&u, secrets).is_empty());
        let (code, out, err) = run(&with(&["--prune", "--yes"]), "");
        assert_eq!((code, out.as_str()), (0, ""), "{err}");
        assert!(err.contains("nothing to prune"), "{err}");
    })
    .await
    .unwrap();
    // The inventory node's facts stay.
    let fleet = s.fleet.read().unwrap();
    assert!(fleet.discovered.contains_key(&known_mac));
    assert_eq!(fleet.discovered.len(), 1);
}
