//! `plasma-agent discover` against the real collector (plasmagen's HTTPS API, in-process):
//! the report built from a fake /sys, /proc tree is accepted unauthenticated over TLS that
//! the agent checks with the site CA, and shows up in the collector's fleet state.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use plasma_agent::discover::{self, Backoff, CollectorSource, DiscoverRun, PostConfig};
use plasma_pki::store::{self, NodeIdentity, StoreInput};
use plasmagen::collector::{self, Config};
use plasmagen::inventory;

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A netbooted machine whose boot NIC is `mac`.
fn machine(root: &Path, mac: &str, collector: &str) {
    write(root, "sys/class/net/eno1/address", &format!("{mac}\n"));
    write(root, "sys/class/net/eno1/speed", "10000\n");
    write(root, "sys/class/net/eno1/carrier", "1\n");
    std::fs::create_dir_all(root.join("sys/class/net/eno1/device")).unwrap();
    write(root, "sys/block/nvme0n1/size", "1875385008\n");
    write(root, "sys/block/nvme0n1/queue/rotational", "0\n");
    write(
        root,
        "sys/block/nvme0n1/device/model",
        "SAMSUNG MZQL2960HCJR-00A07\n",
    );
    std::fs::create_dir_all(root.join("dev/disk/by-id")).unwrap();
    std::os::unix::fs::symlink(
        "../../nvme0n1",
        root.join("dev/disk/by-id/nvme-SAMSUNG_S64F"),
    )
    .unwrap();
    write(root, "proc/meminfo", "MemTotal:       263921756 kB\n");
    write(
        root,
        "proc/cpuinfo",
        &(0..8)
            .map(|i| {
                format!("processor\t: {i}\nmodel name\t: AMD EPYC 7313P 16-Core Processor\n\n")
            })
            .collect::<String>(),
    );
    write(
        root,
        "proc/cmdline",
        &format!(
            "init=/nix/store/x/init plasmacloud.collector={collector} plasmacloud.mac={mac}\n"
        ),
    );
}

#[tokio::test]
async fn collector_accepts_and_stores_the_agents_report() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let inv = inventory::load(&repo.join("examples/runbook.toml"))
        .expect("runbook inventory")
        .inventory;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    let input = StoreInput::new(
        inv.cluster.name.clone(),
        inv.nodes
            .iter()
            .map(|n| NodeIdentity {
                hostname: n.hostname.clone(),
                fqdn: inv.fqdn(n),
                ips: vec![IpAddr::V4(n.production_ip), IpAddr::V4(n.provisioning_ip)],
            })
            .collect(),
        IpAddr::V4(inv.provisioning.pxe_server),
    );
    store::apply(&secrets, &input, time::OffsetDateTime::now_utc()).expect("certificates");

    let state = collector::open(inv, &dir.path().join("collector.db"), Config::default()).unwrap();
    let tls = collector::server::tls_config(&collector::TlsFiles {
        cert: secrets.join("pxe-server/pxe-server-cert.pem"),
        key: secrets.join("pxe-server/pxe-server-key.pem"),
        client_ca: secrets.join("ca/ca-cert.pem"),
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(collector::server::serve_tls(
        listener,
        collector::app(state.clone()),
        tls,
    ));

    // An unknown machine and node01 (its MAC is in the inventory), both from the command line.
    let mut reports = Vec::new();
    for mac in ["aa:bb:cc:00:00:01", "52:54:00:12:34:56"] {
        let root = tempfile::tempdir().unwrap();
        machine(root.path(), mac, &url);
        let (sent, delivered) = discover::run(&DiscoverRun {
            root: root.path().to_owned(),
            collector: CollectorSource::Cmdline,
            mac: None,
            post: PostConfig {
                timeout: Duration::from_secs(20),
                backoff: Backoff::default(),
                ca_file: Some(secrets.join("ca/ca-cert.pem")),
            },
        })
        .await
        .unwrap_or_else(|e| panic!("{mac}: {e}"));
        assert_eq!(delivered.status, 200);
        assert_eq!(delivered.attempts, 1);
        assert_eq!(sent.primary_mac, mac);
        reports.push(sent);
    }

    // Stored exactly as sent (the collector keys discovered machines by MAC).
    let fleet = state.fleet.read().unwrap();
    for sent in &reports {
        let stored = fleet.discovered.get(&sent.primary_mac).expect("stored");
        assert_eq!(&stored.report, sent);
        assert_eq!(stored.count, 1);
        assert_eq!(
            stored.report.disks[0].by_id,
            ["/dev/disk/by-id/nvme-SAMSUNG_S64F"]
        );
    }
}
