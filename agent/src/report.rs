//! Progress reports to the collector: best effort, spooled when it cannot be reached.
//!
//! A join must never wait on the collector: each POST has a short timeout, and after a
//! failure the collector counts as down for a while (1 s, doubling to 30 s, jittered; from 1 s
//! again once it answers), during which reports go straight to the spool, so a dead collector
//! costs at most one timeout per retry. The spool is sent, oldest first, before the next report
//! that reaches the collector, in this run or a later one, and at the end of a successful join
//! [`Reporter::drain`] keeps trying for up to [`DRAIN_BUDGET`] (a collector restarting while a
//! fleet joins). A report whose answer was lost is sent again; the collector stores an
//! identical report once (docs/collector.md).
//! The spool is per service because the chainfire and flaredb units run concurrently.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use plasma_wire::Report;
use reqwest::Url;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::http::{Http, Limit};

/// Upper bound on how long one report may delay the agent.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the end of a run keeps trying to deliver the spool.
pub const DRAIN_BUDGET: Duration = Duration::from_secs(20);
const DOWN_FIRST: Duration = Duration::from_secs(1);
const DOWN_MAX: Duration = Duration::from_secs(30);

pub struct Reporter {
    http: Http,
    url: Url,
    spool: PathBuf,
    down: Mutex<Down>,
    timeout: Duration,
}

/// Until when the collector counts as down, and how long the next outage step is.
struct Down {
    until: Option<Instant>,
    backoff: Backoff,
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
            down: Mutex::new(Down {
                until: None,
                backoff: Backoff::with_jitter(DOWN_FIRST, DOWN_MAX),
            }),
            timeout: REPORT_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Reporter {
        self.timeout = timeout;
        self
    }

    /// Sends `report` (after any spooled ones), or spools it. Never fails.
    pub async fn send(&self, report: Report) {
        if !self.is_down() && self.flush().await {
            match self.deliver(&report).await {
                Delivery::Delivered => {
                    self.mark_up();
                    return;
                }
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

    /// End of a run: keeps trying to deliver the spool for up to `budget`; true when it is
    /// empty. What is still spooled is sent by a later run.
    pub async fn drain(&self, budget: Duration) -> bool {
        if read_spool(&self.spool).is_empty() {
            return true;
        }
        let end = Instant::now() + budget;
        // A failed flush leaves the spool non-empty and marks the collector down: wait for that.
        loop {
            let due = self.down_until().unwrap_or_else(Instant::now);
            if due >= end {
                tracing::warn!(spool = %self.spool.display(), "collector still unreachable: reports stay spooled for the next run");
                return false;
            }
            tokio::time::sleep_until(due).await;
            if self.flush().await {
                return true;
            }
        }
    }

    /// The collector answered: a later failure starts the backoff from its first step again.
    fn mark_up(&self) {
        let mut d = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if d.until.take().is_some() {
            d.backoff.reset(DOWN_FIRST);
        }
    }

    fn is_down(&self) -> bool {
        self.down_until().is_some_and(|t| Instant::now() < t)
    }

    fn down_until(&self) -> Option<Instant> {
        self.down.lock().unwrap_or_else(|e| e.into_inner()).until
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
        self.mark_up();
        tracing::info!(count = pending.len() as u64, "delivered spooled reports");
        if let Err(e) = std::fs::remove_file(&self.spool) {
            tracing::warn!(error = %e, "cannot remove report spool");
        }
        true
    }

    async fn deliver(&self, r: &Report) -> Delivery {
        let started = Instant::now();
        let sent = self
            .http
            .post_json(&self.url, r, Limit::Small, Some(self.timeout));
        match sent.await {
            Ok(resp) if (200..300).contains(&resp.status) => {
                // Read by the fleet bench: every acknowledged report must be stored.
                let took_us = started.elapsed().as_micros() as u64;
                tracing::debug!(report_phase = %r.phase, report_at = %r.at, took_us, "report delivered");
                Delivery::Delivered
            }
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
        let mut d = self.down.lock().unwrap_or_else(|e| e.into_inner());
        let wait = d.backoff.next_delay();
        let first = d.until.is_none();
        d.until = Some(Instant::now() + wait);
        drop(d);
        // Once per outage at warn: a dead collector must not flood the journal.
        if first {
            tracing::warn!(
                collector = %self.url,
                error = %why,
                retry_in_ms = wait.as_millis() as u64,
                "collector unreachable; spooling reports and retrying"
            );
        } else {
            tracing::debug!(collector = %self.url, error = %why, retry_in_ms = wait.as_millis() as u64, "collector still unreachable");
        }
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
