//! `plasmagen enlist` against a real collector (mTLS, in-process) holding discovery reports:
//! the machine becomes a valid `[[nodes]]` entry in a copy of examples/runbook.toml, every
//! existing byte stays, re-running changes nothing, a dry run writes nothing, an invalid result
//! is refused with the file untouched, and `generate` renders the new node.

mod collector_support;
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use plasma_wire::discover::{BmcLan, Cpu, DiscoverReport, Disk, Nic};
use plasmagen::collector::Config;

use collector_support::{As, client, runbook, secrets_for, serve_tls, state};

const MAC: &str = "52:54:00:aa:bb:cc";

fn nic(name: &str, mac: &str, speed: u64) -> Nic {
    Nic {
        name: name.into(),
        mac: mac.into(),
        speed_mbps: Some(speed),
        carrier: Some(true),
        driver: Some("ice".into()),
    }
}

fn disk(name: &str, gib: u64, rotational: bool, removable: bool, id: &str) -> Disk {
    Disk {
        name: name.into(),
        size_bytes: gib << 30,
        by_id: vec![format!("/dev/disk/by-id/{id}")],
        model: None,
        rotational: Some(rotational),
        removable: Some(removable),
    }
}

/// A worker-class machine: PXE on a 1G port, two 25G ports, an NVMe and a SATA SSD and a
/// spinning disk, a USB stick, UEFI, a BMC that answered `ipmitool lan print`.
fn report() -> DiscoverReport {
    DiscoverReport {
        primary_mac: MAC.into(),
        nics: vec![
            nic("eno1", MAC, 1000),
            nic("ens1f0", "52:54:00:aa:bb:d0", 25000),
            nic("ens1f1", "52:54:00:aa:bb:d1", 25000),
        ],
        disks: vec![
            disk("nvme0n1", 960, false, false, "nvme-SAMSUNG_MZQL2960_S64F"),
            disk("sda", 240, false, false, "ata-INTEL_SSDSC2KB240G8_PHY1"),
            disk("sdb", 8000, true, false, "ata-ST8000NM000A_ZA1"),
            disk("sdc", 64, false, true, "usb-SanDisk_Ultra_4C53"),
        ],
        memory_bytes: 256 << 30,
        cpu: Cpu {
            model: "AMD EPYC 7313P 16-Core Processor".into(),
            logical_cpus: 32,
        },
        hostname: None,
        firmware: Some("uefi".into()),
        bmc: Some(BmcLan {
            address: Some("10.0.10.56".into()),
            mac: Some("0c:c4:7a:00:00:56".into()),
        }),
    }
}

fn enlist(url: &str, secrets: &Path, inventory: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plasmagen"))
        .arg("enlist")
        .arg(inventory)
        .args(["--collector", url, "--secrets"])
        .arg(secrets)
        .args(extra)
        .output()
        .expect("run plasmagen enlist")
}

fn show(o: &Output) -> String {
    format!(
        "exit {}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_discovered_machine_becomes_a_valid_entry_with_one_command() {
    let inv = runbook();
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets_for(&inv, dir.path());
    let url = serve_tls(state(inv, dir.path(), Config::default()), &secrets).await;
    let resp = client(&secrets, &secrets, As::Nobody)
        .post(format!("{url}/v1/discover"))
        .json(&report())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());

    let original =
        std::fs::read_to_string(common::repo_root().join("examples/runbook.toml")).unwrap();
    let inventory: PathBuf = dir.path().join("inventory.toml");
    std::fs::write(&inventory, &original).unwrap();
    let (u, s, i) = (url.clone(), secrets.clone(), inventory.clone());
    let run = move |extra: &'static [&'static str]| {
        let (u, s, i) = (u.clone(), s.clone(), i.clone());
        move || enlist(&u, &s, &i, extra)
    };

    // A result that would not validate (underscore in a host name): refused, untouched.
    let o = tokio::task::spawn_blocking(run(&[
        "--all",
        "--role",
        "worker",
        "--hostname",
        "bad_name##",
    ]))
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(show(&o).contains("hostname"), "{}", show(&o));
    assert_eq!(std::fs::read_to_string(&inventory).unwrap(), original);

    // Dry run: the diff, nothing written.
    let o = tokio::task::spawn_blocking(run(&[
        "--all",
        "--role",
        "worker",
        "--dry-run",
        "--bmc-user",
        "admin",
    ]))
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let diff = String::from_utf8_lossy(&o.stdout);
    assert!(diff.contains("+hostname = \"node06\""), "{diff}");
    assert_eq!(std::fs::read_to_string(&inventory).unwrap(), original);

    let o = tokio::task::spawn_blocking(run(&["--all", "--role", "worker", "--bmc-user", "admin"]))
        .await
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let edited = std::fs::read_to_string(&inventory).unwrap();
    // Every byte of the original stays; exactly one [[nodes]] block is added after it.
    assert!(edited.starts_with(&original), "{edited}");
    let added = &edited[original.len()..];
    assert_eq!(added.matches("[[nodes]]").count(), 1, "{added}");
    for line in [
        "hostname = \"node06\"",
        "role = \"worker\"",
        "mac = \"52:54:00:aa:bb:cc\"",
        // Worker pools of the runbook's plan: provisioning .80-.99, production .20-.99 (node04
        // and node05 hold .20 and .21).
        "provisioning_ip = \"10.0.100.80\"",
        "production_ip = \"10.0.200.22\"",
        "production_macs = [\"52:54:00:aa:bb:d0\", \"52:54:00:aa:bb:d1\"]",
        // The smallest SSD; not the USB stick, not the spinning disk.
        "disks = [\"/dev/disk/by-id/ata-INTEL_SSDSC2KB240G8_PHY1\"]",
        "disk_layout = \"single\"",
        "firmware = \"uefi\"",
        "bmc = { address = \"10.0.10.56\", username = \"admin\" }",
    ] {
        assert!(
            added.lines().any(|l| l == line),
            "missing {line:?} in:\n{added}"
        );
    }
    plasmagen::inventory::load(&inventory).unwrap_or_else(|e| panic!("{e:?}"));

    // Again: already enlisted, nothing changes.
    let o = tokio::task::spawn_blocking(run(&["52:54:00:AA:BB:CC", "--role", "worker"]))
        .await
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        show(&o).contains("already enlisted as node06"),
        "{}",
        show(&o)
    );
    assert_eq!(std::fs::read_to_string(&inventory).unwrap(), edited);
    // --all again: the collector still lists the machine as unknown (its inventory is the one
    // it started with); the file decides.
    let o = tokio::task::spawn_blocking(run(&["--all", "--role", "worker"]))
        .await
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    assert!(show(&o).contains("nothing to enlist"), "{}", show(&o));
    assert_eq!(std::fs::read_to_string(&inventory).unwrap(), edited);

    // generate renders the new node.
    let out = dir.path().join("out");
    common::generate(&inventory, &out);
    assert!(
        out.join("flake/nodes/node06.example.com/configuration.nix")
            .is_file()
    );
}
