//! Runs the admin-API simulator (TLS) and a report sink on loopback for bench/agent.sh.
//! Usage: plasma-sim <dir>  — writes <dir>/cluster-config.json for node04, prints READY,
//! serves until stdin is closed.

use plasma_tests::agent;
use plasma_tests::sim::{Sim, SimOptions};
use plasma_tests::sink::ReportSink;
use tokio::io::AsyncReadExt;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = std::env::args().nth(1).expect("usage: plasma-sim <dir>");
    let sim = Sim::start(SimOptions {
        promote_after: std::time::Duration::ZERO,
        ..Default::default()
    })
    .await;
    let pki = sim.pki.as_ref().expect("tls");
    let sink = ReportSink::start(Some(pki.server_config())).await;
    let tls = pki.node_tls("node04");
    let joins = vec![sim.url(1), sim.url(2), sim.url(0)];
    let cfg = agent::config(
        "node04",
        &sim.raft_addr(3),
        &sim.url(3),
        &joins,
        &[],
        tls,
        &sink.url,
    );
    let path = std::path::Path::new(&dir).join("cluster-config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    println!("READY {}", path.display());
    let mut sink_buf = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink_buf).await;
    let adds = sim.adds();
    println!(
        "adds={:?} reports={}",
        adds.iter().map(|h| h.status).collect::<Vec<_>>(),
        sink.reports().len()
    );
}
