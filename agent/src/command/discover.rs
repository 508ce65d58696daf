//! `plasma-agent discover [--collector URL | --collector-from-cmdline] [--root DIR]`
//!
//! Runs in the netboot image: posts this machine's NICs, disks, memory and CPU to the
//! collector's `/v1/discover`, retrying until it answers or `--timeout` passes.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Env;
use crate::config::ConfigError;
use crate::discover::{self, Backoff, CollectorSource, DiscoverRun, PostConfig, RunError};
use crate::exit::{AgentError, Outcome};

#[derive(Debug, Clone, Args)]
#[command(group = clap::ArgGroup::new("source").required(true))]
pub struct DiscoverArgs {
    /// Collector base URL, e.g. https://10.0.100.10:8443.
    #[arg(long, group = "source")]
    pub collector: Option<String>,
    /// Take the collector URL from `plasmacloud.collector=` on /proc/cmdline.
    #[arg(long, group = "source")]
    pub collector_from_cmdline: bool,
    /// The MAC the machine booted from; default: `plasmacloud.mac=` on the command line, else
    /// the first physical NIC.
    #[arg(long)]
    pub mac: Option<String>,
    /// Seconds to keep retrying before giving up.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// PEM bundle to trust for an https collector (instead of the system roots).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Directory holding sys/, proc/ and dev/ (tests use a fake tree).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
}

pub async fn run(args: &DiscoverArgs, _env: &Env) -> Result<Outcome, AgentError> {
    let collector = match &args.collector {
        Some(url) => CollectorSource::Url(url.clone()),
        None => CollectorSource::Cmdline,
    };
    let opts = DiscoverRun {
        root: args.root.clone(),
        collector,
        mac: args.mac.clone(),
        post: PostConfig {
            timeout: Duration::from_secs(args.timeout),
            backoff: Backoff::default(),
            ca_file: args.ca.clone(),
        },
    };
    match discover::run(&opts).await {
        Ok(_) => Ok(Outcome::Discovered),
        Err(e) => Err(into_agent_error(e)),
    }
}

fn into_agent_error(e: RunError) -> AgentError {
    if e.is_config() {
        let arg = match &e {
            RunError::Post(discover::PostError::Ca { .. }) => "--ca",
            _ => "--collector",
        };
        AgentError::Config(ConfigError::Argument {
            arg: arg.into(),
            problem: e.to_string(),
        })
    } else {
        AgentError::Temporary(e.to_string())
    }
}
