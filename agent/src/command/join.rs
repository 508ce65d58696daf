//! `plasma-agent join --config <cluster-config.json> --service <chainfire|flaredb>`

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use plasma_wire::{ClusterConfig, Phase, ReportStatus};
use tokio::time::Instant;

use super::Env;
use crate::config::{self, JoinPlan};
use crate::exit::{AgentError, Outcome};
use crate::health;
use crate::http::Http;
use crate::join::{JoinError, Joiner};
use crate::marker::{self, Marker};
use crate::members::endpoint;
use crate::progress::{Progress, now_rfc3339};
use crate::report::Reporter;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/plasma-agent";

#[derive(Debug, Clone, Args)]
pub struct JoinArgs {
    /// cluster-config.json written by `plasmagen generate`.
    #[arg(long)]
    pub config: PathBuf,
    /// Which Raft service to bootstrap or join.
    #[arg(long, value_parser = ["chainfire", "flaredb"])]
    pub service: String,
    /// Holds the `<service>.joined` marker and the report spool.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Do not verify server certificates (labs only; warns on every request).
    #[arg(long)]
    pub insecure: bool,
}

pub async fn run(args: &JoinArgs, env: &Env) -> Result<Outcome, AgentError> {
    let cfg = config::load(&args.config)?;
    let plan = config::join_plan(&cfg, &args.service)?;
    env.log.set_node(&cfg.node_id, &args.service);

    if let Some(m) = marker::read(&args.state_dir, &args.service) {
        let phase = m.as_ref().map_or(Phase::Joined, |m| m.phase);
        tracing::info!(marker = %marker::path(&args.state_dir, &args.service).display(), "already joined");
        // Still a contact with the collector: delivers anything spooled by earlier runs.
        if let Ok(http) = Http::new(&cfg.tls, args.insecure, needs_tls(&cfg, &plan)) {
            let p = progress(&cfg, &plan, args, env, http);
            p.phase(phase, ReportStatus::Ok, "already joined").await;
        }
        return Ok(Outcome::AlreadyJoined);
    }

    let http = Http::new(&cfg.tls, args.insecure, needs_tls(&cfg, &plan))?;
    std::fs::create_dir_all(&args.state_dir).map_err(|e| {
        AgentError::Temporary(format!(
            "cannot create state dir {}: {e}",
            args.state_dir.display()
        ))
    })?;
    let p = progress(&cfg, &plan, args, env, http.clone());
    let result = match steps(&cfg, &plan, args, &p, &http).await {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            p.phase(Phase::Failed, ReportStatus::Error, &e.to_string())
                .await;
            Err(e)
        }
    };
    // Joined: the unit never runs again (its condition is the marker), so this is the last
    // chance to deliver what the collector missed; it only delays the exit while a collector
    // that went away comes back. A failed run is restarted by systemd, and the next run sends
    // the spool first.
    if result.is_ok() {
        p.drain().await;
    }
    result
}

async fn steps(
    cfg: &ClusterConfig,
    plan: &JoinPlan,
    args: &JoinArgs,
    p: &Progress,
    http: &Http,
) -> Result<Outcome, AgentError> {
    let svc = &plan.service;
    p.phase(
        Phase::Booted,
        ReportStatus::Ok,
        &format!("plasma-agent started for {svc}"),
    )
    .await;

    let msg = format!("Waiting for local {svc} service...");
    p.phase(Phase::WaitingLocal, ReportStatus::InProgress, &msg)
        .await;
    tracing::info!(url = %plan.local_url, "{msg}");
    let health_url = endpoint(&plan.local_url, "/health");
    let timeout = Duration::from_secs(cfg.health_timeout_secs);
    health::wait_healthy(http, &health_url, &[], timeout, &p.notify)
        .await
        .map_err(|e| AgentError::Temporary(e.to_string()))?;
    let msg = format!("Local {svc} healthy");
    p.phase(Phase::LocalHealthy, ReportStatus::Ok, &msg).await;
    tracing::info!("{msg}");

    let joiner = Joiner {
        http,
        node_id: &cfg.node_id,
        plan,
        deadline: Instant::now() + Duration::from_secs(cfg.join_timeout_secs),
        timeout_secs: cfg.join_timeout_secs,
    };
    // While joining, one long extension: each wait inside is bounded by the join deadline.
    p.notify
        .extend_timeout(Duration::from_secs(cfg.join_timeout_secs + 30));
    let (phase, outcome) = if cfg.bootstrap {
        let peers = plan.bootstrap_peers.join(", ");
        p.phase(
            Phase::Joining,
            ReportStatus::InProgress,
            &format!("waiting for initial peers {peers}"),
        )
        .await;
        joiner.bootstrap().await.map_err(join_err)?;
        let msg = "Bootstrap node, cluster initialized";
        p.phase(Phase::Bootstrapped, ReportStatus::Ok, msg).await;
        tracing::info!("{msg}");
        (Phase::Bootstrapped, Outcome::Bootstrapped)
    } else {
        p.phase(
            Phase::Joining,
            ReportStatus::InProgress,
            &format!("joining as {}", plan.raft_addr),
        )
        .await;
        joiner.join().await.map_err(join_err)?;
        let msg = "Node is a healthy cluster member";
        p.phase(Phase::Joined, ReportStatus::Ok, msg).await;
        tracing::info!("{msg}");
        (Phase::Joined, Outcome::Joined)
    };

    let m = Marker {
        node_id: cfg.node_id.clone(),
        service: svc.clone(),
        phase,
        at: now_rfc3339(),
    };
    marker::write(&args.state_dir, &m).map_err(|e| {
        AgentError::Temporary(format!(
            "cannot write marker {}: {e}",
            marker::path(&args.state_dir, svc).display()
        ))
    })?;
    tracing::info!("Cluster join complete");
    p.notify.status(&format!("{svc}: Cluster join complete"));
    Ok(outcome)
}

fn join_err(e: JoinError) -> AgentError {
    AgentError::Temporary(e.to_string())
}

fn needs_tls(cfg: &ClusterConfig, plan: &JoinPlan) -> bool {
    std::iter::once(&plan.local_url)
        .chain(&plan.join_urls)
        .any(|u| u.scheme() == "https")
        || cfg.collector_url.starts_with("https:")
}

fn progress(
    cfg: &ClusterConfig,
    plan: &JoinPlan,
    args: &JoinArgs,
    env: &Env,
    http: Http,
) -> Progress {
    // Validated by join_plan.
    let collector = config::parse_url("collector_url", &cfg.collector_url).ok();
    Progress {
        log: env.log.clone(),
        notify: env.notify,
        reporter: collector.map(|c| Reporter::new(http, &c, &args.state_dir, &plan.service)),
        node_id: cfg.node_id.clone(),
        service: plan.service.clone(),
        installation: env.installation.clone(),
    }
}
