//! The collector: the HTTPS service nodes report their progress to, with a live dashboard,
//! and the plain-HTTP boot listener that keeps installed machines out of the install loop.
//!
//! - [`app`]: the API router (`/v1/reports`, `/v1/discover`, `/v1/nodes`, operator actions,
//!   enlisting a discovered machine, `/health`, `/metrics`, `/` dashboard, `/v1/events`).
//! - [`boot_app`]: `GET /boot/<mac>.ipxe` (netboot, local boot or discovery).
//! - [`server`]: TLS (mTLS-optional) and plain listeners that tag each request with its
//!   [`auth::Peer`]; [`run`] wires everything for `plasmagen collector`.
//! - [`store`]: SQLite with group commits; [`fleet`]: the in-memory view of what is committed;
//!   [`catalog`]: the inventory served, swapped whole when an enlist edits the file.
//!
//! Contract and operations: docs/collector.md.

mod actions;
mod api;
pub mod auth;
mod boot;
pub mod catalog;
pub mod client;
mod discover;
pub mod discovered;
pub mod discovered_api;
mod enlist;
pub mod error;
mod extract;
pub mod fleet;
pub mod metrics;
pub mod server;
pub mod store;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use plasma_inventory::inventory::Inventory;
use tokio::sync::{Mutex, watch};

pub use api::{MAX_BODY, app};
pub use boot::boot_app;
pub use error::{ApiError, CollectorError};

use catalog::Catalog;
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
    /// Discovery reports from all sources together (inventory MACs aside): burst size.
    pub discover_global_burst: u32,
    /// Discovery reports from all sources together: one more token every this long.
    pub discover_global_refill: Duration,
    /// Discovered table and history retention.
    pub store: store::Limits,
    /// History entries returned by `GET /v1/nodes/{id}` by default.
    pub history_limit: u32,
    /// `/v1/events` subscribers at once (the next gets 503); clones of this Config share them.
    pub event_streams: server::StreamSlots,
    /// An event stream sends a keep-alive comment this often: a dead subscriber is noticed
    /// when a write fails, and the idle watchdog sees the stream in use.
    pub event_keepalive: Duration,
    /// Fleet reads (dashboard data, `/v1/nodes`, events) without a viewer or operator
    /// certificate: the behaviour before issue 14, for labs.
    pub public_dashboard: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            stuck_after: Duration::from_secs(600),
            discover_burst: 10,
            discover_refill: Duration::from_secs(6),
            discover_global_burst: 200,
            discover_global_refill: Duration::from_millis(20),
            store: store::Limits::default(),
            history_limit: 500,
            event_streams: server::StreamSlots::default(),
            event_keepalive: Duration::from_secs(15),
            public_dashboard: false,
        }
    }
}

/// Everything the handlers share.
pub struct Shared {
    /// Replaced whole after an enlist; take a snapshot with [`Shared::catalog`].
    catalog: RwLock<Arc<Catalog>>,
    /// The `--inventory` file (the inventory's `source`): what an enlist edits.
    inventory_file: PathBuf,
    /// One enlist at a time: read, edit, write and reload must not interleave.
    enlisting: Mutex<()>,
    pub fleet: Arc<RwLock<Fleet>>,
    pub store: Store,
    pub metrics: Metrics,
    pub changed: watch::Receiver<u64>,
    /// For changes that bypass the writer (refused reports, a reloaded inventory).
    notify: watch::Sender<u64>,
    pub config: Config,
    limiter: discover::RateLimiter,
    /// All sources together: what one address cannot send, many cannot either.
    global_limiter: discover::RateLimiter,
}

pub type AppState = Arc<Shared>;

impl Shared {
    /// The inventory served right now, with its indexes.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The inventory file an enlist edits.
    pub fn inventory_file(&self) -> &Path {
        &self.inventory_file
    }

    /// Serve `inventory` from now on: new nodes get a (pending) fleet row, machines it now
    /// holds leave the discovered list, and the dashboard hears of it.
    pub fn replace_inventory(&self, inventory: Inventory) {
        let catalog = Arc::new(Catalog::new(inventory));
        let version = {
            let mut f = self.fleet.write().unwrap_or_else(|e| e.into_inner());
            f.add_nodes(&catalog.inventory);
            *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = catalog;
            f.version += 1;
            f.version
        };
        self.notify.send_replace(version);
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
/// called inside a tokio runtime (it starts the writer). Enlisting edits `inventory.source`.
pub fn open(inventory: Inventory, db: &Path, config: Config) -> Result<AppState, CollectorError> {
    let fleet = Arc::new(RwLock::new(Fleet::new(&inventory)));
    let (tx, rx) = watch::channel(0);
    let store = store::open(db, fleet.clone(), tx.clone(), config.store)?;
    Ok(Arc::new(Shared {
        inventory_file: inventory.source.clone(),
        catalog: RwLock::new(Arc::new(Catalog::new(inventory))),
        enlisting: Mutex::new(()),
        fleet,
        store,
        metrics: Metrics::default(),
        changed: rx,
        notify: tx,
        limiter: discover::RateLimiter::new(config.discover_burst, config.discover_refill),
        global_limiter: discover::RateLimiter::new(
            config.discover_global_burst,
            config.discover_global_refill,
        ),
        config,
    }))
}

/// SIGHUP: read the `--inventory` file again (after `generate` or an edit by hand, as
/// `plasmagen lab reload` and a PXE server deploy do). An invalid file never replaces the
/// inventory being served: the problems are logged and the old one stays.
fn reload_inventory(state: &Shared) {
    let path = state.inventory_file().to_path_buf();
    match plasma_inventory::inventory::load(&path) {
        Ok(loaded) => {
            let nodes = loaded.inventory.nodes.len();
            state.replace_inventory(loaded.inventory);
            tracing::info!(file = %path.display(), nodes, "inventory reloaded (SIGHUP)");
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "SIGHUP: inventory not reloaded, keeping the one served");
        }
    }
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
    /// Connection caps and timeouts of both listeners.
    pub limits: server::Limits,
}

/// Raise the soft open-files limit to the hard one and scale the connection caps down when
/// they would not fit in it (with room for the database and the rest).
fn fit_open_files(opts: &RunOptions) -> server::Limits {
    let soft = match server::limits::raise_open_files() {
        Ok(n) => {
            let show =
                |v: Option<u64>| v.map_or_else(|| "unlimited".to_string(), |v| v.to_string());
            println!(
                "collector: open files limit {} (soft was {}, hard {})",
                show(n.soft),
                show(n.before),
                show(n.hard)
            );
            n.soft
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
            rustix::process::getrlimit(rustix::process::Resource::Nofile).current
        }
    };
    let (limits, scaled) = opts.limits.fit(soft, opts.boot_listen.is_some());
    if scaled {
        tracing::warn!(
            open_files = soft,
            api = limits.max_connections,
            boot = limits.max_boot_connections,
            "connection caps lowered to fit the open-files limit"
        );
    }
    println!(
        "collector: connection caps api {}, boot {}",
        limits.max_connections, limits.max_boot_connections
    );
    limits
}

/// Serve until SIGINT/SIGTERM. Prints one `listening` line per listener on stdout (tests and
/// scripts read the bound port from it when asked to listen on port 0), after a line with the
/// open-files limit and the connection caps that fit in it.
pub async fn run(inventory: Inventory, opts: RunOptions) -> Result<(), CollectorError> {
    let limits = fit_open_files(&opts);
    let mut config = opts.config.clone();
    // A stream must show use more often than the idle watchdog looks.
    config.event_keepalive = config.event_keepalive.min(limits.idle_timeout / 2);
    let state = open(inventory, &opts.db, config)?;
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
            tasks.spawn(server::serve_tls_with(
                api,
                app(state.clone()),
                cfg,
                limits.api(),
            ));
        }
        None => {
            tracing::warn!(
                "plain-HTTP lab mode: reports and operator actions are NOT authenticated"
            );
            tasks.spawn(server::serve_plain_with(
                api,
                app(state.clone()),
                true,
                limits.api(),
            ));
        }
    }
    if let Some(addr) = &opts.boot_listen {
        let boot = server::bind(addr).await?;
        let boot_addr = boot.local_addr().map_err(|source| CollectorError::Listen {
            addr: addr.clone(),
            source,
        })?;
        println!("collector: boot listening on http://{boot_addr}");
        tasks.spawn(server::serve_plain_with(
            boot,
            boot_app(state.clone()),
            false,
            limits.boot(),
        ));
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| CollectorError::Config(format!("cannot install the SIGTERM handler: {e}")))?;
    let mut hangup = signal(SignalKind::hangup())
        .map_err(|e| CollectorError::Config(format!("cannot install the SIGHUP handler: {e}")))?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hangup.recv() => reload_inventory(&state),
            Some(res) = tasks.join_next() => {
                if let Ok(Err(e)) = res {
                    return Err(e);
                }
                break;
            }
        }
    }
    // Everything acknowledged is already committed; nothing to flush.
    tracing::info!("collector stopping");
    Ok(())
}
