//! Helpers shared by the collector tests: a fleet with real certificates from plasma-pki, TLS
//! clients presenting them, and a collector child process.
#![allow(dead_code)]

pub mod big_fleet;
pub mod browser;
pub mod dashboard_scale;
pub mod inproc;

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use plasma_pki::store::{self, NodeIdentity, StoreInput};
use plasma_wire::discover::{Cpu, DiscoverReport, Disk, Nic};
use plasma_wire::{Phase, Report, ReportStatus};
use plasmagen::collector::{self, AppState, Config};
use plasmagen::inventory::{self, Inventory};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn runbook_path() -> PathBuf {
    repo_root().join("examples/runbook.toml")
}

pub fn runbook() -> Inventory {
    inventory::load(&runbook_path())
        .expect("runbook inventory is valid")
        .inventory
}

/// A writable copy of examples/runbook.toml at `dir/inventory.toml`, loaded from there (so a
/// collector enlisting into its inventory edits the copy, never the example).
pub fn runbook_copy(dir: &Path) -> (PathBuf, Inventory) {
    let path = dir.join("inventory.toml");
    std::fs::copy(runbook_path(), &path).expect("copy the runbook inventory");
    let inv = inventory::load(&path).expect("valid").inventory;
    (path, inv)
}

/// A discovery report of a machine enlist can take: one NIC, one 240 GiB SATA SSD, UEFI.
pub fn machine_report(mac: &str) -> DiscoverReport {
    let serial = mac.replace(':', "");
    DiscoverReport {
        primary_mac: mac.into(),
        nics: vec![Nic {
            name: "eno1".into(),
            mac: mac.into(),
            speed_mbps: Some(1000),
            carrier: Some(true),
            driver: None,
        }],
        disks: vec![Disk {
            name: "sda".into(),
            size_bytes: 240 << 30,
            by_id: vec![format!("/dev/disk/by-id/ata-SSD_{serial}")],
            model: None,
            rotational: Some(false),
            removable: Some(false),
        }],
        memory_bytes: 64 << 30,
        cpu: Cpu {
            model: "AMD EPYC 7313P".into(),
            logical_cpus: 32,
        },
        hostname: None,
        firmware: Some("uefi".into()),
        bmc: None,
    }
}

/// Secrets (CA, node, pxe-server, operator certificates) for `inv` under `dir/secrets`.
pub fn secrets_for(inv: &Inventory, dir: &Path) -> PathBuf {
    let secrets = dir.join("secrets");
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
    store::apply(&secrets, &input, time::OffsetDateTime::now_utc()).expect("issue certificates");
    secrets
}

/// A second, unrelated CA with a certificate for `node01` (must be refused).
pub fn foreign_secrets(inv: &Inventory, dir: &Path) -> PathBuf {
    secrets_for(inv, &dir.join("foreign"))
}

/// Who the client presents itself as.
#[derive(Debug, Clone, Copy)]
pub enum As<'a> {
    Nobody,
    Node(&'a str),
    Operator,
}

pub fn identity_files(secrets: &Path, who: As<'_>) -> Option<(PathBuf, PathBuf)> {
    match who {
        As::Nobody => None,
        As::Node(h) => {
            let d = secrets.join(format!("nodes/{h}/etc/nixos/secrets"));
            Some((
                d.join(format!("{h}-cert.pem")),
                d.join(format!("{h}-key.pem")),
            ))
        }
        As::Operator => Some((
            secrets.join("operator/operator-cert.pem"),
            secrets.join("operator/operator-key.pem"),
        )),
    }
}

/// reqwest client trusting only `ca_secrets`' CA, presenting `who` from `id_secrets`.
pub fn client(ca_secrets: &Path, id_secrets: &Path, who: As<'_>) -> reqwest::Client {
    let ca = std::fs::read(ca_secrets.join("ca/ca-cert.pem")).expect("CA");
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).expect("CA PEM"));
    if let Some((cert, key)) = identity_files(id_secrets, who) {
        let mut pem = std::fs::read(cert).expect("cert");
        pem.push(b'\n');
        pem.extend(std::fs::read(key).expect("key"));
        b = b.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
    }
    b.build().expect("client")
}

pub fn report(node: &str, service: &str, phase: Phase, message: &str) -> Report {
    Report {
        installation: None,
        node_id: node.into(),
        service: service.into(),
        phase,
        status: if phase == Phase::Failed {
            ReportStatus::Error
        } else {
            ReportStatus::InProgress
        },
        message: message.into(),
        at: "2026-11-24T05:00:00Z".into(),
    }
}

/// Collector state over a fresh database in `dir`.
pub fn state(inv: Inventory, dir: &Path, config: Config) -> AppState {
    collector::open(inv, &dir.join("collector.db"), config).expect("open collector")
}

/// Serve `state`'s API over mTLS on 127.0.0.1:0 in this runtime; returns the base URL.
pub async fn serve_tls(state: AppState, secrets: &Path) -> String {
    let cfg = collector::server::tls_config(&collector::TlsFiles {
        cert: secrets.join("pxe-server/pxe-server-cert.pem"),
        key: secrets.join("pxe-server/pxe-server-key.pem"),
        client_ca: secrets.join("ca/ca-cert.pem"),
    })
    .expect("TLS config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(collector::server::serve_tls(
        listener,
        collector::app(state),
        cfg,
    ));
    format!("https://127.0.0.1:{}", addr.port())
}

/// Serve `state`'s API over plain HTTP on 127.0.0.1:0 as `--insecure-http` does (lab mode:
/// operator actions from loopback); returns the base URL.
pub async fn serve_lab(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(collector::server::serve_plain(
        listener,
        collector::app(state),
        true,
    ));
    format!("http://127.0.0.1:{}", addr.port())
}

/// Serve the boot listener on 127.0.0.1:0; returns the base URL.
pub async fn serve_boot(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(collector::server::serve_plain(
        listener,
        collector::boot_app(state),
        false,
    ));
    format!("http://127.0.0.1:{}", addr.port())
}

/// A `plasmagen collector` child process; killed on drop.
pub struct ChildCollector {
    pub child: Child,
    pub api: String,
    pub boot: Option<String>,
}

impl Drop for ChildCollector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `plasmagen collector --listen 127.0.0.1:0 ...` and read the bound URLs it prints.
pub fn spawn_collector(extra: &[&str]) -> ChildCollector {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plasmagen"))
        .arg("collector")
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn plasmagen collector");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let want_boot = extra.contains(&"--boot-listen");
    let (mut api, mut boot) = (None, None);
    while api.is_none() || (want_boot && boot.is_none()) {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("collector printed its listening lines");
        if let Some(u) = line.strip_prefix("collector: api listening on ") {
            api = Some(u.to_string());
        } else if let Some(u) = line.strip_prefix("collector: boot listening on ") {
            boot = Some(u.to_string());
        }
    }
    ChildCollector {
        child,
        api: api.expect("api url"),
        boot,
    }
}

pub fn shared<T>(t: T) -> Arc<T> {
    Arc::new(t)
}

/// The MACs in a collector database's `discovered` table, sorted.
pub fn db_discovered_macs(db: &Path) -> Vec<String> {
    let c = collector::store::rusqlite::Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT mac FROM discovered ORDER BY mac")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A state with `keep` history reports per node and service.
pub fn state_keeping(dir: &Path, keep: u32) -> AppState {
    let cfg = Config {
        store: collector::store::Limits {
            history_per_service: keep,
            ..Default::default()
        },
        ..Config::default()
    };
    state(runbook(), dir, cfg)
}
