//! Admin-API simulator (docs/admin-api.md): N nodes on 127.0.0.1 random ports, one leader,
//! followers that redirect or hint, membership with statuses, and fault injection.
//! A test fixture only: no shipped crate depends on it.
//!
//! Time is tokio time, so slow starts and promotions follow the paused clock in tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use plasma_wire::admin::{AddMember, LeaderHint, Member, Members};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::net::{ConnFaults, ConnMeta, FaultyListener, SharedFaults};
use crate::pki::TestPki;

/// How a follower answers a write (`POST /admin/member/add`, `DELETE /admin/member/<id>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerMode {
    Redirect307,
    Redirect308,
    Hint503,
    Hint421,
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Nodes that run an admin API.
    pub nodes: usize,
    /// The first `voters` nodes are the founding members; the others are not members yet
    /// (they stand for the local service of a joining machine).
    pub voters: usize,
    pub tls: bool,
    pub follower_mode: FollowerMode,
    /// A node added through the API is `joining`/`learner` for this long, then `healthy`.
    pub promote_after: Duration,
    /// Until then each node sees only itself as a `candidate`, with no leader
    /// (the founding members are still electing).
    pub form_after: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            nodes: 4,
            voters: 3,
            tls: true,
            follower_mode: FollowerMode::Redirect307,
            promote_after: Duration::from_millis(300),
            form_after: Duration::ZERO,
        }
    }
}

/// Request-level faults of one node.
#[derive(Debug, Default, Clone)]
pub struct NodeFaults {
    /// `/health` answers 503 `{"status":"starting"}` until then.
    pub unhealthy_until: Option<Instant>,
    pub never_healthy: bool,
    /// The next N admin requests answer 503 without a leader hint.
    pub fail_next: u32,
    /// The next N successful adds are applied but the response is lost (connection reset).
    pub lose_add_response: u32,
    /// On the next add, leadership moves to this node before the request is handled.
    pub step_down_on_add: Option<usize>,
}

/// One request the simulator answered, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub node: usize,
    pub method: String,
    pub path: String,
    pub status: u16,
}

struct SimMember {
    member: Member,
    /// Added through the API: healthy from then on.
    healthy_at: Instant,
}

struct ClusterState {
    ids: Vec<String>,
    urls: Vec<String>,
    raft_addrs: Vec<String>,
    members: Vec<SimMember>,
    leader: usize,
    form_at: Instant,
    opts: SimOptions,
    faults: Vec<NodeFaults>,
    hits: Vec<Hit>,
}

impl ClusterState {
    fn view(&self, node: usize) -> Members {
        let now = Instant::now();
        if now < self.form_at {
            let me = &self.members.iter().find(|m| m.member.id == self.ids[node]);
            let members = me
                .map(|m| Member {
                    role: "candidate".into(),
                    ..m.member.clone()
                })
                .into_iter()
                .collect();
            return Members { members };
        }
        let members = self
            .members
            .iter()
            .map(|m| {
                let mut x = m.member.clone();
                if now < m.healthy_at {
                    x.status = "joining".into();
                    x.role = "learner".into();
                } else {
                    x.status = "healthy".into();
                    x.role = if self.ids.get(self.leader) == Some(&x.id) {
                        "leader"
                    } else {
                        "follower"
                    }
                    .into();
                }
                x
            })
            .collect();
        Members { members }
    }

    fn hit(&mut self, node: usize, method: &str, path: &str, status: StatusCode) {
        self.hits.push(Hit {
            node,
            method: method.into(),
            path: path.into(),
            status: status.as_u16(),
        });
    }
}

struct Shared {
    state: Mutex<ClusterState>,
}

#[derive(Clone)]
struct NodeCtx {
    idx: usize,
    shared: Arc<Shared>,
}

impl NodeCtx {
    fn lock(&self) -> MutexGuard<'_, ClusterState> {
        self.shared.state.lock().unwrap()
    }
}

struct NodeHandle {
    addr: SocketAddr,
    conn: SharedFaults,
    dead: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

pub struct Sim {
    shared: Arc<Shared>,
    nodes: Vec<NodeHandle>,
    pub pki: Option<TestPki>,
}

impl Sim {
    pub async fn start(opts: SimOptions) -> Sim {
        let pki = opts.tls.then(|| TestPki::new("sim-cluster"));
        let server_cfg = pki.as_ref().map(TestPki::server_config);
        let scheme = if opts.tls { "https" } else { "http" };
        let mut listeners = Vec::new();
        for _ in 0..opts.nodes {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
        }
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let ids: Vec<String> = (0..opts.nodes)
            .map(|i| format!("node{:02}", i + 1))
            .collect();
        let raft_addrs: Vec<String> = (0..opts.nodes)
            .map(|i| format!("10.0.200.{}:2380", 10 + i))
            .collect();
        let now = Instant::now();
        let members = (0..opts.voters)
            .map(|i| SimMember {
                member: Member {
                    id: ids[i].clone(),
                    raft_addr: raft_addrs[i].clone(),
                    status: "healthy".into(),
                    role: "follower".into(),
                },
                healthy_at: now,
            })
            .collect();
        let state = ClusterState {
            urls: addrs.iter().map(|a| format!("{scheme}://{a}")).collect(),
            ids,
            raft_addrs,
            members,
            leader: 0,
            form_at: now + opts.form_after,
            faults: vec![NodeFaults::default(); opts.nodes],
            hits: Vec::new(),
            opts,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
        });
        let mut nodes = Vec::new();
        for (idx, tcp) in listeners.into_iter().enumerate() {
            let conn: SharedFaults = Arc::new(Mutex::new(ConnFaults::default()));
            let dead = Arc::new(AtomicBool::new(false));
            let listener = FaultyListener::new(tcp, server_cfg.clone(), conn.clone(), dead.clone());
            let app = router(NodeCtx {
                idx,
                shared: shared.clone(),
            });
            let task = tokio::spawn(async move {
                let _ = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<ConnMeta>(),
                )
                .await;
            });
            nodes.push(NodeHandle {
                addr: addrs[idx],
                conn,
                dead,
                task,
            });
        }
        Sim { shared, nodes, pki }
    }

    fn lock(&self) -> MutexGuard<'_, ClusterState> {
        self.shared.state.lock().unwrap()
    }

    /// Admin-API root of node `i` (`https://127.0.0.1:<port>`).
    pub fn url(&self, i: usize) -> String {
        self.lock().urls[i].clone()
    }
    pub fn id(&self, i: usize) -> String {
        self.lock().ids[i].clone()
    }
    pub fn raft_addr(&self, i: usize) -> String {
        self.lock().raft_addrs[i].clone()
    }
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr
    }
    pub fn leader(&self) -> usize {
        self.lock().leader
    }
    pub fn set_leader(&self, i: usize) {
        self.lock().leader = i;
    }
    pub fn members(&self) -> Members {
        let st = self.lock();
        st.view(st.leader)
    }
    pub fn hits(&self) -> Vec<Hit> {
        self.lock().hits.clone()
    }
    /// Hits of `POST /admin/member/add`, in order.
    pub fn adds(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.path == "/admin/member/add")
            .collect()
    }
    pub fn faults(&self, i: usize, f: impl FnOnce(&mut NodeFaults)) {
        f(&mut self.lock().faults[i]);
    }
    pub fn conn_faults(&self, i: usize, f: impl FnOnce(&mut ConnFaults)) {
        f(&mut self.nodes[i].conn.lock().unwrap());
    }
    pub fn tls_failures(&self, i: usize) -> Vec<String> {
        self.nodes[i].conn.lock().unwrap().tls_failures.clone()
    }
    /// Stops node `i`: its port refuses connections and open connections fail.
    /// Leadership moves to the next live node if `i` led.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].dead.store(true, Ordering::SeqCst);
        self.nodes[i].task.abort();
        let mut st = self.lock();
        if st.leader == i {
            let n = st.opts.voters;
            st.leader = (1..n)
                .map(|k| (i + k) % n)
                .find(|&k| !self.nodes[k].dead.load(Ordering::SeqCst))
                .unwrap_or(i);
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        for n in &self.nodes {
            n.task.abort();
        }
    }
}

fn router(ctx: NodeCtx) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/admin/cluster/members", get(members))
        .route("/admin/cluster/leader", get(leader))
        .route("/admin/member/add", post(add))
        .route("/admin/member/{id}", delete(remove))
        .with_state(ctx)
}

async fn health(State(n): State<NodeCtx>) -> Response {
    let mut st = n.lock();
    let f = &st.faults[n.idx];
    let starting = f.never_healthy || f.unhealthy_until.is_some_and(|t| Instant::now() < t);
    let (code, body) = if starting {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "starting"}),
        )
    } else {
        let role = if st.leader == n.idx {
            "leader"
        } else {
            "follower"
        };
        (
            StatusCode::OK,
            json!({"status": "healthy", "raft": role, "cluster_size": st.members.len()}),
        )
    };
    st.hit(n.idx, "GET", "/health", code);
    (code, Json(body)).into_response()
}

/// Consumes one injected 503 if any.
fn injected_503(st: &mut ClusterState, n: usize, method: &str, path: &str) -> Option<Response> {
    if st.faults[n].fail_next == 0 {
        return None;
    }
    st.faults[n].fail_next -= 1;
    st.hit(n, method, path, StatusCode::SERVICE_UNAVAILABLE);
    Some(
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "temporarily unavailable"})),
        )
            .into_response(),
    )
}

async fn members(State(n): State<NodeCtx>) -> Response {
    let mut st = n.lock();
    let path = "/admin/cluster/members";
    if let Some(r) = injected_503(&mut st, n.idx, "GET", path) {
        return r;
    }
    st.hit(n.idx, "GET", path, StatusCode::OK);
    Json(st.view(n.idx)).into_response()
}

async fn leader(State(n): State<NodeCtx>) -> Response {
    let mut st = n.lock();
    st.hit(n.idx, "GET", "/admin/cluster/leader", StatusCode::OK);
    let l = st.leader;
    Json(json!({"id": st.ids[l], "leader": st.urls[l]})).into_response()
}

/// A follower's answer to a write, per `FollowerMode`.
fn not_leader(st: &mut ClusterState, n: usize, method: &str, path: &str) -> Response {
    let leader_url = st.urls[st.leader].clone();
    let hint = Json(LeaderHint {
        leader: leader_url.clone(),
    });
    let resp = match st.opts.follower_mode {
        FollowerMode::Redirect307 | FollowerMode::Redirect308 => {
            let code = if st.opts.follower_mode == FollowerMode::Redirect307 {
                StatusCode::TEMPORARY_REDIRECT
            } else {
                StatusCode::PERMANENT_REDIRECT
            };
            let mut h = HeaderMap::new();
            h.insert(
                header::LOCATION,
                HeaderValue::from_str(&format!("{leader_url}{path}")).unwrap(),
            );
            (code, h, hint).into_response()
        }
        FollowerMode::Hint503 => (StatusCode::SERVICE_UNAVAILABLE, hint).into_response(),
        FollowerMode::Hint421 => (StatusCode::MISDIRECTED_REQUEST, hint).into_response(),
    };
    st.hit(n, method, path, resp.status());
    resp
}

async fn add(
    State(n): State<NodeCtx>,
    ConnectInfo(conn): ConnectInfo<ConnMeta>,
    body: Option<Json<AddMember>>,
) -> Response {
    let path = "/admin/member/add";
    let mut st = n.lock();
    if let Some(r) = injected_503(&mut st, n.idx, "POST", path) {
        return r;
    }
    let Some(Json(req)) = body else {
        st.hit(n.idx, "POST", path, StatusCode::BAD_REQUEST);
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "body must be {\"id\",\"raft_addr\"}"})),
        )
            .into_response();
    };
    if st.leader == n.idx
        && let Some(new) = st.faults[n.idx].step_down_on_add.take()
    {
        st.leader = new;
    }
    if st.leader != n.idx {
        return not_leader(&mut st, n.idx, "POST", path);
    }
    let view = st.view(n.idx);
    if let Some(existing) = view.members.into_iter().find(|m| m.id == req.id) {
        st.hit(n.idx, "POST", path, StatusCode::CONFLICT);
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": "already a member", "member": existing})),
        )
            .into_response();
    }
    let healthy_at = Instant::now() + st.opts.promote_after;
    let member = Member {
        id: req.id,
        raft_addr: req.raft_addr,
        status: "joining".into(),
        role: "learner".into(),
    };
    st.members.push(SimMember {
        member: member.clone(),
        healthy_at,
    });
    st.hit(n.idx, "POST", path, StatusCode::CREATED);
    if st.faults[n.idx].lose_add_response > 0 {
        st.faults[n.idx].lose_add_response -= 1;
        // Applied, but the connection dies before the answer is written.
        conn.kill.store(true, Ordering::SeqCst);
    }
    (StatusCode::CREATED, Json(member)).into_response()
}

async fn remove(State(n): State<NodeCtx>, Path(id): Path<String>) -> Response {
    let path = format!("/admin/member/{id}");
    let mut st = n.lock();
    if let Some(r) = injected_503(&mut st, n.idx, "DELETE", &path) {
        return r;
    }
    if st.leader != n.idx {
        return not_leader(&mut st, n.idx, "DELETE", &path);
    }
    let before = st.members.len();
    st.members.retain(|m| m.member.id != id);
    let code = if st.members.len() < before {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    st.hit(n.idx, "DELETE", &path, code);
    (
        code,
        Json(json!({"removed": code == StatusCode::OK, "id": id})),
    )
        .into_response()
}
