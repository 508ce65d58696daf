//! `plasmagen collector`: run the progress collector (docs/collector.md).

use std::path::PathBuf;
use std::time::Duration;

use super::Outcome;
use crate::collector::server::{Limits, StreamSlots};
use crate::collector::{self, Config, RunOptions, TlsFiles};
use crate::error::Error;
use crate::inventory;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address of the HTTPS API (reports, dashboard, status).
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub listen: String,
    /// Address of the plain-HTTP boot listener serving GET /boot/<mac>.ipxe (install-loop
    /// avoidance), e.g. 0.0.0.0:8081. Off when not given.
    #[arg(long)]
    pub boot_listen: Option<String>,
    /// SQLite database (created when missing).
    #[arg(long)]
    pub db: PathBuf,
    /// Inventory file: the nodes that may report.
    #[arg(long)]
    pub inventory: PathBuf,
    /// Generated secrets directory: pxe-server/pxe-server-{cert,key}.pem and ca/ca-cert.pem.
    #[arg(long, required_unless_present_any = ["insecure_http", "tls_cert"])]
    pub secrets: Option<PathBuf>,
    /// TLS server certificate (default <SECRETS>/pxe-server/pxe-server-cert.pem).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// TLS server key (default <SECRETS>/pxe-server/pxe-server-key.pem).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// CA client certificates must chain to (default <SECRETS>/ca/ca-cert.pem).
    #[arg(long)]
    pub client_ca: Option<PathBuf>,
    /// Labs only: serve the API over plain HTTP WITHOUT authentication (node ids are trusted,
    /// operator actions accepted from loopback).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key", "client_ca"])]
    pub insecure_http: bool,
    /// Show a node as stuck after this long without a report (e.g. 10m, 90s).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub stuck_after: Duration,
    /// Discovery reports accepted per source address in a burst.
    #[arg(long, default_value_t = 10)]
    pub discover_burst: u32,
    /// Discovery reports: one more allowed per source address every this long.
    #[arg(long, default_value = "6s", value_parser = parse_duration)]
    pub discover_refill: Duration,
    /// Discovery reports accepted from all addresses together in a burst (an inventory
    /// node's MAC is always accepted).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub discover_global_burst: u32,
    /// Discovery reports from all addresses together: one more allowed every this long.
    #[arg(long, default_value = "20ms", value_parser = parse_positive_duration)]
    pub discover_global_refill: Duration,
    /// Discovered machines kept; beyond it the unknown machine seen least recently is
    /// forgotten for a new one.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_discovered: u32,
    /// Stored discovery facts kept, in MiB (evicted like --max-discovered).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_discovered_mib: u32,
    /// History reports kept per node and service (the first and last of each phase, and
    /// everything before the node's latest reprovision, are kept besides).
    #[arg(long, default_value_t = collector::store::DEFAULT_HISTORY_PER_SERVICE, value_parser = clap::value_parser!(u32).range(1..))]
    pub history_per_service: u32,
    /// Connections the API listener holds at once; when all are taken, the one idle the
    /// longest is closed for a new one.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Connections the boot listener holds at once (its own cap: a flood of one listener
    /// never starves the other).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_boot_connections: u32,
    /// A TLS handshake must finish within this.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub handshake_timeout: Duration,
    /// Close a connection after this long with no request being handled and nothing sent
    /// (before the first request, between requests, HTTP/1 and HTTP/2).
    #[arg(long, default_value = "30s", value_parser = parse_positive_duration)]
    pub idle_timeout: Duration,
    /// A request must be read and answered within this (408 otherwise).
    #[arg(long, default_value = "30s", value_parser = parse_positive_duration)]
    pub request_timeout: Duration,
    /// `/v1/events` subscribers at once (dashboards); the next gets 503 and polls.
    #[arg(long, default_value_t = 64)]
    pub max_event_streams: usize,
    /// Labs: let anyone on the network read the fleet (dashboard data, /v1/nodes, events)
    /// without the viewer or operator certificate.
    #[arg(long)]
    pub public_dashboard: bool,
    /// When the database fails its start-up checks: copy every readable row into a new
    /// database, keep the damaged one as <DB>.corrupt-<time>, print what was lost, then serve.
    /// A database that passes is left alone.
    #[arg(long)]
    pub recover: bool,
}

/// `30m`, `90s`, `1h`, `500ms`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30m, 90s, 1h or 500ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    }
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?}: must be longer than zero")),
        d => Ok(d),
    }
}

pub fn run(args: &Args) -> Result<Outcome, Error> {
    let loaded = inventory::load(&args.inventory)?;
    super::print_warnings(&loaded.warnings);
    let tls = if args.insecure_http {
        None
    } else {
        let from_secrets = |rel: &str, flag: &str| -> Result<PathBuf, Error> {
            args.secrets
                .as_ref()
                .map(|s| s.join(rel))
                .ok_or_else(|| Error::Usage(format!("{flag} or --secrets is required")))
        };
        Some(TlsFiles {
            cert: match &args.tls_cert {
                Some(p) => p.clone(),
                None => from_secrets("pxe-server/pxe-server-cert.pem", "--tls-cert")?,
            },
            key: match &args.tls_key {
                Some(p) => p.clone(),
                None => from_secrets("pxe-server/pxe-server-key.pem", "--tls-key")?,
            },
            client_ca: match &args.client_ca {
                Some(p) => p.clone(),
                None => from_secrets("ca/ca-cert.pem", "--client-ca")?,
            },
        })
    };
    let opts = RunOptions {
        listen: args.listen.clone(),
        boot_listen: args.boot_listen.clone(),
        db: args.db.clone(),
        tls,
        config: Config {
            stuck_after: args.stuck_after,
            discover_burst: args.discover_burst,
            discover_refill: args.discover_refill,
            discover_global_burst: args.discover_global_burst,
            discover_global_refill: args.discover_global_refill,
            store: collector::store::Limits {
                discovered: collector::discovered::Budget {
                    rows: args.max_discovered as usize,
                    bytes: (args.max_discovered_mib as usize) << 20,
                },
                history_per_service: args.history_per_service,
            },
            public_dashboard: args.public_dashboard,
            event_streams: StreamSlots::new(args.max_event_streams),
            ..Config::default()
        },
        limits: Limits {
            max_connections: args.max_connections as usize,
            max_boot_connections: args.max_boot_connections as usize,
            handshake_timeout: args.handshake_timeout,
            idle_timeout: args.idle_timeout,
            request_timeout: args.request_timeout,
        },
    };
    if args.recover {
        let recovery = collector::store::recover(&args.db).map_err(collector_error)?;
        for line in recovery.to_string().lines() {
            eprintln!("collector: recover: {line}");
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(collector::run(loaded.inventory, opts))
        .map_err(collector_error)?;
    Ok(Outcome::Ok)
}

fn collector_error(e: collector::CollectorError) -> Error {
    match e {
        collector::CollectorError::Db { path, source } => Error::Io {
            path,
            source: std::io::Error::other(source),
        },
        collector::CollectorError::File { path, source } => Error::Io { path, source },
        e @ collector::CollectorError::Corrupt { .. } => Error::Store(e.to_string()),
        other => Error::Usage(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("12"), Ok(Duration::from_secs(12)));
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
