//! `POST /v1/discover`: unauthenticated hardware reports of netbooted machines, bounded per
//! source address and for all sources together (inventory MACs aside); what is stored is
//! bounded by [`crate::discovered::Budget`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use plasma_inventory::inventory::Mac;
use plasma_wire::discover::DiscoverReport;
use serde_json::json;
use tokio::time::Instant;

use super::api::{Caller, read_json};
use super::auth::Peer;
use super::error::ApiError;
use super::store::WriteOp;
use super::{AppState, Shared};

/// Per-source token buckets for `/v1/discover` (tokio time, so tests can pause it).
pub struct RateLimiter {
    burst: f64,
    refill: Duration,
    buckets: Mutex<HashMap<Option<IpAddr>, (f64, Instant)>>,
}

/// Forget idle sources once this many are tracked.
const MAX_TRACKED_SOURCES: usize = 65_536;

impl RateLimiter {
    pub fn new(burst: u32, refill: Duration) -> RateLimiter {
        RateLimiter {
            burst: f64::from(burst.max(1)),
            refill: refill.max(Duration::from_millis(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take a token for `source`; `Err(wait)` when it has none.
    pub fn take(&self, source: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if b.len() >= MAX_TRACKED_SOURCES {
            let burst = self.burst;
            let refill = self.refill.as_secs_f64();
            b.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() / refill < burst
            });
        }
        let (tokens, at) = b.entry(source).or_insert((self.burst, now));
        let refilled = now.duration_since(*at).as_secs_f64() / self.refill.as_secs_f64();
        *tokens = (*tokens + refilled).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(self.refill.mul_f64(1.0 - *tokens))
        }
    }
}

const MAX_NICS: usize = 64;
const MAX_DISKS: usize = 256;
const MAX_BY_ID: usize = 32;
const MAX_STRING: usize = 512;

fn check_discover(d: &DiscoverReport) -> Result<String, ApiError> {
    let invalid =
        |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_discover", m);
    let mac = Mac::parse_any_separator(&d.primary_mac)
        .map_err(|e| invalid(format!("primary_mac: {e}")))?;
    if d.nics.len() > MAX_NICS || d.disks.len() > MAX_DISKS {
        return Err(invalid(format!(
            "at most {MAX_NICS} NICs and {MAX_DISKS} disks are accepted"
        )));
    }
    let mut strings: Vec<&str> = vec![&d.cpu.model];
    strings.extend(d.hostname.as_deref());
    for n in &d.nics {
        strings.extend([n.name.as_str(), n.mac.as_str()]);
    }
    for disk in &d.disks {
        if disk.by_id.len() > MAX_BY_ID {
            return Err(invalid(format!(
                "disk {}: at most {MAX_BY_ID} by-id names are accepted",
                disk.name
            )));
        }
        strings.push(&disk.name);
        strings.extend(disk.model.as_deref());
        strings.extend(disk.by_id.iter().map(String::as_str));
    }
    if strings.iter().any(|s| s.len() > MAX_STRING) {
        return Err(invalid(format!(
            "a name or model is longer than {MAX_STRING} bytes"
        )));
    }
    Ok(mac.as_str().to_string())
}

/// Largest discovery report stored, serialised (facts of a machine with many disks and NICs
/// take a few KiB).
pub const MAX_STORED_FACTS: usize = 16 * 1024;

pub(crate) async fn post_discover(
    State(s): State<AppState>,
    Caller(peer): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let res = accept_discover(&s, &peer, &headers, body).await;
    match &res {
        Ok(_) => s.metrics.discover("stored"),
        Err(e) => s.metrics.discover(e.code),
    }
    res
}

fn rate_limited(wait: Duration, what: &str) -> ApiError {
    let secs = wait.as_secs().max(1);
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("{what}; retry in {secs}s"),
    );
    e.retry_after = Some(secs);
    e
}

async fn accept_discover(
    s: &Shared,
    peer: &Peer,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let source = peer.addr.map(|a| a.ip());
    if let Err(wait) = s.limiter.take(source) {
        return Err(rate_limited(
            wait,
            "too many discovery reports from this address",
        ));
    }
    let report: DiscoverReport = read_json(headers, body).await?;
    let mac = check_discover(&report)?;
    // What is stored (and shown) per machine stays small whatever the body limit allows.
    let json = serde_json::to_string(&report).unwrap_or_default();
    let stored = json.len();
    if stored > MAX_STORED_FACTS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "facts_too_large",
            format!(
                "a discovery report may hold at most {MAX_STORED_FACTS} bytes of facts ({stored} sent)"
            ),
        ));
    }
    let known = s.catalog().hostname_by_mac(&mac).map(str::to_string);
    // An inventory node's MAC is always accepted: a flood must never keep a node that is
    // being provisioned from reporting. Everything else shares one budget.
    if known.is_none()
        && let Err(wait) = s.global_limiter.take(None)
    {
        return Err(rate_limited(
            wait,
            "too many discovery reports from all addresses together",
        ));
    }
    s.store
        .write(WriteOp::Discover {
            mac: mac.clone(),
            report,
            json,
            remote: peer.addr.map(|a| a.ip().to_string()),
        })
        .await?;
    Ok(Json(json!({"status": "stored", "mac": mac, "inventory_node": known})).into_response())
}
