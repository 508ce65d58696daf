//! The collector: the HTTPS service nodes report their progress to, with a live dashboard,
//! and the plain-HTTP boot listener that keeps installed machines out of the install loop.
//!
//! - [`app`]: the API router (`/v1/reports`, `/v1/discover`, `/v1/nodes`, operator actions,
//!   `/health`, `/metrics`, `/` dashboard, `/v1/events`).
//! - [`boot_app`]: `GET /boot/<mac>.ipxe` (netboot, local boot or discovery).
//! - [`server`]: TLS (mTLS-optional) and plain listeners that tag each request with its
//!   [`auth::Peer`]; [`run`] wires everything for `plasmagen collector`.
//! - [`store`]: SQLite with group commits; [`fleet`]: the in-memory view of what is committed.
//!
//! Contract and operations: docs/collector.md.

mod actions;
mod api;
pub mod auth;
mod boot;
pub mod client;
mod discover;
pub mod error;
pub mod fleet;
pub mod metrics;
pub mod server;
pub mod store;
pub mod view;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use plasma_inventory::inventory::{Inventory, Node};
use tokio::sync::watch;

pub use api::{MAX_BODY, app};
pub use boot::boot_app;
pub use error::{ApiError, CollectorError};

use fleet::Fleet;
use metrics::Metrics;
use store::Store;

/// Tunables of a running collector.
#[derive(Debug, Clone)]
pub struct Config {
    /// A node with no report for this long (neither joined nor failed) is shown as stuck.
    pub stuck_after: Duration,
    /// Discovery reports per source address: burst size.
    pub discover_burst: u32,
    /// Discovery reports per source address: one more token every this long.
    pub discover_refill: Duration,
    /// At most this many distinct discovered MACs are stored.
    pub max_discovered: usize,
    /// History entries returned by `GET /v1/nodes/{id}` by default.
    pub history_limit: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            stuck_after: Duration::from_secs(600),
            discover_burst: 10,
            discover_refill: Duration::from_secs(6),
            max_discovered: 10_000,
            history_limit: 500,
        }
    }
}

/// Everything the handlers share.
pub struct Shared {
    pub inventory: Arc<Inventory>,
    /// Normalised MAC → index into `inventory.nodes`.
    by_mac: HashMap<String, usize>,
    /// Hostname → index into `inventory.nodes`: every report looks its node up.
    by_host: HashMap<String, usize>,
    pub fleet: Arc<RwLock<Fleet>>,
    pub store: Store,
    pub metrics: Metrics,
    pub changed: watch::Receiver<u64>,
    /// For changes that bypass the writer (refused reports shown on the dashboard).
    notify: watch::Sender<u64>,
    pub config: Config,
    limiter: discover::RateLimiter,
}

pub type AppState = Arc<Shared>;

impl Shared {
    pub fn hostname_by_mac(&self, mac: &str) -> Option<&str> {
        self.node_by_mac(mac).map(|n| n.hostname.as_str())
    }

    pub fn node_by_mac(&self, mac: &str) -> Option<&Node> {
        self.by_mac.get(mac).map(|&i| &self.inventory.nodes[i])
    }

    /// The inventory node named `hostname` (an index lookup, not a scan).
    pub fn node(&self, hostname: &str) -> Option<&Node> {
        self.by_host
            .get(hostname)
            .map(|&i| &self.inventory.nodes[i])
    }

    /// Remember a report for a node outside the inventory and tell the dashboard.
    pub fn record_rejected(&self, node_id: &str, peer: Option<String>) {
        let version = {
            let mut f = self.fleet.write().unwrap_or_else(|e| e.into_inner());
            f.record_rejected(node_id, peer, store::now_ms());
            f.version
        };
        self.notify.send_replace(version);
    }
}

/// Open the database (creating and migrating it) and rebuild the fleet state from it. Must be
/// called inside a tokio runtime (it starts the writer).
pub fn open(inventory: Inventory, db: &Path, config: Config) -> Result<AppState, CollectorError> {
    let fleet = Arc::new(RwLock::new(Fleet::new(&inventory)));
    let (tx, rx) = watch::channel(0);
    let store = store::open(db, fleet.clone(), tx.clone())?;
    let by_mac = inventory
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.mac.as_str().to_string(), i))
        .collect();
    let by_host = inventory
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.hostname.clone(), i))
        .collect();
    Ok(Arc::new(Shared {
        inventory: Arc::new(inventory),
        by_mac,
        by_host,
        fleet,
        store,
        metrics: Metrics::default(),
        changed: rx,
        notify: tx,
        limiter: discover::RateLimiter::new(config.discover_burst, config.discover_refill),
        config,
    }))
}

/// TLS material of the API listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA that client certificates must chain to.
    pub client_ca: PathBuf,
}

/// What `plasmagen collector` runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub listen: String,
    pub boot_listen: Option<String>,
    pub db: PathBuf,
    /// `None`: the plain-HTTP lab mode (no authentication).
    pub tls: Option<TlsFiles>,
    pub config: Config,
}

/// Serve until SIGINT/SIGTERM. Prints one `listening` line per listener on stdout (tests and
/// scripts read the bound port from it when asked to listen on port 0).
pub async fn run(inventory: Inventory, opts: RunOptions) -> Result<(), CollectorError> {
    let state = open(inventory, &opts.db, opts.config.clone())?;
    let tls = match &opts.tls {
        Some(files) => Some(server::tls_config(files)?),
        None => None,
    };
    let api = server::bind(&opts.listen).await?;
    let api_addr = api.local_addr().map_err(|source| CollectorError::Listen {
        addr: opts.listen.clone(),
        source,
    })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("collector: api listening on {scheme}://{api_addr}");
    let mut tasks = tokio::task::JoinSet::new();
    match tls {
        Some(cfg) => {
            tasks.spawn(server::serve_tls(api, app(state.clone()), cfg));
        }
        None => {
            tracing::warn!(
                "plain-HTTP lab mode: reports and operator actions are NOT authenticated"
            );
            tasks.spawn(server::serve_plain(api, app(state.clone()), true));
        }
    }
    if let Some(addr) = &opts.boot_listen {
        let boot = server::bind(addr).await?;
        let boot_addr = boot.local_addr().map_err(|source| CollectorError::Listen {
            addr: addr.clone(),
            source,
        })?;
        println!("collector: boot listening on http://{boot_addr}");
        tasks.spawn(server::serve_plain(boot, boot_app(state.clone()), false));
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CollectorError::Config(format!("cannot install the SIGTERM handler: {e}")))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        Some(res) = tasks.join_next() => {
            if let Ok(Err(e)) = res {
                return Err(e);
            }
        }
    }
    // Everything acknowledged is already committed; nothing to flush.
    tracing::info!("collector stopping");
    Ok(())
}
