//! Driving `plasma-agent` in-process (so tests can use tokio's paused clock) and writing its
//! cluster-config.json.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plasma_agent::command::join::JoinArgs;
use plasma_agent::command::wait_healthy::WaitHealthyArgs;
use plasma_agent::command::{self, Command, Env};
use plasma_agent::logging::{self, LogContext, MemorySink};
use plasma_agent::notify::Notifier;
use plasma_agent::{AgentError, Outcome};
use plasma_wire::{ClusterConfig, ServiceEndpoint, TlsPaths};
use serde_json::Value;
use tokio::time::Instant;
use tracing::instrument::WithSubscriber;

/// A cluster-config.json for `node_id`, joining (`bootstrap: false`) unless peers are given.
pub fn config(
    node_id: &str,
    raft_addr: &str,
    local_url: &str,
    join_urls: &[String],
    bootstrap_peers: &[String],
    tls: TlsPaths,
    collector_url: &str,
) -> ClusterConfig {
    let ep = |port: &str| ServiceEndpoint {
        local_url: local_url.to_owned(),
        join_urls: join_urls.to_vec(),
        raft_addr: raft_addr.replace(":2380", port),
    };
    let services = BTreeMap::from([
        ("chainfire".to_owned(), ep(":2380")),
        ("flaredb".to_owned(), ep(":2480")),
    ]);
    ClusterConfig {
        node_id: node_id.to_owned(),
        node_role: "control-plane".into(),
        bootstrap: !bootstrap_peers.is_empty(),
        cluster_name: "sim-cluster".into(),
        leader_url: join_urls
            .first()
            .cloned()
            .unwrap_or_else(|| local_url.to_owned()),
        raft_addr: raft_addr.to_owned(),
        initial_peers: bootstrap_peers.to_vec(),
        flaredb_peers: bootstrap_peers
            .iter()
            .map(|p| p.replace(":2380", ":2480"))
            .collect(),
        services,
        tls,
        collector_url: collector_url.to_owned(),
        health_timeout_secs: plasma_wire::config::DEFAULT_HEALTH_TIMEOUT_SECS,
        join_timeout_secs: plasma_wire::config::DEFAULT_JOIN_TIMEOUT_SECS,
    }
}

pub fn write_config(dir: &Path, cfg: &ClusterConfig) -> PathBuf {
    let p = dir.join(format!("cluster-config-{}.json", cfg.node_id));
    std::fs::write(&p, serde_json::to_vec_pretty(cfg).unwrap()).unwrap();
    p
}

/// What one in-process run produced.
pub struct Run {
    pub result: Result<Outcome, AgentError>,
    pub exit_code: u8,
    /// Every log line, parsed.
    pub logs: Vec<Value>,
    /// On tokio's clock (virtual under paused time).
    pub elapsed: Duration,
}

impl Run {
    pub fn messages(&self) -> Vec<String> {
        self.logs
            .iter()
            .map(|l| l["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The first log line whose message contains `needle`.
    pub fn line(&self, needle: &str) -> Option<&Value> {
        self.logs
            .iter()
            .find(|l| l["message"].as_str().is_some_and(|m| m.contains(needle)))
    }
}

pub async fn run(cmd: Command) -> Run {
    run_as(cmd, None).await
}

/// [`run`] as the installation `installation` (the id its reports carry).
pub async fn run_as(cmd: Command, installation: Option<String>) -> Run {
    let log = LogContext::new();
    let buf = MemorySink::default();
    let sub = logging::subscriber(log.clone(), Box::new(buf.clone()), tracing::Level::DEBUG);
    let env = Env {
        log,
        notify: Notifier::disabled(),
        installation,
    };
    let start = Instant::now();
    // Per-future subscriber: several agents may run concurrently on one test thread.
    let result = command::run(&cmd, &env).with_subscriber(sub).await;
    let elapsed = start.elapsed();
    let text = String::from_utf8(buf.contents()).unwrap();
    let logs = text
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
        })
        .collect();
    let exit_code = match &result {
        Ok(_) => 0,
        Err(e) => e.exit_code(),
    };
    Run {
        result,
        exit_code,
        logs,
        elapsed,
    }
}

pub async fn join(config: &Path, service: &str, state_dir: &Path) -> Run {
    run(Command::Join(JoinArgs {
        config: config.to_owned(),
        service: service.to_owned(),
        state_dir: state_dir.to_owned(),
        insecure: false,
    }))
    .await
}

/// [`join`] as the installation `installation` (the id each report carries).
pub async fn join_as(config: &Path, service: &str, state_dir: &Path, installation: &str) -> Run {
    run_as(
        Command::Join(JoinArgs {
            config: config.to_owned(),
            service: service.to_owned(),
            state_dir: state_dir.to_owned(),
            insecure: false,
        }),
        Some(installation.to_owned()),
    )
    .await
}

pub async fn wait_healthy(config: &Path, url: &str, expect: &[&str], state_dir: &Path) -> Run {
    run(Command::WaitHealthy(WaitHealthyArgs {
        config: config.to_owned(),
        url: url.to_owned(),
        expect: expect.iter().map(|s| s.to_string()).collect(),
        service: "iam".into(),
        state_dir: state_dir.to_owned(),
        insecure: false,
    }))
    .await
}
