//! Admin-API simulator at fleet scale (docs/admin-api.md, "Membership changes"): one Raft
//! cluster of a few founding members that hundreds or thousands of nodes join at once.
//!
//! What it keeps faithful, because it is what a herd of joining agents runs into:
//! - Only the leader applies membership changes, strictly one at a time, each taking
//!   [`FleetSimOptions::change_time`]; a write while one is in flight is answered
//!   `503 {"error":"reconfiguration in progress","leader":…}` with `Retry-After` (etcd refuses a
//!   second change the same way, `ErrUnhealthy`/"too many learner members" aside).
//! - A new member is a `joining` learner until it has caught up
//!   ([`FleetSimOptions::catch_up`]), then the leader promotes it with a change of its own:
//!   promotions and adds share the one slot, promotions first.
//! - Followers answer writes `503` with the leader hint; during an injected election nobody
//!   leads and writes get `503` without a hint.
//! - An add whose response is lost (every Nth, or the one in flight when an election starts)
//!   is still applied: the retry gets `409`.
//!
//! Plain HTTP on 127.0.0.1 (the agent accepts `http://` join URLs for labs): thousands of TLS
//! handshakes would measure the fixture, not the agent's backoff. Every request that reaches the
//! node leading at that moment is counted per second ([`FleetSim::leader_rps`]).

mod http;
mod state;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plasma_wire::admin::Members;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::net::{ConnFaults, FaultyListener};
use state::{Cluster, Shared};

#[derive(Debug, Clone)]
pub struct FleetSimOptions {
    /// Founding members (voters from the start); node 0 leads first.
    pub founders: usize,
    /// How long the leader takes to apply one membership change.
    pub change_time: Duration,
    /// How long a new learner takes to catch up before it can be promoted.
    pub catch_up: Duration,
    /// `Retry-After` (seconds) on "reconfiguration in progress"; `None`: no header.
    pub retry_after_secs: Option<u64>,
    /// Every Nth applied add loses its response (the connection is reset); 0: none.
    pub lose_every: u32,
}

impl Default for FleetSimOptions {
    fn default() -> Self {
        FleetSimOptions {
            founders: 3,
            change_time: Duration::from_millis(200),
            catch_up: Duration::from_secs(1),
            retry_after_secs: Some(1),
            lose_every: 0,
        }
    }
}

/// What the simulator saw, for assertions and the bench line.
#[derive(Debug, Clone, Default)]
pub struct FleetStats {
    /// Requests that reached the leader of the moment, per second since the start.
    pub leader_per_sec: Vec<u64>,
    /// Requests per founding member (any path).
    pub per_node: Vec<u64>,
    /// `POST /admin/member/add` answers, by outcome.
    pub adds_applied: u64,
    pub adds_busy: u64,
    pub adds_conflict: u64,
    pub adds_not_leader: u64,
    pub adds_no_leader: u64,
    pub responses_lost: u64,
    pub promotions: u64,
    pub elections: u64,
    /// Ids whose add was applied more than once (must stay empty).
    pub added_twice: Vec<String>,
}

impl FleetStats {
    pub fn leader_rps_mean(&self) -> f64 {
        let secs = self.leader_per_sec.len().max(1) as f64;
        self.leader_per_sec.iter().sum::<u64>() as f64 / secs
    }
    pub fn leader_rps_peak(&self) -> u64 {
        self.leader_per_sec.iter().copied().max().unwrap_or(0)
    }
}

pub struct FleetSim {
    shared: Arc<Shared>,
    urls: Vec<String>,
    local: String,
    tasks: Vec<JoinHandle<()>>,
}

impl FleetSim {
    pub async fn start(opts: FleetSimOptions) -> FleetSim {
        assert!(opts.founders >= 1, "a cluster needs a founding member");
        let mut listeners = Vec::new();
        for _ in 0..opts.founders {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
        }
        let local = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let urls: Vec<String> = listeners
            .iter()
            .map(|l| format!("http://{}", l.local_addr().unwrap()))
            .collect();
        let local_url = format!("http://{}", local.local_addr().unwrap());
        let shared = Arc::new(Shared {
            cluster: Mutex::new(Cluster::new(&opts, &urls)),
            wake: Notify::new(),
            opts,
            start: Instant::now(),
        });
        let mut tasks = vec![tokio::spawn(state::drive(shared.clone()))];
        for (idx, tcp) in listeners.into_iter().enumerate() {
            tasks.push(serve(tcp, http::founder(shared.clone(), idx)));
        }
        tasks.push(serve(local, http::local()));
        FleetSim {
            shared,
            urls,
            local: local_url,
            tasks,
        }
    }

    /// Admin-API root of founding member `i`.
    pub fn url(&self, i: usize) -> &str {
        &self.urls[i]
    }
    pub fn urls(&self) -> &[String] {
        &self.urls
    }
    /// The local service of joining node `id` (always healthy): `http://…/<id>`.
    pub fn local_url(&self, id: &str) -> String {
        format!("{}/{id}", self.local)
    }
    /// Founding member `i`'s id and Raft address.
    pub fn founder_id(i: usize) -> String {
        format!("founder{}", i + 1)
    }
    pub fn members(&self) -> Members {
        self.shared.lock().view()
    }
    pub fn leader(&self) -> Option<usize> {
        self.shared.lock().leader
    }

    /// An election: nobody leads for `pause`, then founding member `next` does. The change in
    /// flight, if any, is committed and its response lost.
    pub fn elect(&self, next: usize, pause: Duration) {
        assert!(next < self.urls.len());
        self.shared
            .lock()
            .start_election(next, Instant::now() + pause);
        self.shared.wake.notify_one();
    }

    pub fn stats(&self) -> FleetStats {
        let now = Instant::now();
        self.shared.lock().stats(self.shared.start, now)
    }
}

impl Drop for FleetSim {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn serve(tcp: TcpListener, app: axum::Router) -> JoinHandle<()> {
    let faults = Arc::new(Mutex::new(ConnFaults::default()));
    let listener = FaultyListener::new(tcp, None, faults, Arc::new(AtomicBool::new(false)));
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<crate::net::ConnMeta>(),
        )
        .await;
    })
}
