//! Operator actions on a node (operator certificate only): mark installed, reprovision, and
//! the steps `plasmagen provision` reports for the dashboard.

use axum::Json;
use axum::body::Body;
use axum::extract::State;

use super::extract::PathParam;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use plasma_wire::report::ProvisionStep;

use super::api::{Caller, inventory_node, read_json, stuck_ms};
use super::auth::{Peer, check_same_origin};
use super::error::ApiError;
use super::store::{WriteOp, now_ms};
use super::view::node_view;
use super::{AppState, Shared};

async fn operator_action(
    s: &Shared,
    peer: &Peer,
    headers: &HeaderMap,
    id: &str,
    make: impl FnOnce(String, String) -> WriteOp,
) -> Result<Response, ApiError> {
    peer.check_operator()?;
    check_same_origin(headers)?;
    let catalog = s.catalog();
    let node = inventory_node(&catalog, id)?;
    s.store
        .write(make(node.hostname.clone(), peer.actor()))
        .await?;
    let fleet = s.fleet.read().unwrap_or_else(|e| e.into_inner());
    Ok(Json(node_view(
        &catalog.inventory,
        &fleet,
        node,
        now_ms(),
        stuck_ms(s),
    ))
    .into_response())
}

pub(crate) async fn mark_installed(
    State(s): State<AppState>,
    Caller(peer): Caller,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    operator_action(&s, &peer, &headers, &id, |node, actor| WriteOp::Installed {
        node,
        actor,
    })
    .await
}

pub(crate) async fn reprovision(
    State(s): State<AppState>,
    Caller(peer): Caller,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    operator_action(&s, &peer, &headers, &id, |node, actor| {
        WriteOp::Reprovision { node, actor }
    })
    .await
}

/// A step of `plasmagen provision`, shown on the dashboard (operator certificate only).
pub(crate) async fn provision_step(
    State(s): State<AppState>,
    Caller(peer): Caller,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    peer.check_operator()?;
    check_same_origin(&headers)?;
    let step: ProvisionStep = read_json(&headers, body).await?;
    let step_ok = !step.step.is_empty()
        && step.step.len() <= ProvisionStep::MAX_STEP
        && step
            .step
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-');
    if !step_ok || step.message.len() > ProvisionStep::MAX_MESSAGE {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_step",
            format!(
                "step must be 1-{} of a-z and '-', message at most {} bytes",
                ProvisionStep::MAX_STEP,
                ProvisionStep::MAX_MESSAGE
            ),
        ));
    }
    operator_action(&s, &peer, &headers, &id, |node, actor| WriteOp::Provision {
        node,
        actor,
        step,
    })
    .await
}
