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
