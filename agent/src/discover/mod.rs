//! `plasma-agent discover`: describe this machine's hardware and post it to the collector.
//!
//! Runs inside the netboot image (nix/netboot.nix) before the machine is installed. Everything
//! is read from files relative to a root directory so tests can build a fake `/sys`, `/proc`
//! and `/dev/disk/by-id` tree; in production the root is `/`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plasma_wire::discover::DiscoverReport;
use tokio::time::Instant;

mod bmc;
mod sysfs;

pub use bmc::parse_lan_print;
use sysfs::read;
pub use sysfs::{
    collect, read_cpu, read_disks, read_firmware, read_hostname, read_memory_bytes, read_nics,
};

/// Kernel command-line parameter naming the collector's base URL.
pub const CMDLINE_COLLECTOR: &str = "plasmacloud.collector";
/// Kernel command-line parameter naming the MAC the machine booted from (iPXE `${net0/mac}`).
pub const CMDLINE_MAC: &str = "plasmacloud.mac";

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("parsing {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("no physical network interface with a MAC address under {0}")]
    NoNics(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("CA file {path}: {reason}")]
    Ca { path: PathBuf, reason: String },
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// A 4xx answer: the collector understood the request and refused it, so retrying the
    /// same body cannot help.
    #[error("collector rejected the report with HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    #[error(
        "collector did not accept the report within {timeout:?} ({attempts} attempts; last error: {last})"
    )]
    Timeout {
        timeout: Duration,
        attempts: u32,
        last: String,
    },
}

/// What the netboot kernel command line tells the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    pub collector: Option<String>,
    pub mac: Option<String>,
}

/// Parses `plasmacloud.collector=<url>` and `plasmacloud.mac=<mac>` out of `/proc/cmdline`.
/// The last occurrence wins, as with the kernel's own parameters.
pub fn parse_cmdline(text: &str) -> Cmdline {
    let mut out = Cmdline::default();
    for word in text.split_ascii_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        let value = value.trim_matches('"');
        if value.is_empty() {
            continue;
        }
        match key {
            CMDLINE_COLLECTOR => out.collector = Some(value.to_owned()),
            CMDLINE_MAC => out.mac = Some(normalize_mac(value)),
            _ => {}
        }
    }
    out
}

/// Reads `<root>/proc/cmdline`.
pub fn read_cmdline(root: &Path) -> Result<Cmdline, DiscoverError> {
    Ok(parse_cmdline(&read(&root.join("proc/cmdline"))?))
}

/// Lower-case, colon-separated; accepts the `52-54-00-...` form too.
pub fn normalize_mac(mac: &str) -> String {
    mac.trim().to_ascii_lowercase().replace('-', ":")
}

/// Delays between attempts: doubling from `initial` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

/// How to deliver a report.
#[derive(Debug, Clone, Default)]
pub struct PostConfig {
    /// Give up after this long (all attempts together).
    pub timeout: Duration,
    pub backoff: Backoff,
    /// PEM bundle to trust for an https collector instead of the system roots (the netboot
    /// image has no site CA otherwise).
    pub ca_file: Option<PathBuf>,
}

/// Successful delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub status: u16,
    pub attempts: u32,
}

/// `POST <collector>/v1/discover` with the report as JSON, retrying connection errors, request
/// timeouts and 5xx/408/429 answers with backoff until a 2xx answer or `timeout` has passed.
pub async fn post_report(
    collector: &str,
    report: &DiscoverReport,
    cfg: &PostConfig,
) -> Result<Delivered, PostError> {
    let url = discover_url(collector);
    let timeout = cfg.timeout;
    let deadline = Instant::now() + timeout;
    // One attempt never takes more than a slice of the budget, so a hung collector is retried.
    let per_request = timeout.clamp(Duration::from_millis(100), Duration::from_secs(10));
    crate::http::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(per_request)
        .no_proxy()
        // As every other request of the agent: a redirect is not followed (it could send the
        // machine's facts elsewhere, or in the clear after an https→http downgrade).
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("plasma-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &cfg.ca_file {
        builder = builder.tls_certs_only(load_ca(path)?);
    }
    let client = builder.build().map_err(PostError::Client)?;
    let mut backoff = crate::backoff::Backoff::new(cfg.backoff.initial, cfg.backoff.max);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let last = match client.post(&url).json(report).send().await {
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    tracing::info!(%url, status = status.as_u16(), attempts, "discover report accepted");
                    return Ok(Delivered {
                        status: status.as_u16(),
                        attempts,
                    });
                }
                // Capped like every body the agent reads; a body that cannot be read (over
                // the cap, cut off) makes this a failed attempt whatever the status.
                match crate::http::read_body(resp, crate::http::Limit::Small).await {
                    Err(e) => format!("HTTP {}: {e}", status.as_u16()),
                    Ok(bytes) => {
                        let body = String::from_utf8_lossy(&bytes).into_owned();
                        let retriable = status.is_server_error()
                            || status == reqwest::StatusCode::REQUEST_TIMEOUT
                            || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                        if !retriable {
                            return Err(PostError::Rejected {
                                status: status.as_u16(),
                                body,
                            });
                        }
                        format!("HTTP {}: {}", status.as_u16(), body.trim())
                    }
                }
            }
            Err(err) => crate::http::describe(&err),
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(PostError::Timeout {
                timeout,
                attempts,
                last,
            });
        }
        let delay = backoff.next_delay();
        tracing::warn!(%url, attempts, error = %last, retry_in = ?delay, "collector not ready");
        tokio::time::sleep(delay.min(deadline - now)).await;
    }
}

/// Where the collector URL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectorSource {
    Url(String),
    /// `plasmacloud.collector=` on `<root>/proc/cmdline`, so one netboot image serves every site.
    Cmdline,
}

/// Everything `plasma-agent discover` needs; the CLI only fills this in.
#[derive(Debug, Clone)]
pub struct DiscoverRun {
    pub root: PathBuf,
    pub collector: CollectorSource,
    /// Overrides the boot MAC; otherwise `plasmacloud.mac=` from the command line, if present.
    pub mac: Option<String>,
    pub post: PostConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error("no collector URL: pass --collector or boot with {CMDLINE_COLLECTOR}=<url>")]
    NoCollector,
    #[error(transparent)]
    Post(#[from] PostError),
}

impl RunError {
    /// True when only the operator can fix it (exit 2); otherwise a later run may succeed
    /// (exit 75: the collector was unreachable, or the hardware could not be read yet).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::NoCollector
                | Self::Post(
                    PostError::Rejected { .. } | PostError::Ca { .. } | PostError::Client(_)
                )
        )
    }

    /// The agent's exit codes (see `crate::exit`).
    pub fn exit_code(&self) -> u8 {
        if self.is_config() {
            crate::exit::EXIT_CONFIG
        } else {
            crate::exit::EXIT_TEMPFAIL
        }
    }
}

/// Collects the report and delivers it; returns what was sent and how.
pub async fn run(opts: &DiscoverRun) -> Result<(DiscoverReport, Delivered), RunError> {
    // The command line is read even with an explicit URL: it may carry the boot MAC.
    let cmdline = read_cmdline(&opts.root).unwrap_or_default();
    let collector = match &opts.collector {
        CollectorSource::Url(url) => url.clone(),
        CollectorSource::Cmdline => cmdline.collector.clone().ok_or(RunError::NoCollector)?,
    };
    let mac = opts.mac.as_deref().or(cmdline.mac.as_deref());
    let report = collect(&opts.root, mac)?;
    tracing::info!(
        primary_mac = %report.primary_mac,
        nics = report.nics.len(),
        disks = report.disks.len(),
        %collector,
        "hardware collected"
    );
    let delivered = post_report(&collector, &report, &opts.post).await?;
    Ok((report, delivered))
}

/// `<collector>/v1/discover`, tolerating a trailing slash on the base URL.
pub fn discover_url(collector: &str) -> String {
    format!("{}/v1/discover", collector.trim_end_matches('/'))
}

fn load_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, PostError> {
    let ca_err = |reason: String| PostError::Ca {
        path: path.to_owned(),
        reason,
    };
    let pem = fs::read(path).map_err(|e| ca_err(e.to_string()))?;
    crate::http::pem_roots(&pem).map_err(ca_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_takes_collector_and_mac() {
        let c = parse_cmdline(
            "init=/nix/store/x/init initrd=initrd plasmacloud.collector=http://10.0.100.10:8081 plasmacloud.mac=52-54-00-AB-CD-EF quiet\n",
        );
        assert_eq!(c.collector.as_deref(), Some("http://10.0.100.10:8081"));
        assert_eq!(c.mac.as_deref(), Some("52:54:00:ab:cd:ef"));
        assert_eq!(
            parse_cmdline("quiet plasmacloud.collector="),
            Cmdline::default()
        );
    }

    #[test]
    fn discover_url_joins_once() {
        assert_eq!(discover_url("http://h:1/"), "http://h:1/v1/discover");
        assert_eq!(discover_url("http://h:1"), "http://h:1/v1/discover");
    }
}
