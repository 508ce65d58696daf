//! Progress reports to the collector: best effort, spooled when it cannot be reached.
//!
//! A join must never wait on the collector: each POST has a short timeout, and after the
//! first failure the collector counts as down for the rest of the run (later reports go
//! straight to the spool), so a dead collector costs at most one timeout per run. Spooled
//! reports are sent, oldest first, before the next report of a later run that reaches it.
//! The spool is per service because the chainfire and flaredb units run concurrently.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use plasma_wire::Report;
use reqwest::Url;

use crate::http::{Http, Limit};

/// Upper bound on how long one report may delay the agent.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Reporter {
    http: Http,
    url: Url,
    spool: PathBuf,
    down: AtomicBool,
    timeout: Duration,
}

enum Delivery {
    Delivered,
    /// The collector answered but refused the report (4xx): resending would not help.
    Rejected(String),
    Unreachable(String),
}

impl Reporter {
    pub fn new(http: Http, collector_url: &Url, state_dir: &Path, service: &str) -> Reporter {
        let mut url = collector_url.clone();
        url.set_path(&format!(
            "{}/v1/reports",
            collector_url.path().trim_end_matches('/')
        ));
        Reporter {
            http,
            url,
            spool: spool_path(state_dir, service),
            down: AtomicBool::new(false),
            timeout: REPORT_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Reporter {
        self.timeout = timeout;
        self
    }

    /// Sends `report` (after any spooled ones), or spools it. Never fails.
    pub async fn send(&self, report: Report) {
        if !self.down.load(Ordering::Relaxed) && self.flush().await {
            match self.deliver(&report).await {
                Delivery::Delivered => return,
                Delivery::Rejected(why) => {
                    tracing::warn!(error = %why, report_phase = %report.phase, "collector rejected report");
                    return;
                }
                Delivery::Unreachable(why) => self.mark_down(&why),
            }
        }
        if let Err(e) = append(&self.spool, &[report]) {
            tracing::warn!(error = %e, spool = %self.spool.display(), "cannot spool report");
        }
    }

    /// Sends the spool; true when it is empty afterwards.
    async fn flush(&self) -> bool {
        let pending = read_spool(&self.spool);
        if pending.is_empty() {
            return true;
        }
        for (i, r) in pending.iter().enumerate() {
            match self.deliver(r).await {
                Delivery::Delivered => {}
                Delivery::Rejected(why) => {
                    tracing::warn!(error = %why, report_phase = %r.phase, "collector rejected spooled report")
                }
                Delivery::Unreachable(why) => {
                    self.mark_down(&why);
                    if let Err(e) = rewrite(&self.spool, &pending[i..]) {
                        tracing::warn!(error = %e, "cannot rewrite report spool");
                    }
                    return false;
                }
            }
        }
        tracing::info!(count = pending.len() as u64, "delivered spooled reports");
        if let Err(e) = std::fs::remove_file(&self.spool) {
            tracing::warn!(error = %e, "cannot remove report spool");
        }
        true
    }

    async fn deliver(&self, r: &Report) -> Delivery {
        let sent = self
            .http
            .post_json(&self.url, r, Limit::Small, Some(self.timeout));
        match sent.await {
            Ok(resp) if (200..300).contains(&resp.status) => Delivery::Delivered,
            Ok(resp)
                if (400..500).contains(&resp.status)
                    && resp.status != 408
                    && resp.status != 429 =>
            {
                Delivery::Rejected(format!("HTTP {}: {}", resp.status, resp.body_snippet()))
            }
            Ok(resp) => Delivery::Unreachable(format!("HTTP {}", resp.status)),
            // A reply over the cap is a failed delivery, like a 5xx: spool, resend later.
            Err(e) => Delivery::Unreachable(e.to_string()),
        }
    }

    fn mark_down(&self, why: &str) {
        self.down.store(true, Ordering::Relaxed);
        tracing::warn!(
            collector = %self.url,
            error = %why,
            "collector unreachable; spooling reports until the next run"
        );
    }
}

pub fn spool_path(state_dir: &Path, service: &str) -> PathBuf {
    state_dir.join(format!("reports-{service}.jsonl"))
}

/// Spooled reports, oldest first. A torn last line (crash mid-append) is skipped.
pub fn read_spool(path: &Path) -> Vec<Report> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn append(path: &Path, reports: &[Report]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut buf = Vec::new();
    for r in reports {
        serde_json::to_writer(&mut buf, r)?;
        buf.push(b'\n');
    }
    f.write_all(&buf)
}

fn rewrite(path: &Path, reports: &[Report]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    for r in reports {
        serde_json::to_writer(&mut tmp, r)?;
        tmp.write_all(b"\n")?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
