//! Load client for bench/collector.sh.
//!
//! collector_load setup  <DIR> <NODES>                  inventory.toml + secrets/ for NODES nodes
//! collector_load steady <URL> <DIR> <CONNS> <SECS>     keep-alive mTLS connections, one node each,
//!                                                      reports back to back; prints rate and p50/p99
//! collector_load storm  <URL> <DIR> <NODES> <REPORTS> <PARALLEL>
//!                                                      every node connects with its own certificate
//!                                                      and sends REPORTS reports; then checks that the
//!                                                      collector holds every acknowledged one

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "../tests/collector_support/big_fleet.rs"]
mod big_fleet;

use anyhow::{Context, Result, bail};
use plasma_wire::{Phase, Report, ReportStatus};
use plasmagen::collector::view::FleetView;

fn host(i: usize) -> String {
    big_fleet::host(i)
}

/// inventory.toml + secrets/ for `nodes` nodes (the layout the scale tests use).
fn setup(dir: &Path, nodes: usize) -> Result<()> {
    big_fleet::write_fleet(dir, nodes);
    Ok(())
}

fn client(secrets: &Path, cert: PathBuf, key: PathBuf) -> Result<reqwest::Client> {
    let ca = std::fs::read(secrets.join("ca/ca-cert.pem"))?;
    let mut pem = std::fs::read(&cert).with_context(|| cert.display().to_string())?;
    pem.push(b'\n');
    pem.extend(std::fs::read(&key)?);
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(1)
        .http1_only()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca)?)
        .identity(reqwest::Identity::from_pem(&pem)?)
        .build()?)
}

fn node_client(secrets: &Path, h: &str) -> Result<reqwest::Client> {
    let d = secrets.join(format!("nodes/{h}/etc/nixos/secrets"));
    client(
        secrets,
        d.join(format!("{h}-cert.pem")),
        d.join(format!("{h}-key.pem")),
    )
}

fn report(h: &str, k: u64) -> Report {
    const PHASES: [Phase; 8] = [
        Phase::Booted,
        Phase::WaitingLocal,
        Phase::LocalHealthy,
        Phase::Joining,
        Phase::Joining,
        Phase::Joining,
        Phase::Joined,
        Phase::Joined,
    ];
    Report {
        installation: None,
        node_id: h.to_string(),
        service: "chainfire".into(),
        phase: PHASES[(k % 8) as usize],
        status: ReportStatus::InProgress,
        message: format!("bench report {k}"),
        at: "2026-11-24T06:00:00Z".into(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn steady(url: &str, dir: &Path, conns: usize, secs: u64) -> Result<()> {
    let secrets = dir.join("secrets");
    let end = Instant::now() + Duration::from_secs(secs);
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..conns {
        let cl = node_client(&secrets, &host(c))?;
        let url = format!("{url}/v1/reports");
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut k = 0u64;
            while Instant::now() < end {
                let r = report(&host(c), k);
                let t = Instant::now();
                match cl.post(&url).json(&r).send().await {
                    Ok(resp) if resp.status().is_success() => {
                        let _ = resp.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                k += 1;
            }
            lat
        }));
    }
    let start = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let elapsed = start.elapsed().as_secs_f64().min(secs as f64).max(0.001);
    all.sort();
    println!(
        "steady conns={conns} secs={secs} acked={} rate_per_s={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} errors={}",
        all.len(),
        all.len() as f64 / elapsed,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}

async fn storm(url: &str, dir: &Path, nodes: usize, reports: u64, parallel: usize) -> Result<()> {
    let secrets = dir.join("secrets");
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..nodes {
        let permit = sem.clone().acquire_owned().await?;
        let cl = node_client(&secrets, &host(i))?;
        let url = format!("{url}/v1/reports");
        let (acked, failed) = (acked.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            for k in 0..reports {
                let r = report(&host(i), k);
                // Like the agent: retry transport errors, never count an unacknowledged report.
                let mut ok = false;
                for _ in 0..5 {
                    match cl.post(&url).json(&r).send().await {
                        Ok(resp) if resp.status().is_success() => {
                            ok = true;
                            break;
                        }
                        Ok(resp) => {
                            eprintln!("{}: HTTP {}", host(i), resp.status());
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
                if ok {
                    acked.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let op = client(
        &secrets,
        secrets.join("operator/operator-cert.pem"),
        secrets.join("operator/operator-key.pem"),
    )?;
    let fleet: FleetView = op
        .get(format!("{url}/v1/nodes"))
        .send()
        .await?
        .json()
        .await?;
    let stored: u64 = fleet.nodes.iter().map(|n| n.reports).sum();
    let short = fleet.nodes.iter().filter(|n| n.reports < reports).count();
    let acked = acked.load(Ordering::Relaxed);
    println!(
        "storm nodes={nodes} reports_per_node={reports} parallel={parallel} acked={acked} failed={} stored={stored} nodes_short={short} elapsed_s={elapsed:.1} rate_per_s={:.0}",
        failed.load(Ordering::Relaxed),
        acked as f64 / elapsed
    );
    if acked != nodes as u64 * reports || stored < acked || short > 0 {
        bail!(
            "loss: {acked} acknowledged of {}, {stored} stored",
            nodes as u64 * reports
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize| -> Result<usize> {
        a.get(i)
            .context("missing argument")?
            .parse()
            .context("not a number")
    };
    match a.first().map(String::as_str) {
        Some("setup") => setup(Path::new(&a[1]), n(2)?),
        Some("steady") => steady(&a[1], Path::new(&a[2]), n(3)?, n(4)? as u64).await,
        Some("storm") => storm(&a[1], Path::new(&a[2]), n(3)?, n(4)? as u64, n(5)?).await,
        _ => bail!("usage: collector_load setup|steady|storm ... (see the source)"),
    }
}
