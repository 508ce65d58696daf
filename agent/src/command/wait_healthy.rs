//! `plasma-agent wait-healthy --config ... --url <health-url> [--expect key=value]...`
//!
//! The IAM gate of the runbook: `/health` must say `"status":"healthy"` and e.g.
//! `"database":"connected"` before IAM initialization runs.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use plasma_wire::{Phase, ReportStatus};

use super::Env;
use crate::config::{self, ConfigError};
use crate::exit::{AgentError, Outcome};
use crate::health::{self, Expect};
use crate::http::Http;
use crate::progress::Progress;
use crate::report::Reporter;

#[derive(Debug, Clone, Args)]
pub struct WaitHealthyArgs {
    /// cluster-config.json (TLS files, node id, collector, health_timeout_secs).
    #[arg(long)]
    pub config: PathBuf,
    /// Full health URL, e.g. https://localhost:8080/health.
    #[arg(long)]
    pub url: String,
    /// A top-level field of the health body that must equal the value (repeatable).
    #[arg(long = "expect", value_name = "KEY=VALUE")]
    pub expect: Vec<String>,
    /// Service name used in logs and reports.
    #[arg(long, default_value = "iam")]
    pub service: String,
    /// Holds the report spool.
    #[arg(long, default_value = super::join::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Do not verify server certificates (labs only; warns on every request).
    #[arg(long)]
    pub insecure: bool,
}

pub async fn run(args: &WaitHealthyArgs, env: &Env) -> Result<Outcome, AgentError> {
    let cfg = config::load(&args.config)?;
    config::validate_common(&cfg)?;
    let url = config::parse_url("--url", &args.url).map_err(|_| ConfigError::Argument {
        arg: "--url".into(),
        problem: format!("{:?} is not an http(s) URL", args.url),
    })?;
    let expect = args
        .expect
        .iter()
        .map(|e| e.parse())
        .collect::<Result<Vec<Expect>, _>>()?;
    env.log.set_node(&cfg.node_id, &args.service);
    let need_tls = url.scheme() == "https" || cfg.collector_url.starts_with("https:");
    let http = Http::new(&cfg.tls, args.insecure, need_tls)?;
    let reporter = match std::fs::create_dir_all(&args.state_dir) {
        Ok(()) => config::parse_url("collector_url", &cfg.collector_url)
            .ok()
            .map(|c| Reporter::new(http.clone(), &c, &args.state_dir, &args.service)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot create state dir; reports will not be spooled");
            None
        }
    };
    let p = Progress {
        log: env.log.clone(),
        notify: env.notify,
        reporter,
        node_id: cfg.node_id.clone(),
        service: args.service.clone(),
        installation: env.installation.clone(),
    };
    let svc = &args.service;
    let msg = format!("Waiting for local {svc} service...");
    p.phase(Phase::WaitingLocal, ReportStatus::InProgress, &msg)
        .await;
    tracing::info!(url = %url, "{msg}");
    let timeout = Duration::from_secs(cfg.health_timeout_secs);
    match health::wait_healthy(&http, &url, &expect, timeout, &p.notify).await {
        Ok(_) => {
            let msg = format!("Local {svc} healthy");
            p.phase(Phase::LocalHealthy, ReportStatus::Ok, &msg).await;
            tracing::info!("{msg}");
            Ok(Outcome::Healthy)
        }
        Err(e) => {
            p.phase(Phase::Failed, ReportStatus::Error, &e.to_string())
                .await;
            Err(AgentError::Temporary(e.to_string()))
        }
    }
}
