//! The one HTTP client of the agent: admin API and collector.
//!
//! TLS trusts only `tls.ca` (never system roots) and presents `tls.cert`/`tls.key` as client
//! certificate. Redirects are not followed by the client: the join logic follows them itself
//! so that it can bound hops, refuse https→http downgrades and log each one.
//!
//! Every response body is read against a cap ([`Limit`]): anyone holding a CA-signed
//! certificate (every node certificate has serverAuth), or any peer in plain-http lab mode,
//! could otherwise stream an endless body into the agent's memory.

use std::time::Duration;

use plasma_wire::TlsPaths;
use reqwest::{Certificate, Client, Identity, Url, redirect};
use serde::Serialize;

use crate::config::ConfigError;

/// Per-request deadline for admin API calls; a hung peer must not eat the join deadline.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct Http {
    client: Client,
    insecure: bool,
}

/// Cap of `GET /admin/cluster/members` bodies: a member is ~100 bytes of JSON, so 4 MiB is
/// tens of thousands of members, far beyond any cluster, yet small next to a node's RAM.
pub const MEMBERS_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Cap of every other body (health, add answers, leader hints, collector replies): they are a
/// few hundred bytes.
pub const SMALL_BODY_LIMIT: usize = 64 * 1024;

/// How much of a response body one call accepts; every call site states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The membership list: [`MEMBERS_BODY_LIMIT`].
    Members,
    /// Everything else: [`SMALL_BODY_LIMIT`].
    Small,
}

impl Limit {
    /// The cap in bytes.
    pub const fn bytes(self) -> usize {
        match self {
            Limit::Members => MEMBERS_BODY_LIMIT,
            Limit::Small => SMALL_BODY_LIMIT,
        }
    }
}

/// A response read to the end (at most its [`Limit`]).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub location: Option<String>,
    /// `Retry-After` in its delta-seconds form (RFC 9110, 10.2.3). The HTTP-date form is
    /// ignored: a machine on its first boot may not have the right time yet.
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body for a log line: short, one line.
    pub fn body_snippet(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        let s = s.trim().replace('\n', " ");
        if s.chars().count() > 200 {
            s.chars().take(200).collect::<String>() + "…"
        } else {
            s
        }
    }
}

/// reqwest is built without a bundled TLS provider (agent/Cargo.toml: ring, not aws-lc-rs):
/// every client of the agent needs this first, or its first https request panics ("No rustls
/// crypto provider is configured"). An already installed provider is fine too.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A request that produced no usable answer. Callers treat every variant as a failed attempt
/// (like a 5xx): retry, next URL, or give up at the deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// No complete HTTP answer: refused, reset, timeout, TLS.
    #[error("{0}")]
    Transport(String),
    /// The body is larger than the call's cap; reading stopped there (or, with a larger
    /// Content-Length, never started) and the connection was dropped. The message leaves the
    /// URL out: every caller already names it (log field or prefix).
    #[error("response body {} the {limit}-byte cap: refused", over(*.declared))]
    BodyTooLarge {
        limit: usize,
        url: String,
        /// The Content-Length, when that is what gave it away.
        declared: Option<u64>,
    },
}

fn over(declared: Option<u64>) -> String {
    match declared {
        Some(n) => format!("of {n} bytes (Content-Length) is over"),
        None => "is over".into(),
    }
}

impl Http {
    /// `need_tls`: some configured URL is https, so the TLS files must be usable.
    pub fn new(tls: &TlsPaths, insecure: bool, need_tls: bool) -> Result<Http, ConfigError> {
        install_crypto_provider();
        let mut b = Client::builder()
            .redirect(redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("plasma-agent/", env!("CARGO_PKG_VERSION")));
        let identity = load_identity(tls);
        if insecure {
            b = b.tls_danger_accept_invalid_certs(true);
        } else {
            match load_roots(&tls.ca) {
                Ok(r) => b = b.tls_certs_only(r),
                Err(e) if need_tls => return Err(e),
                // Plain-http lab: trust nothing, so an https redirect fails loudly.
                Err(_) => b = b.tls_certs_only([]),
            }
        }
        match identity {
            Ok(id) => b = b.identity(id),
            Err(e) if need_tls && !insecure => return Err(e),
            Err(_) => {}
        }
        let client = b.build().map_err(|e| {
            ConfigError::field(
                "tls",
                format!("cannot build the TLS client: {}", describe(&e)),
            )
        })?;
        Ok(Http { client, insecure })
    }

    pub async fn get(
        &self,
        url: &Url,
        limit: Limit,
        timeout: Option<Duration>,
    ) -> Result<Response, HttpError> {
        self.warn_insecure(url);
        let mut req = self.client.get(url.clone());
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        Self::finish(req.send().await, limit).await
    }

    pub async fn post_json<T: Serialize + ?Sized>(
        &self,
        url: &Url,
        body: &T,
        limit: Limit,
        timeout: Option<Duration>,
    ) -> Result<Response, HttpError> {
        self.warn_insecure(url);
        let mut req = self.client.post(url.clone()).json(body);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        Self::finish(req.send().await, limit).await
    }

    async fn finish(
        sent: reqwest::Result<reqwest::Response>,
        limit: Limit,
    ) -> Result<Response, HttpError> {
        let resp = sent.map_err(|e| HttpError::Transport(describe(&e)))?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = read_body(resp, limit).await?;
        Ok(Response {
            status,
            location,
            retry_after,
            body,
        })
    }

    fn warn_insecure(&self, url: &Url) {
        if self.insecure && url.scheme() == "https" {
            tracing::warn!(url = %url, "TLS certificate verification disabled by --insecure");
        }
    }
}

/// Reads the body of `resp`, at most `limit` bytes. Over the cap, the rest is never read:
/// dropping the response closes the connection. Logged here, once per refused body, so
/// every caller's retry loop shows why each attempt failed.
pub async fn read_body(mut resp: reqwest::Response, limit: Limit) -> Result<Vec<u8>, HttpError> {
    let cap = limit.bytes();
    let too_large = |declared: Option<u64>, url: &Url| {
        let e = HttpError::BodyTooLarge {
            limit: cap,
            url: url.to_string(),
            declared,
        };
        tracing::warn!(url = %url, limit = cap as u64, error = %e, "response body over the cap: attempt failed");
        e
    };
    let declared = resp
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > cap as u64) {
        return Err(too_large(Some(n), resp.url()));
    }
    // Content-Length ≤ cap here, so it is a safe capacity hint.
    let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| HttpError::Transport(describe(&e)))?
    {
        if body.len() + chunk.len() > cap {
            return Err(too_large(None, resp.url()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// "error sending request" alone says nothing; the cause chain holds "Connection refused",
/// "operation timed out" or the TLS alert.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    if let Some(r) = e.downcast_ref::<reqwest::Error>()
        && r.is_timeout()
        && !parts.iter().any(|p| p.contains("timed out"))
    {
        parts.push("timed out".into());
    }
    parts.join(": ")
}

fn read(field: &str, path: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::field(field, format!("{path}: {e}")))
}

fn load_roots(ca: &str) -> Result<Vec<Certificate>, ConfigError> {
    let pem = read("tls.ca", ca)?;
    pem_roots(&pem).map_err(|e| ConfigError::field("tls.ca", format!("{ca}: {e}")))
}

/// The certificates of a PEM bundle to trust; `Err` says why it holds none.
pub fn pem_roots(pem: &[u8]) -> Result<Vec<Certificate>, String> {
    let certs = Certificate::from_pem_bundle(pem).map_err(|e| describe(&e))?;
    if certs.is_empty() {
        return Err("no certificate in file".into());
    }
    Ok(certs)
}

fn load_identity(tls: &TlsPaths) -> Result<Identity, ConfigError> {
    let mut pem = read("tls.cert", &tls.cert)?;
    pem.push(b'\n');
    pem.extend(read("tls.key", &tls.key)?);
    Identity::from_pem(&pem).map_err(|e| {
        ConfigError::field(
            "tls.cert",
            format!("{} / {}: {}", tls.cert, tls.key, describe(&e)),
        )
    })
}
