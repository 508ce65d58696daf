//! End to end, as docs/lab.md tells an operator: `plasmagen lab up` with examples/runbook.toml's
//! three control-plane nodes (UEFI machines behind emulated IPMI BMCs at the runbook's BMC
//! addresses) and one machine nobody typed in, then one `plasmagen up --enlist-as worker
//! --until installed` from a terminal inside the lab's namespace: the unknown machine's
//! discovery report becomes an inventory entry (its real by-id disk, MAC, firmware), generate
//! renders it, the lab reloads (dhcpd, the collector's inventory), the three founders are
//! powered on through their BMCs, netboot the installer and are "installed" by the
//! nixos-anywhere stand-in (Nix cannot install here). The enlisted machine's next boot gets
//! its reservation. `lab down` then leaves no process, namespace or file behind.
//!
//! Needs root, /dev/net/tun and the BMC venv of scripts/test.sh; fails (never skips) without
//! them. While it runs the lab's logs are in the test's OUT/lab/; on failure the tails are
//! printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plasma_tests::e2e::hook_vm::quote;
use plasma_tests::e2e::lab;
use plasma_tests::e2e::provision_lab::{run_bounded, workspace};
use plasma_tests::e2e::{poll, tail, tools};

const BMC_PASSWORD: &str = "lab-bmc-Pw 9";
const UP_LIMIT: Duration = Duration::from_secs(1200);
const UNKNOWN_MAC: &str = "52:54:00:1a:b0:01";

/// examples/runbook.toml up to its fourth node, root's key replaced by the test's.
fn three_node_runbook(public_key: &str) -> String {
    let text = std::fs::read_to_string(workspace().join("examples/runbook.toml")).unwrap();
    let parts: Vec<&str> = text.split("\n[[nodes]]").collect();
    assert!(parts.len() >= 4, "runbook.toml has fewer than three nodes");
    let three = parts[..4].join("\n[[nodes]]");
    let runbook_key = three
        .lines()
        .find(|l| l.trim_start().starts_with("\"ssh-ed25519 "))
        .expect("runbook key line")
        .to_string();
    three.replace(&runbook_key, &format!("  \"{}\",", public_key.trim()))
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn diagnose(lab_dir: &Path) -> String {
    let mut text = String::new();
    for f in [
        "collector.log",
        "dhcpd.log",
        "node01.serial.log",
        "unknown1.serial.log",
        "bmc-node01.log",
    ] {
        text.push_str(&tail(&lab_dir.join(f), 25));
        text.push('\n');
    }
    text
}

/// Processes whose command line mentions `needle` (not zombies: they hold nothing).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if !zombie && cmdline.contains(needle) && pid != std::process::id() {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

#[test]
fn lab_up_then_up_enlists_and_installs_the_runbook_founders() {
    tools::require_privileges().unwrap_or_else(|e| panic!("{e}"));
    tools::Tools::find().unwrap_or_else(|e| panic!("{e}"));
    let bins = lab::build_binaries().unwrap_or_else(|e| panic!("{e}"));
    let python = std::env::var_os("PLASMA_BMC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/bmc-venv/bin/python"));
    let home = tempfile::Builder::new()
        .prefix("plasma-lab-up-")
        .tempdir()
        .unwrap();
    let h = home.path();
    let key = h.join("id_ed25519");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "lab-operator", "-f"])
        .arg(&key));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let inventory = h.join("inventory.toml");
    let original = three_node_runbook(&public);
    std::fs::write(&inventory, &original).unwrap();
    // The stand-in for nixos-anywhere on PATH; it records each call under PLASMA_LAB.
    std::fs::create_dir_all(h.join("bin")).unwrap();
    std::fs::copy(
        workspace().join("generator/tests/provision_lab/nixos-anywhere"),
        h.join("bin/nixos-anywhere"),
    )
    .unwrap();
    let out = h.join("out");
    let plasmagen = |args: &[&str]| {
        let mut c = Command::new(&bins.plasmagen);
        c.args(args)
            .env("IPMI_PASSWORD", BMC_PASSWORD)
            .env("PLASMA_BMC_PYTHON", &python);
        c
    };
    let out_s = out.display().to_string();
    let inv_s = inventory.display().to_string();
    run(&mut plasmagen(&["generate", &inv_s, "--out", &out_s]));

    // 1. lab up: three powered-off machines behind BMCs, one unknown machine powered on.
    let lab_up = run(&mut plasmagen(&["lab", "up", &out_s, "--unknown", "1"]));
    let said = String::from_utf8_lossy(&lab_up.stderr).into_owned();
    let lab_dir = out.join("lab");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab_dir.join("state.json")).unwrap()).unwrap();
    let netns = state["netns"].as_str().unwrap().to_string();
    let guard = LabGuard {
        plasmagen: bins.plasmagen.clone(),
        out: out.clone(),
    };
    for (node, bmc) in [
        ("node01", "10.0.10.50:623"),
        ("node02", "10.0.10.51:623"),
        ("node03", "10.0.10.52:623"),
    ] {
        assert!(
            said.contains(&format!("{node} (")) && said.contains(bmc),
            "{node}: {said}"
        );
    }
    let status = run(&mut plasmagen(&["lab", "status", &out_s]));
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    for line in [
        "running  dhcpd",
        "running  collector",
        "running  bmc-node03",
    ] {
        assert!(status.contains(line), "{line}: {status}");
    }
    assert!(status.contains("off      machine node01"), "{status}");
    assert!(status.contains("running  machine unknown1"), "{status}");

    // 2. One command, from a terminal, inside the lab's namespace.
    let path = format!(
        "{}:{}",
        h.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let up_line = [
        bins.plasmagen.display().to_string(),
        "up".into(),
        out_s.clone(),
        "--inventory".into(),
        inv_s.clone(),
        "-i".into(),
        key.display().to_string(),
        "--enlist-as".into(),
        "worker".into(),
        "--expect-unknown".into(),
        "1".into(),
        "--until".into(),
        "installed".into(),
        "--installer-timeout".into(),
        "900".into(),
    ]
    .iter()
    .map(|a| quote(a))
    .collect::<Vec<_>>()
    .join(" ");
    let up_command = |line: &str| {
        let mut up = Command::new("ip");
        up.args(["netns", "exec", &netns, "env"])
            .arg(format!("PATH={path}"))
            .arg(format!("PLASMA_LAB={}", h.display()))
            .arg(format!("IPMI_PASSWORD={BMC_PASSWORD}"))
            .args(["script", "-qefc", line, "/dev/null"]);
        use std::os::unix::process::CommandExt;
        up.process_group(0).stdin(Stdio::null());
        up
    };
    let start = Instant::now();
    let result = run_bounded(up_command(&up_line), UP_LIMIT, || {})
        .unwrap_or_else(|e| panic!("{e}\n{}", diagnose(&lab_dir)));
    let took = start.elapsed();
    assert!(
        result.status.success(),
        "plasmagen up failed\n{}\n{}",
        result.text(),
        diagnose(&lab_dir)
    );
    eprintln!("{}", result.stdout);
    eprintln!(
        "figure: lab power-on to installed (three UEFI founders, `plasmagen up`): {:.1} s",
        took.as_secs_f64()
    );

    // 3. The unknown machine is an inventory entry: the file keeps every earlier line.
    let edited = std::fs::read_to_string(&inventory).unwrap();
    assert!(edited.starts_with(&original), "the runbook's lines changed");
    let added = &edited[original.len()..];
    assert_eq!(added.matches("[[nodes]]").count(), 1, "{added}");
    for want in [
        &format!("mac = \"{UNKNOWN_MAC}\""),
        "role = \"worker\"",
        "firmware = \"bios\"",
        "/dev/disk/by-id/virtio-LABUNKNOWN01",
    ] {
        assert!(added.contains(want), "{want} missing in:\n{added}");
    }
    let hostname = added
        .lines()
        .find_map(|l| l.strip_prefix("hostname = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("hostname")
        .to_string();
    let reserved = added
        .lines()
        .find_map(|l| l.strip_prefix("provisioning_ip = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("provisioning_ip")
        .to_string();
    // generate rendered it and the served dhcpd.conf reserves its address.
    let flake_node = out
        .join("flake/nodes")
        .join(format!("{hostname}.example.com"));
    assert!(
        flake_node.join("configuration.nix").is_file(),
        "{}",
        flake_node.display()
    );
    let dhcpd = std::fs::read_to_string(out.join("flake/pxe/dhcpd.conf")).unwrap();
    assert!(
        dhcpd.contains(UNKNOWN_MAC) && dhcpd.contains(&reserved),
        "{dhcpd}"
    );

    // 4. The founders: PXE once in UEFI mode, powered on, installed once each.
    let calls = std::fs::read_dir(h.join("calls"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "argv"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(calls, 3, "nixos-anywhere calls\n{}", result.text());
    for node in ["node01", "node02", "node03"] {
        let log = std::fs::read_to_string(lab_dir.join(format!("bmc-{node}.jsonl"))).unwrap();
        assert!(
            log.contains("\"uefi\": true") || log.contains("\"uefi\":true"),
            "{node}: {log}"
        );
        assert!(log.contains("power_on"), "{node}: {log}");
        assert!(
            result
                .stdout
                .lines()
                .any(|l| l.contains(node) && l.contains("installed")),
            "{node} not installed in the summary:\n{}",
            result.stdout
        );
    }
    // The collector re-read its inventory: it knows the enlisted node.
    let node_status = Command::new("ip")
        .args(["netns", "exec", &netns])
        .arg(&bins.plasmagen)
        .args([
            "status",
            "--collector",
            "https://10.0.100.10:8443",
            "--secrets",
        ])
        .arg(out.join("secrets"))
        .args(["--json"])
        .output()
        .unwrap();
    let fleet = String::from_utf8_lossy(&node_status.stdout);
    assert!(
        fleet.contains(&format!("\"hostname\": \"{hostname}\""))
            || fleet.contains(&format!("\"hostname\":\"{hostname}\"")),
        "{fleet}"
    );

    // 5. The enlisted machine's next boot gets its reservation.
    let serial = lab_dir.join("unknown1.serial.log");
    let before = std::fs::read_to_string(&serial).unwrap_or_default().len();
    run(Command::new("sh")
        .arg(lab_dir.join("vm-unknown1.sh"))
        .env("BOOT_DEVICE", "default"));
    let lease = format!("E2E-INIT: lease {reserved} ");
    let got = poll(Duration::from_secs(300), Duration::from_secs(1), || {
        let text = std::fs::read_to_string(&serial).unwrap_or_default();
        text.get(before..)
            .is_some_and(|t| t.contains(&lease))
            .then_some(())
    });
    assert!(
        got.is_some(),
        "{hostname} did not get {reserved} on its next boot\n{}",
        diagnose(&lab_dir)
    );

    // 6. The same `up` again (as after an interruption): nothing is enlisted, powered or
    //    installed twice; the inventory is unchanged.
    let bmc_before: Vec<String> = ["node01", "node02", "node03"]
        .iter()
        .map(|n| std::fs::read_to_string(lab_dir.join(format!("bmc-{n}.jsonl"))).unwrap())
        .collect();
    let again_line = up_line.replace(
        &format!("{} {}", quote("--expect-unknown"), quote("1")),
        &format!("{} {}", quote("--discover-settle"), quote("3")),
    );
    assert_ne!(again_line, up_line);
    let again = run_bounded(up_command(&again_line), UP_LIMIT, || {})
        .unwrap_or_else(|e| panic!("{e}\n{}", diagnose(&lab_dir)));
    assert!(
        again.status.success(),
        "second up failed\n{}\n{}",
        again.text(),
        diagnose(&lab_dir)
    );
    assert_eq!(std::fs::read_to_string(&inventory).unwrap(), edited);
    let installs_now = std::fs::read_dir(h.join("calls"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "argv"))
        .count();
    assert_eq!(
        installs_now,
        3,
        "second up installed again\n{}",
        again.text()
    );
    for (n, before) in ["node01", "node02", "node03"].iter().zip(&bmc_before) {
        let now = std::fs::read_to_string(lab_dir.join(format!("bmc-{n}.jsonl"))).unwrap();
        let new_calls = &now[before.len()..];
        assert!(
            !new_calls.contains("power_on") && !new_calls.contains("boot_flags"),
            "{n} powered again: {new_calls}"
        );
    }

    // 7. lab down: no process, namespace or file of the lab is left.
    drop(guard);
    assert!(!Path::new("/run/netns").join(&netns).exists());
    assert!(!lab_dir.exists(), "{} left", lab_dir.display());
    let left = processes_mentioning(&lab_dir.display().to_string());
    assert!(left.is_empty(), "processes left: {left:?}");
    let left = processes_mentioning(&netns);
    assert!(left.is_empty(), "processes left: {left:?}");
    // A second down has nothing to do.
    let again = run(&mut plasmagen(&["lab", "down", &out_s]));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("nothing to remove"),
        "{again:?}"
    );
}

/// `lab down` when the test ends, also when it panics.
struct LabGuard {
    plasmagen: PathBuf,
    out: PathBuf,
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = Command::new(&self.plasmagen)
            .args(["lab", "down"])
            .arg(&self.out)
            .stdin(Stdio::null())
            .output();
    }
}
