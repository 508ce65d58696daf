//! Waiting for a service's `/health` to say `"status":"healthy"` (plus optional expectations
//! such as `"database":"connected"` for the IAM gate).

use std::time::Duration;

use reqwest::Url;
use serde_json::Value;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::config::ConfigError;
use crate::http::{Http, Limit, REQUEST_TIMEOUT};
use crate::notify::Notifier;

pub const FIRST_DELAY: Duration = Duration::from_millis(500);
pub const MAX_DELAY: Duration = Duration::from_secs(5);
const MIN_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// `--expect key=value`: a top-level field of the health body that must equal `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub key: String,
    pub value: String,
}

impl std::str::FromStr for Expect {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Expect, ConfigError> {
        match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok(Expect {
                key: k.to_owned(),
                value: v.to_owned(),
            }),
            _ => Err(ConfigError::Argument {
                arg: "--expect".into(),
                problem: format!("{s:?} is not key=value"),
            }),
        }
    }
}

/// The service never became healthy; `last_seen` is what the operator needs to know.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Health check timeout after {secs}s: last seen {last_seen}")]
pub struct HealthTimeout {
    pub secs: u64,
    pub last_seen: String,
}

/// Checks one answer; `Err` describes why it is not (yet) healthy.
pub fn judge(status: u16, body: &[u8], expect: &[Expect]) -> Result<Value, String> {
    let snippet = || {
        String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(200)
            .collect::<String>()
    };
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return Err(format!("HTTP {status}: {}", snippet())),
    };
    if status != 200 {
        return Err(format!("HTTP {status}: {}", snippet()));
    }
    if v.get("status").and_then(Value::as_str) != Some("healthy") {
        return Err(format!("HTTP 200 but not healthy: {}", snippet()));
    }
    for e in expect {
        let got = match v.get(&e.key) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => {
                return Err(format!(
                    "HTTP 200 but no \"{}\" (want {:?}): {}",
                    e.key,
                    e.value,
                    snippet()
                ));
            }
        };
        if got != e.value {
            return Err(format!(
                "HTTP 200 but \"{}\" is {got:?} (want {:?})",
                e.key, e.value
            ));
        }
    }
    Ok(v)
}

/// Polls `url` with backoff 0.5 s doubling to 5 s until healthy or `timeout` has passed.
pub async fn wait_healthy(
    http: &Http,
    url: &Url,
    expect: &[Expect],
    timeout: Duration,
    notify: &Notifier,
) -> Result<Value, HealthTimeout> {
    let deadline = Instant::now() + timeout;
    let mut backoff = Backoff::new(FIRST_DELAY, MAX_DELAY);
    let mut last_seen = String::from("no answer yet");
    loop {
        // The last probe still gets a fair timeout: a clipped one would report our own
        // deadline as "timed out" instead of what the service answered.
        let remaining = deadline.saturating_duration_since(Instant::now());
        let t = remaining.max(MIN_PROBE_TIMEOUT).min(REQUEST_TIMEOUT);
        let verdict = match http.get(url, Limit::Small, Some(t)).await {
            Ok(resp) => judge(resp.status, &resp.body, expect),
            // Transport errors and bodies over the cap alike: not healthy, probe again.
            Err(e) => Err(e.to_string()),
        };
        match verdict {
            Ok(v) => return Ok(v),
            Err(seen) => {
                if seen != last_seen {
                    tracing::info!(url = %url, seen = %seen, "service not healthy yet");
                }
                last_seen = seen;
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(HealthTimeout {
                secs: timeout.as_secs(),
                last_seen,
            });
        }
        let delay = backoff.next_delay().min(remaining);
        notify.extend_timeout(delay + REQUEST_TIMEOUT + Duration::from_secs(10));
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_requires_healthy_and_expectations() {
        let ok = br#"{"status":"healthy","database":"connected","version":"1.0.0"}"#;
        let want: Vec<Expect> = vec!["database=connected".parse().unwrap()];
        assert!(judge(200, ok, &want).is_ok());
        let down = br#"{"status":"healthy","database":"disconnected"}"#;
        let e = judge(200, down, &want).unwrap_err();
        assert!(e.contains("\"database\" is \"disconnected\""), "{e}");
        let e = judge(503, br#"{"status":"starting"}"#, &[]).unwrap_err();
        assert!(e.starts_with("HTTP 503"), "{e}");
        assert!(judge(200, br#"{"status":"degraded"}"#, &[]).is_err());
        assert!(judge(200, b"OK", &[]).is_err());
        let n: Vec<Expect> = vec!["cluster_size=3".parse().unwrap()];
        assert!(judge(200, br#"{"status":"healthy","cluster_size":3}"#, &n).is_ok());
        assert!("novalue".parse::<Expect>().is_err());
    }
}
