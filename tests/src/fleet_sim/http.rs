//! The founding members' admin API and the joining nodes' local services.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use plasma_wire::admin::{AddMember, LeaderHint, Member};
use serde_json::json;

use super::state::{Applied, Shared};
use crate::net::ConnMeta;

#[derive(Clone)]
struct Node {
    shared: Arc<Shared>,
    idx: usize,
}

impl Node {
    /// Counts the request; returns who leads now (`None` while electing).
    fn hit(&self) -> Option<usize> {
        let secs = self.shared.start.elapsed().as_secs() as usize;
        let mut c = self.shared.lock();
        c.hit(self.idx, secs);
        c.leader
    }
}

pub(super) fn founder(shared: Arc<Shared>, idx: usize) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/admin/cluster/members", get(members))
        .route("/admin/cluster/leader", get(leader))
        .route("/admin/member/add", post(add))
        .with_state(Node { shared, idx })
}

/// Every joining node's local service, healthy from the start: `/<id>/health`.
pub(super) fn local() -> Router {
    Router::new().route(
        "/{id}/health",
        get(|| async { Json(json!({"status": "healthy"})) }),
    )
}

async fn health(State(n): State<Node>) -> Response {
    let leader = n.hit();
    let role = if leader == Some(n.idx) {
        "leader"
    } else {
        "follower"
    };
    Json(json!({"status": "healthy", "raft": role})).into_response()
}

async fn members(State(n): State<Node>) -> Response {
    n.hit();
    let body = n.shared.lock().view_json();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn leader(State(n): State<Node>) -> Response {
    let Some(l) = n.hit() else {
        return no_leader();
    };
    let url = n.shared.lock().urls[l].clone();
    Json(json!({"id": super::FleetSim::founder_id(l), "leader": url})).into_response()
}

fn no_leader() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "no leader: election in progress"})),
    )
        .into_response()
}

async fn add(
    State(n): State<Node>,
    ConnectInfo(conn): ConnectInfo<ConnMeta>,
    body: Option<Json<AddMember>>,
) -> Response {
    let leader = n.hit();
    let Some(Json(req)) = body else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "body must be {\"id\",\"raft_addr\"}"})),
        )
            .into_response();
    };
    let opts = &n.shared.opts;
    let waiting = {
        let mut c = n.shared.lock();
        let Some(l) = leader.filter(|_| c.leader == leader) else {
            c.stats.adds_no_leader += 1;
            return no_leader();
        };
        if l != n.idx {
            c.stats.adds_not_leader += 1;
            let hint = LeaderHint {
                leader: c.urls[l].clone(),
            };
            return (StatusCode::SERVICE_UNAVAILABLE, Json(hint)).into_response();
        }
        if let Some(m) = c.member(&req.id) {
            let m = m.clone();
            c.stats.adds_conflict += 1;
            return conflict(m);
        }
        if c.busy() {
            c.stats.adds_busy += 1;
            let mut r = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "reconfiguration in progress", "leader": c.urls[l]})),
            )
                .into_response();
            if let Some(s) = opts.retry_after_secs {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(s));
            }
            return r;
        }
        let member = Member {
            id: req.id,
            raft_addr: req.raft_addr,
            status: "joining".into(),
            role: "learner".into(),
        };
        c.begin_add(member, opts.change_time)
    };
    n.shared.wake.notify_one();
    match waiting.await {
        Ok(Applied::Answered(m)) => (StatusCode::CREATED, Json(m)).into_response(),
        Ok(Applied::ResponseLost) | Err(_) => {
            conn.kill.store(true, Ordering::SeqCst);
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

fn conflict(m: Member) -> Response {
    (
        StatusCode::CONFLICT,
        Json(json!({"error": "already a member", "member": m})),
    )
        .into_response()
}
