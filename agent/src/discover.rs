//! `plasma-agent discover`: describe this machine's hardware and post it to the collector.
//!
//! Runs inside the netboot image (nix/netboot.nix) before the machine is installed. Everything
//! is read from files relative to a root directory so tests can build a fake `/sys`, `/proc`
//! and `/dev/disk/by-id` tree; in production the root is `/`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plasma_wire::discover::{Cpu, DiscoverReport, Disk, Nic};
use tokio::time::Instant;

/// Kernel command-line parameter naming the collector's base URL.
pub const CMDLINE_COLLECTOR: &str = "plasmacloud.collector";
/// Kernel command-line parameter naming the MAC the machine booted from (iPXE `${net0/mac}`).
pub const CMDLINE_MAC: &str = "plasmacloud.mac";

/// Block devices that are never installation targets.
const SKIPPED_DISK_PREFIXES: [&str; 4] = ["loop", "ram", "zram", "dm-"];

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

/// Collects the whole report. `boot_mac` (from the kernel command line) becomes the primary
/// MAC when given; otherwise the first NIC by name is used.
pub fn collect(root: &Path, boot_mac: Option<&str>) -> Result<DiscoverReport, DiscoverError> {
    let nics = read_nics(root)?;
    let primary_mac = match boot_mac {
        Some(mac) => normalize_mac(mac),
        None => nics
            .first()
            .map(|n| n.mac.clone())
            .ok_or_else(|| DiscoverError::NoNics(root.join("sys/class/net")))?,
    };
    Ok(DiscoverReport {
        primary_mac,
        nics,
        disks: read_disks(root)?,
        memory_bytes: read_memory_bytes(root)?,
        cpu: read_cpu(root)?,
        hostname: read_hostname(root),
    })
}

/// Physical NICs from `/sys/class/net`, sorted by name. Interfaces without a `device` link
/// (loopback, bridges, bonds, veth, tun/tap) are virtual and skipped.
pub fn read_nics(root: &Path) -> Result<Vec<Nic>, DiscoverError> {
    let dir = root.join("sys/class/net");
    let mut nics = Vec::new();
    for name in dir_names(&dir)? {
        let iface = dir.join(&name);
        if name == "lo" || fs::symlink_metadata(iface.join("device")).is_err() {
            continue;
        }
        let mac = normalize_mac(&read(&iface.join("address"))?);
        if mac.is_empty() || mac == "00:00:00:00:00:00" {
            continue;
        }
        // The kernel answers EINVAL for speed/carrier while the link is down: unknown, not an error.
        let speed_mbps = read_optional(&iface.join("speed"))
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0);
        let carrier = read_optional(&iface.join("carrier")).and_then(|c| match c.as_str() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        });
        nics.push(Nic {
            name,
            mac,
            speed_mbps,
            carrier,
        });
    }
    Ok(nics)
}

/// Whole disks from `/sys/block`, sorted by kernel name, with their `/dev/disk/by-id` names.
/// Disks reporting size 0 (empty card readers, ejected media) are skipped.
pub fn read_disks(root: &Path) -> Result<Vec<Disk>, DiscoverError> {
    let dir = root.join("sys/block");
    let by_id = read_by_id(root)?;
    let mut disks = Vec::new();
    for name in dir_names(&dir)? {
        if SKIPPED_DISK_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let dev = dir.join(&name);
        let size_path = dev.join("size");
        let sectors: u64 = parse(&size_path, &read(&size_path)?)?;
        if sectors == 0 {
            continue;
        }
        let rotational =
            read_optional(&dev.join("queue/rotational")).and_then(|r| match r.as_str() {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            });
        let model = read_optional(&dev.join("device/model")).filter(|m| !m.is_empty());
        let ids = by_id
            .iter()
            .filter(|(_, target)| *target == name)
            .map(|(link, _)| format!("/dev/disk/by-id/{link}"))
            .collect();
        disks.push(Disk {
            // /sys/block's size is always in 512-byte sectors, whatever the logical block size.
            size_bytes: sectors.saturating_mul(512),
            name,
            by_id: ids,
            model,
            rotational,
        });
    }
    Ok(disks)
}

/// `(link name, kernel name)` for every symlink in `/dev/disk/by-id`, sorted by link name.
/// A missing directory (no udev yet, or a machine without disks) yields no names.
fn read_by_id(root: &Path) -> Result<Vec<(String, String)>, DiscoverError> {
    let dir = root.join("dev/disk/by-id");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for link in dir_names(&dir)? {
        let path = dir.join(&link);
        let Ok(target) = fs::read_link(&path) else {
            continue;
        };
        // udev writes relative links (`../../sda`); only the final component names the device.
        if let Some(kernel) = target.file_name().and_then(|n| n.to_str()) {
            out.push((link, kernel.to_owned()));
        }
    }
    Ok(out)
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn read_memory_bytes(root: &Path) -> Result<u64, DiscoverError> {
    let path = root.join("proc/meminfo");
    let text = read(&path)?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .ok_or_else(|| parse_error(&path, "no MemTotal line"))?;
    let mut words = line.split_whitespace();
    let value: u64 = parse(&path, words.next().unwrap_or(""))?;
    let multiplier = match words.next() {
        Some("kB") | None => 1024,
        Some(unit) => return Err(parse_error(&path, &format!("unknown unit {unit:?}"))),
    };
    Ok(value.saturating_mul(multiplier))
}

/// The first `model name` and the number of `processor` entries in `/proc/cpuinfo`.
pub fn read_cpu(root: &Path) -> Result<Cpu, DiscoverError> {
    let path = root.join("proc/cpuinfo");
    let text = read(&path)?;
    let mut model = None;
    let mut logical_cpus = 0u32;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "processor" => logical_cpus += 1,
            "model name" if model.is_none() => model = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    if logical_cpus == 0 {
        return Err(parse_error(&path, "no processor entries"));
    }
    Ok(Cpu {
        // Some architectures (arm64) have no "model name"; the collector still wants a string.
        model: model.unwrap_or_else(|| "unknown".to_owned()),
        logical_cpus,
    })
}

/// The running kernel's hostname, if any.
pub fn read_hostname(root: &Path) -> Option<String> {
    read_optional(&root.join("proc/sys/kernel/hostname")).filter(|h| !h.is_empty())
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
                let body = resp.text().await.unwrap_or_default();
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

fn dir_names(dir: &Path) -> Result<Vec<String>, DiscoverError> {
    let entries = fs::read_dir(dir).map_err(|source| DiscoverError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DiscoverError::Read {
            path: dir.to_owned(),
            source,
        })?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn read(path: &Path) -> Result<String, DiscoverError> {
    fs::read_to_string(path).map_err(|source| DiscoverError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_optional(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn parse<T: std::str::FromStr>(path: &Path, text: &str) -> Result<T, DiscoverError>
where
    T::Err: std::fmt::Display,
{
    text.trim()
        .parse()
        .map_err(|e: T::Err| parse_error(path, &format!("{text:?}: {e}")))
}

fn parse_error(path: &Path, reason: &str) -> DiscoverError {
    DiscoverError::Parse {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
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
