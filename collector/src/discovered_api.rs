//! Reads and the prune action on discovered machines:
//! - `GET /v1/discovered?after=MAC&limit=N`: every unknown machine as a summary, in MAC order,
//!   at most [`MAX_PAGE`] per page (viewer or operator certificate);
//! - `GET /v1/discovered/{mac}`: one machine with the facts its last report held;
//! - `POST /v1/discovered/prune` (operator certificate): forget unknown machines, all of them
//!   or the MACs listed; an inventory node's MAC is never pruned.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use plasma_inventory::inventory::Mac;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::api::{Caller, read_json};
use super::auth::check_same_origin;
use super::error::ApiError;
use super::extract::{PathParam, QueryParams};
use super::store::WriteOp;
use super::view::{DiscoveredSummary, discovered_summary, discovered_view};
use super::{AppState, Shared};

/// Summaries per page of `GET /v1/discovered`, at most (and by default).
pub const MAX_PAGE: u32 = 1_000;

fn parse_mac(mac: &str) -> Result<String, ApiError> {
    Mac::parse_any_separator(mac)
        .map(|m| m.as_str().to_string())
        .map_err(|_| ApiError::not_found(format!("{mac:?} is not a MAC address")))
}

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    after: Option<String>,
    limit: Option<u32>,
}

/// One page of unknown machines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredPage {
    pub machines: Vec<DiscoveredSummary>,
    /// More follow: pass this as `after=` for the next page.
    pub next_after: Option<String>,
}

pub(crate) async fn list_discovered(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let after = q
        .after
        .as_deref()
        .map(|a| {
            Mac::parse_any_separator(a)
                .map(|m| m.as_str().to_string())
                .map_err(|e| {
                    ApiError::new(StatusCode::BAD_REQUEST, "bad_query", format!("after: {e}"))
                })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE) as usize;
    let catalog = s.catalog();
    let fleet = s.fleet.read().unwrap_or_else(|e| e.into_inner());
    let mut machines: Vec<DiscoveredSummary> = fleet
        .discovered
        .iter()
        .filter(|(mac, _)| after.as_ref().is_none_or(|a| mac.as_str() > a.as_str()))
        .filter(|(mac, _)| catalog.hostname_by_mac(mac).is_none())
        .take(limit + 1)
        .map(|(mac, d)| discovered_summary(mac, d))
        .collect();
    drop(fleet);
    let next_after = if machines.len() > limit {
        machines.truncate(limit);
        machines.last().map(|m| m.mac.clone())
    } else {
        None
    };
    Ok(Json(DiscoveredPage {
        machines,
        next_after,
    })
    .into_response())
}

/// One discovered machine with the facts its last report held (the fleet list has summaries).
pub(crate) async fn get_discovered(
    State(s): State<AppState>,
    PathParam(mac): PathParam<String>,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&mac)?;
    let fleet = s.fleet.read().unwrap_or_else(|e| e.into_inner());
    let d = fleet
        .discovered
        .get(&mac)
        .ok_or_else(|| ApiError::not_found(format!("no discovery report from {mac}")))?;
    Ok(Json(discovered_view(&mac, d)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PruneRequest {
    /// Only these (every unknown machine when absent).
    macs: Option<Vec<String>>,
}

/// MACs in one prune request, at most.
const MAX_PRUNE: usize = 100_000;

/// Which of `wanted` (all when `None`) can be pruned: held and not an inventory node's.
fn select(s: &Shared, wanted: Option<Vec<String>>) -> (Vec<String>, Vec<String>, Vec<String>) {
    let catalog = s.catalog();
    let fleet = s.fleet.read().unwrap_or_else(|e| e.into_inner());
    let mut prune = Vec::new();
    let mut inventory = Vec::new();
    let mut absent = Vec::new();
    match wanted {
        None => prune.extend(
            fleet
                .discovered
                .keys()
                .filter(|m| catalog.hostname_by_mac(m).is_none())
                .cloned(),
        ),
        Some(macs) => {
            for mac in macs {
                if catalog.hostname_by_mac(&mac).is_some() {
                    inventory.push(mac);
                } else if fleet.discovered.contains_key(&mac) {
                    prune.push(mac);
                } else {
                    absent.push(mac);
                }
            }
        }
    }
    (prune, inventory, absent)
}

pub(crate) async fn prune_discovered(
    State(s): State<AppState>,
    Caller(peer): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    peer.check_operator()?;
    check_same_origin(&headers)?;
    let req: PruneRequest = read_json(&headers, body).await?;
    let wanted = match req.macs {
        None => None,
        Some(macs) if macs.len() > MAX_PRUNE => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("at most {MAX_PRUNE} MACs per request"),
            ));
        }
        Some(macs) => {
            let mut parsed = Vec::with_capacity(macs.len());
            for m in &macs {
                parsed.push(
                    Mac::parse_any_separator(m)
                        .map(|m| m.as_str().to_string())
                        .map_err(|e| {
                            ApiError::new(
                                StatusCode::UNPROCESSABLE_ENTITY,
                                "invalid_body",
                                format!("macs: {m:?}: {e}"),
                            )
                        })?,
                );
            }
            parsed.sort();
            parsed.dedup();
            Some(parsed)
        }
    };
    let (prune, inventory, absent) = select(&s, wanted);
    let actor = peer.actor();
    if !prune.is_empty() {
        s.store
            .write(WriteOp::PruneDiscovered {
                macs: prune.clone(),
                actor: actor.clone(),
            })
            .await?;
    }
    tracing::info!(%actor, pruned = prune.len(), "pruned discovered machines");
    Ok(Json(json!({
        "status": "pruned",
        "pruned": prune,
        "kept_inventory": inventory,
        "not_found": absent,
    }))
    .into_response())
}
