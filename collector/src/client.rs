//! The operator's client of the collector (`plasmagen status`, `mark-installed`,
//! `reprovision`): TLS verified against the cluster CA only, the operator certificate as client
//! identity.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Certificate, Client, Identity};

use super::discovered_api::DiscoveredPage;
use super::view::{DiscoveredSummary, DiscoveredView, FleetView, NodeView};

/// The answer of `POST /v1/discovered/prune`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct PruneAnswer {
    pub pruned: Vec<String>,
    pub kept_inventory: Vec<String>,
    pub not_found: Vec<String>,
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Unusable arguments or files (exit 2).
    #[error("{0}")]
    Config(String),
    /// No HTTP answer: refused, reset, TLS failure, timeout.
    #[error("cannot reach the collector at {url}: {message}")]
    Transport { url: String, message: String },
    #[error("the collector answered {status} to {url}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
}

/// Where the TLS files come from: explicit paths win over `<secrets>/...`.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    pub secrets: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl ClientTls {
    fn pick(
        &self,
        explicit: &Option<PathBuf>,
        rel: &str,
        flag: &str,
    ) -> Result<PathBuf, ClientError> {
        explicit
            .clone()
            .or_else(|| self.secrets.as_ref().map(|s| s.join(rel)))
            .ok_or_else(|| {
                ClientError::Config(format!(
                    "an https collector needs {flag} or --secrets <DIR> (the generated secrets directory)"
                ))
            })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))
}

/// Full error chain of a reqwest error, for people.
pub fn describe(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[derive(Debug, Clone)]
pub struct OperatorClient {
    base: String,
    http: Client,
}

impl OperatorClient {
    pub fn new(collector: &str, tls: &ClientTls) -> Result<OperatorClient, ClientError> {
        let base = collector.trim_end_matches('/').to_string();
        let mut b = Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("plasmagen/", env!("CARGO_PKG_VERSION")));
        if base.starts_with("https://") {
            let ca = tls.pick(&tls.ca, "ca/ca-cert.pem", "--ca")?;
            let roots = Certificate::from_pem_bundle(&read(&ca)?)
                .map_err(|e| ClientError::Config(format!("{}: {}", ca.display(), describe(&e))))?;
            let cert = tls.pick(&tls.cert, "operator/operator-cert.pem", "--cert")?;
            let key = tls.pick(&tls.key, "operator/operator-key.pem", "--key")?;
            let mut pem = read(&cert)?;
            pem.push(b'\n');
            pem.extend(read(&key)?);
            let id = Identity::from_pem(&pem).map_err(|e| {
                ClientError::Config(format!(
                    "{} / {}: {}",
                    cert.display(),
                    key.display(),
                    describe(&e)
                ))
            })?;
            b = b.tls_certs_only(roots).identity(id);
        } else if !base.starts_with("http://") {
            return Err(ClientError::Config(format!(
                "--collector {collector:?} must start with https:// (or http:// for a lab collector)"
            )));
        }
        let http = b.build().map_err(|e| {
            ClientError::Config(format!("cannot build the HTTP client: {}", describe(&e)))
        })?;
        Ok(OperatorClient { base, http })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn finish<T: serde::de::DeserializeOwned>(
        url: &str,
        res: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, ClientError> {
        let resp = res.map_err(|e| ClientError::Transport {
            url: url.to_string(),
            message: describe(&e),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
            url: url.to_string(),
            message: describe(&e),
        })?;
        if !status.is_success() {
            return Err(ClientError::Http {
                url: url.to_string(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).trim().to_string(),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Http {
            url: url.to_string(),
            status: status.as_u16(),
            body: format!("unexpected answer: {e}"),
        })
    }

    pub async fn fleet(&self) -> Result<FleetView, ClientError> {
        let url = format!("{}/v1/nodes", self.base);
        Self::finish(&url, self.http.get(&url).send().await).await
    }

    /// One discovered machine with its facts (`GET /v1/discovered/{mac}`).
    pub async fn discovered(&self, mac: &str) -> Result<DiscoveredView, ClientError> {
        let url = format!("{}/v1/discovered/{mac}", self.base);
        Self::finish(&url, self.http.get(&url).send().await).await
    }

    /// Every discovered machine no inventory node has, as summaries (all pages of
    /// `GET /v1/discovered`, in MAC order).
    pub async fn unknown_discovered(&self) -> Result<Vec<DiscoveredSummary>, ClientError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let url = match &after {
                None => format!("{}/v1/discovered", self.base),
                Some(a) => format!("{}/v1/discovered?after={a}", self.base),
            };
            let page: DiscoveredPage = Self::finish(&url, self.http.get(&url).send().await).await?;
            all.extend(page.machines);
            match page.next_after {
                // A cursor that does not advance would loop forever.
                Some(next) if after.as_deref() != Some(next.as_str()) => after = Some(next),
                _ => return Ok(all),
            }
        }
    }

    /// Forget these discovered machines (`POST /v1/discovered/prune`).
    pub async fn prune_discovered(&self, macs: &[String]) -> Result<PruneAnswer, ClientError> {
        let url = format!("{}/v1/discovered/prune", self.base);
        let body = serde_json::json!({ "macs": macs });
        Self::finish(&url, self.http.post(&url).json(&body).send().await).await
    }

    /// One node with its history.
    pub async fn node(&self, node: &str) -> Result<NodeView, ClientError> {
        let url = format!("{}/v1/nodes/{node}?limit=1", self.base);
        Self::finish(&url, self.http.get(&url).send().await).await
    }

    /// Report a provisioning step for the dashboard.
    pub async fn provision_step(
        &self,
        node: &str,
        step: &plasma_wire::report::ProvisionStep,
    ) -> Result<NodeView, ClientError> {
        let url = format!("{}/v1/nodes/{node}/provision", self.base);
        Self::finish(&url, self.http.post(&url).json(step).send().await).await
    }

    /// `action`: `installed` or `reprovision`.
    pub async fn node_action(&self, node: &str, action: &str) -> Result<NodeView, ClientError> {
        let url = format!("{}/v1/nodes/{node}/{action}", self.base);
        Self::finish(&url, self.http.post(&url).send().await).await
    }
}
