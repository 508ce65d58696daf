//! Subcommands, one file each. To add one: a file with an `Args` struct and `run`, a variant
//! in [`Command`] and an arm in [`run`].

use clap::Subcommand;

use crate::exit::{AgentError, Outcome};
use crate::logging::LogContext;

pub mod discover;
pub mod join;
pub mod wait_healthy;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Wait for the local service, then bootstrap or join its cluster (run once per service).
    Join(join::JoinArgs),
    /// Wait until a service's /health is healthy (and matches every --expect).
    WaitHealthy(wait_healthy::WaitHealthyArgs),
    /// Netboot image: post this machine's hardware to the collector's /v1/discover.
    Discover(discover::DiscoverArgs),
}

/// Environment a command runs in: the log context and whether systemd listens.
#[derive(Clone)]
pub struct Env {
    pub log: LogContext,
    pub notify: crate::notify::Notifier,
    /// The running installation's id ([`crate::installation`]), sent with every report.
    pub installation: Option<String>,
}

pub async fn run(cmd: &Command, env: &Env) -> Result<Outcome, AgentError> {
    let result = match cmd {
        Command::Join(a) => join::run(a, env).await,
        Command::WaitHealthy(a) => wait_healthy::run(a, env).await,
        Command::Discover(a) => discover::run(a, env).await,
    };
    if let Err(e) = &result {
        tracing::error!(exit_code = e.exit_code() as u64, "{e}");
    }
    result
}
