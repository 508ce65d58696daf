//! Handlers of the API listener.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use plasma_inventory::inventory::{Node, Role};
use plasma_wire::Report;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::auth::Peer;
use super::catalog::Catalog;
use super::error::ApiError;
use super::extract::{PathParam, QueryParams};
use super::fleet::NodeState;
use super::store::{WriteOp, now_ms};
use super::view::{discovered_view, fleet_view, node_view};
use super::{AppState, Shared, actions, discover, discovered_api, enlist};

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Longest report message kept.
const MAX_MESSAGE: usize = 8 * 1024;
/// Services a report may name besides those of the roles.
const EXTRA_SERVICES: [&str; 1] = ["system"];
/// The dashboard's event stream sends at most one change notice per this interval.
const EVENT_THROTTLE: Duration = Duration::from_millis(250);

const DASHBOARD: &str = include_str!("../../templates/collector/dashboard.html");

/// The API router.
pub fn app(state: AppState) -> Router {
    // Reads that show the inventory (names, roles, MACs, addresses, messages, disk serials,
    // who acted): a viewer or operator certificate, unless --public-dashboard.
    let reads = Router::new()
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{id}", get(get_node))
        .route("/v1/discovered", get(discovered_api::list_discovered))
        .route("/v1/discovered/{mac}", get(discovered_api::get_discovered))
        .route("/v1/events", get(events))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_viewer,
        ));
    Router::new()
        .merge(reads)
        .route("/", get(dashboard))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/reports", post(post_report))
        .route("/v1/discover", post(discover::post_discover))
        .route("/v1/nodes/{id}/installed", post(actions::mark_installed))
        .route("/v1/nodes/{id}/reprovision", post(actions::reprovision))
        .route("/v1/nodes/{id}/provision", post(actions::provision_step))
        .route("/v1/discovered/{mac}/enlist", post(enlist::enlist))
        .route(
            "/v1/discovered/prune",
            post(discovered_api::prune_discovered),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The caller as tagged by the listener.
pub struct Caller(pub Peer);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller(
            parts.extensions.get::<Peer>().cloned().unwrap_or_default(),
        ))
    }
}

async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    // The event stream lives as long as the page; its "latency" means nothing.
    if route != "/v1/events" {
        s.metrics.observe(&route, start.elapsed());
    }
    resp
}

async fn require_viewer(
    State(s): State<AppState>,
    Caller(peer): Caller,
    req: Request,
    next: Next,
) -> Response {
    match peer.check_viewer(s.config.public_dashboard) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

async fn dashboard() -> impl IntoResponse {
    (
        [(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        )],
        Html(DASHBOARD),
    )
}

/// Answered from the store's cached state (kept by the writer and the start-up checks): never
/// waits for a commit, a long read or the store's locks.
async fn health(State(s): State<AppState>) -> Response {
    let store = s.store.status();
    let problem = if !s.store.writer_alive() {
        Some(super::error::StoreError::WriterGone.to_string())
    } else {
        s.store.missing_file().or_else(|| store.error.clone())
    };
    match problem {
        None => Json(json!({"status": "healthy", "store": store})).into_response(),
        Some(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy", "error": e, "store": store})),
        )
            .into_response(),
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let now = now_ms();
    let stuck = stuck_ms(&s);
    let mut gauges = Vec::new();
    {
        let catalog = s.catalog();
        let fleet = s.fleet.read().unwrap_or_else(|e| e.into_inner());
        let mut by_state: HashMap<NodeState, u64> = HashMap::new();
        let mut by_phase: std::collections::BTreeMap<(String, &'static str), u64> =
            Default::default();
        for node in &catalog.inventory.nodes {
            *by_state
                .entry(fleet.state_of(node, now, stuck))
                .or_default() += 1;
            if let Some(live) = fleet.nodes.get(&node.hostname) {
                for (svc, l) in &live.services {
                    *by_phase.entry((svc.clone(), l.phase.as_str())).or_default() += 1;
                }
            }
        }
        for st in NodeState::ALL {
            gauges.push((
                "plasma_collector_nodes",
                format!("state=\"{}\"", st.as_str()),
                by_state.get(&st).copied().unwrap_or(0),
            ));
        }
        for ((svc, phase), n) in by_phase {
            gauges.push((
                "plasma_collector_node_services",
                format!("service=\"{svc}\",phase=\"{phase}\""),
                n,
            ));
        }
        gauges.push((
            "plasma_collector_discovered_unknown_macs",
            String::new(),
            fleet
                .discovered
                .keys()
                .filter(|m| catalog.hostname_by_mac(m).is_none())
                .count() as u64,
        ));
        gauges.push((
            "plasma_collector_discovered_bytes",
            String::new(),
            fleet.discovered.bytes() as u64,
        ));
        // Since the collector started: a flood shows as a climbing count.
        gauges.push((
            "plasma_collector_discovered_evicted",
            String::new(),
            fleet.discovered.evicted(),
        ));
    }
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        s.metrics.render(&gauges),
    )
        .into_response()
}

pub(crate) fn stuck_ms(s: &Shared) -> i64 {
    i64::try_from(s.config.stuck_after.as_millis()).unwrap_or(i64::MAX)
}

/// Read a JSON body: `application/json`, at most [`MAX_BODY`] bytes, well-formed, and of the
/// right shape (unknown fields and values refused by the wire types).
pub(crate) async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type must be application/json, got {ct:?}"),
        ));
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body exceeds {MAX_BODY} bytes"),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        return Err(too_large());
    }
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("cannot read the body: {e}"),
            ));
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("the JSON does not match the expected document: {e}"),
            ),
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {e}"),
            ),
        }
    })
}

fn known_service(name: &str) -> bool {
    EXTRA_SERVICES.contains(&name) || Role::AllInOne.services().iter().any(|s| s.name() == name)
}

fn check_report(r: &Report) -> Result<(), ApiError> {
    let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_report", m);
    if !known_service(&r.service) {
        return Err(invalid(format!(
            "unknown service {:?} (expected a PlasmaCloud service such as chainfire or flaredb, or system)",
            r.service
        )));
    }
    if time::OffsetDateTime::parse(&r.at, &time::format_description::well_known::Rfc3339).is_err() {
        return Err(invalid(format!(
            "`at` {:?} is not an RFC 3339 timestamp",
            r.at
        )));
    }
    if r.message.len() > MAX_MESSAGE {
        return Err(invalid(format!(
            "the message is longer than {MAX_MESSAGE} bytes"
        )));
    }
    if let Some(id) = &r.installation
        && !Report::installation_ok(id)
    {
        return Err(invalid(format!(
            "`installation` must be {} lowercase hex digits",
            Report::INSTALLATION_LEN
        )));
    }
    Ok(())
}

async fn post_report(
    State(s): State<AppState>,
    Caller(peer): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let res = accept_report(&s, &peer, &headers, body).await;
    match &res {
        Ok(_) => s.metrics.accepted(),
        Err(e) => s.metrics.rejected(e.code),
    }
    res
}

async fn accept_report(
    s: &Shared,
    peer: &Peer,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    peer.check_any()?;
    let report: Report = read_json(headers, body).await?;
    check_report(&report)?;
    let catalog = s.catalog();
    let Some(node) = catalog.node(&report.node_id) else {
        s.record_rejected(&report.node_id, peer.addr.map(|a| a.ip().to_string()));
        return Err(ApiError::forbidden(
            "unknown_node",
            format!("node {:?} is not in the inventory", report.node_id),
        ));
    };
    peer.check_node(&node.hostname, &catalog.inventory.fqdn(node))?;
    s.store.write(WriteOp::Report(report)).await?;
    Ok((StatusCode::OK, Json(json!({"status": "stored"}))).into_response())
}

async fn list_nodes(State(s): State<AppState>) -> Response {
    let catalog = s.catalog();
    let fleet = s.fleet.read().unwrap_or_else(|e| e.into_inner());
    let view = fleet_view(&catalog.inventory, &fleet, now_ms(), stuck_ms(&s));
    drop(fleet);
    Json(view).into_response()
}

/// The inventory node `id` names, or 404.
pub(crate) fn inventory_node<'a>(c: &'a Catalog, id: &str) -> Result<&'a Node, ApiError> {
    c.node(id)
        .ok_or_else(|| ApiError::not_found(format!("node {id:?} is not in the inventory")))
}

/// The most history entries one `GET /v1/nodes/{id}` returns.
pub const MAX_HISTORY_PAGE: u32 = 1_000;

#[derive(serde::Deserialize)]
struct HistoryQuery {
    limit: Option<u32>,
    /// A cursor: only entries older than this one (`history_before` of the previous page).
    before: Option<i64>,
}

async fn get_node(
    State(s): State<AppState>,
    PathParam(id): PathParam<String>,
    QueryParams(q): QueryParams<HistoryQuery>,
) -> Result<Response, ApiError> {
    let catalog = s.catalog();
    let node = inventory_node(&catalog, &id)?;
    let mut view = {
        let fleet = s.fleet.read().unwrap_or_else(|e| e.into_inner());
        let mut v = node_view(&catalog.inventory, &fleet, node, now_ms(), stuck_ms(&s));
        v.discovered = fleet
            .discovered
            .get(node.mac.as_str())
            .map(|d| discovered_view(node.mac.as_str(), d));
        v
    };
    // A hard maximum per page: one read must not make the collector serialise a node's whole
    // history (a node certificate can write many reports).
    let limit = q
        .limit
        .unwrap_or(s.config.history_limit)
        .min(MAX_HISTORY_PAGE);
    let page = s.store.history(&node.hostname, limit, q.before).await?;
    view.history = Some(page.entries);
    view.history_before = page.older;
    Ok(Json(view).into_response())
}

/// Server-sent events: `changed` with the fleet version whenever something was committed. At
/// most `config.event_streams` at once (the next gets 503); each holds its slot until the
/// stream is dropped, which happens when its connection closes or a keep-alive write fails.
async fn events(State(s): State<AppState>) -> Response {
    let Some(slot) = s.config.event_streams.take() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!(
                "{} event streams are open already; the dashboard falls back to polling",
                s.config.event_streams.max()
            ),
        )
        .into_response();
    };
    Sse::new(change_events(s.changed.clone(), slot))
        .keep_alive(KeepAlive::new().interval(s.config.event_keepalive))
        .into_response()
}

/// One `changed` event now, then one per change (at most one per [`EVENT_THROTTLE`]); owns
/// the subscriber's slot.
fn change_events(
    rx: tokio::sync::watch::Receiver<u64>,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold((rx, true, slot), |(mut rx, first, slot)| async move {
        if !first {
            tokio::time::sleep(EVENT_THROTTLE).await;
            rx.changed().await.ok()?;
        }
        let v = *rx.borrow_and_update();
        Some((
            Ok(Event::default().event("changed").data(v.to_string())),
            (rx, false, slot),
        ))
    })
}
