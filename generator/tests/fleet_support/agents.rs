//! N plasma-agent joins in one process, each with its own cluster-config.json, certificate and
//! state directory, and what each one's log says it did.

use std::path::{Path, PathBuf};
use std::time::Duration;

use plasma_agent::Outcome;
use plasma_tests::agent;
use plasma_tests::fleet_sim::FleetSim;
use plasma_wire::TlsPaths;

/// One agent's run, from its JSON log lines.
pub struct AgentResult {
    pub node: String,
    pub joined: bool,
    pub error: Option<String>,
    /// `Cluster join complete`, on the agent's clock from its start.
    pub joined_at: Option<Duration>,
    /// Acknowledged reports: (phase, sent_at) and how long each POST took.
    pub acked: Vec<(String, String)>,
    pub report_latency: Vec<Duration>,
    /// Reports still in the spool when the run ended.
    pub spooled: usize,
}

pub fn config_for(
    sim: &FleetSim,
    work: &Path,
    secrets: &Path,
    host: &str,
    raft_addr: &str,
    collector_url: &str,
    join_timeout_secs: u64,
) -> PathBuf {
    let d = secrets.join(format!("nodes/{host}/etc/nixos/secrets"));
    let tls = TlsPaths {
        ca: secrets.join("ca/ca-cert.pem").display().to_string(),
        cert: d.join(format!("{host}-cert.pem")).display().to_string(),
        key: d.join(format!("{host}-key.pem")).display().to_string(),
    };
    let mut cfg = agent::config(
        host,
        raft_addr,
        &sim.local_url(host),
        sim.urls(),
        &[],
        tls,
        collector_url,
    );
    cfg.node_role = "worker".into();
    cfg.join_timeout_secs = join_timeout_secs;
    agent::write_config(work, &cfg)
}

pub async fn run_one(config: PathBuf, state: PathBuf, node: String) -> AgentResult {
    let run = agent::join(&config, "chainfire", &state).await;
    let mut acked = Vec::new();
    let mut report_latency = Vec::new();
    for l in &run.logs {
        if l["message"] == "report delivered" {
            acked.push((
                l["report_phase"].as_str().unwrap_or_default().to_owned(),
                l["report_at"].as_str().unwrap_or_default().to_owned(),
            ));
            report_latency.push(Duration::from_micros(l["took_us"].as_u64().unwrap_or(0)));
        }
    }
    let joined_at = run
        .line("Cluster join complete")
        .and_then(|l| l["elapsed_ms"].as_u64())
        .map(Duration::from_millis);
    let spool = plasma_agent::report::spool_path(&state, "chainfire");
    AgentResult {
        joined: matches!(run.result, Ok(Outcome::Joined)),
        error: run.result.as_ref().err().map(ToString::to_string),
        joined_at,
        acked,
        report_latency,
        spooled: plasma_agent::report::read_spool(&spool).len(),
        node,
    }
}
