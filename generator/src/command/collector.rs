//! `plasmagen collector`: run the progress collector (docs/collector.md).

use std::path::PathBuf;
use std::time::Duration;

use super::Outcome;
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
            ..Config::default()
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(collector::run(loaded.inventory, opts))
        .map_err(|e| match e {
            collector::CollectorError::Db { path, source } => Error::Io {
                path,
                source: std::io::Error::other(source),
            },
            other => Error::Usage(other.to_string()),
        })?;
    Ok(Outcome::Ok)
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
