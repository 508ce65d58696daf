//! `POST /v1/discovered/{mac}/enlist` (operator only): a discovered machine becomes an
//! inventory node. The `--inventory` file is edited by `plasma_inventory::enlist` — the code
//! `plasmagen enlist` runs — and the collector then serves the edited inventory: the node gets
//! a fleet row, the machine leaves the discovered list, the dashboard updates. Rendering the
//! node's files is still `plasmagen generate`'s job.

use std::path::Path;

use axum::Json;
use axum::body::Body;
use axum::extract::State;

use super::extract::PathParam;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use plasma_inventory::enlist::{self, Applied, ApplyError, Entry, Machine, Request};
use plasma_inventory::inventory::{DiskLayout, Mac, Role};
use serde::Deserialize;
use serde_json::json;

use super::api::{Caller, read_json, stuck_ms};
use super::auth::check_same_origin;
use super::error::ApiError;
use super::store::{WriteOp, now_ms};
use super::view::node_view;
use super::{AppState, Shared};

/// The request body; the CLI's `--role`, `--hostname`, `--disk-layout`, `--bmc-user`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnlistBody {
    role: String,
    /// `node##`; default: the shape of the existing names.
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    disk_layout: Option<String>,
    #[serde(default)]
    bmc_user: Option<String>,
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

fn request(body: EnlistBody) -> Result<Request, ApiError> {
    let role = Role::parse(&body.role).ok_or_else(|| {
        unprocessable(
            "invalid_body",
            format!(
                "role {:?}: expected worker, control-plane or all-in-one",
                body.role
            ),
        )
    })?;
    let layout = body.disk_layout.as_deref().unwrap_or("single");
    let disk_layout = DiskLayout::parse(layout).ok_or_else(|| {
        unprocessable(
            "invalid_body",
            format!("disk_layout {layout:?}: expected single, raid1 or luks-lvm"),
        )
    })?;
    Ok(Request {
        role,
        hostname_pattern: body.hostname.filter(|h| !h.is_empty()),
        disks: None,
        disk_layout,
        bmc_user: body.bmc_user.filter(|u| !u.is_empty()),
    })
}

fn already(mac: &str, hostname: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "already_enlisted",
        format!("{mac} is already enlisted as {hostname}"),
    )
}

fn apply_error(e: ApplyError) -> ApiError {
    match e {
        ApplyError::Enlisted { mac, hostname } => already(&mac, &hostname),
        // A full pool, no usable disk, a bad hostname pattern.
        ApplyError::Plan(e) => unprocessable("cannot_enlist", e.to_string()),
        e @ (ApplyError::Edit { .. } | ApplyError::Invalid(_)) => {
            unprocessable("invalid_result", e.to_string())
        }
        // Someone broke the file since the collector started: theirs to fix, not the request's.
        e @ ApplyError::Current(_) => {
            ApiError::new(StatusCode::CONFLICT, "inventory_invalid", e.to_string())
        }
    }
}

/// Read, plan, edit, validate, write: nothing is written unless every step succeeded.
fn edit_file(path: &Path, machine: &Machine, req: &Request) -> Result<Applied, ApiError> {
    let failed = |code, e: &dyn std::fmt::Display| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code,
            format!(
                "{e} (the collector needs read and write access to the directory of its \
                 --inventory file)"
            ),
        )
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| failed("inventory_unreadable", &format!("{}: {e}", path.display())))?;
    let applied =
        enlist::apply(path, &text, std::slice::from_ref(machine), req).map_err(apply_error)?;
    enlist::write_in_place(path, &applied.text).map_err(|e| failed("inventory_not_written", &e))?;
    Ok(applied)
}

fn next_step(s: &Shared, hostname: &str) -> String {
    format!(
        "{hostname} is in {inv}; run `plasmagen generate {inv} --out OUT` to render its \
         configuration, certificate and PXE files before provisioning it",
        inv = s.inventory_file().display()
    )
}

fn entry_json(e: &Entry) -> serde_json::Value {
    json!({
        "hostname": e.hostname,
        "role": e.role.as_str(),
        "mac": e.mac,
        "provisioning_ip": e.provisioning_ip.to_string(),
        "production_ip": e.production_ip.to_string(),
        "disks": e.disks,
        "disk_layout": e.disk_layout.as_str(),
        "firmware": e.firmware,
        "production_macs": e.production_macs,
        "bmc_address": e.bmc.as_ref().map(|(a, _)| a),
    })
}

pub(crate) async fn enlist(
    State(s): State<AppState>,
    Caller(peer): Caller,
    PathParam(mac): PathParam<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    peer.check_operator()?;
    check_same_origin(&headers)?;
    let mac = Mac::parse_any_separator(&mac)
        .map_err(|_| ApiError::not_found(format!("{mac:?} is not a MAC address")))?
        .as_str()
        .to_string();
    let req = request(read_json(&headers, body).await?)?;

    // Serialised: two enlists must not both plan against the same text (same hostname and
    // addresses) or overwrite each other's edit.
    let _turn = s.enlisting.lock().await;
    let facts = {
        let fleet = s.fleet.read().unwrap_or_else(|e| e.into_inner());
        fleet.discovered.get(&mac).map(|d| d.report.clone())
    };
    let Some(facts) = facts else {
        return Err(match s.catalog().hostname_by_mac(&mac) {
            Some(h) => already(&mac, h),
            None => ApiError::not_found(format!(
                "no discovery report for {mac} (netboot the machine into discovery first)"
            )),
        });
    };
    let machine = Machine {
        mac: mac.clone(),
        facts,
    };
    let path = s.inventory_file().to_path_buf();
    let applied = tokio::task::spawn_blocking(move || edit_file(&path, &machine, &req))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    let entry = applied.entries[0].clone();
    s.replace_inventory(applied.inventory);
    let actor = peer.actor();
    tracing::info!(%mac, node = %entry.hostname, %actor, "enlisted a discovered machine");

    let next = next_step(&s, &entry.hostname);
    let op = WriteOp::Enlisted {
        node: entry.hostname.clone(),
        actor,
        message: format!(
            "enlisted as {} from discovery; run plasmagen generate",
            entry.role.as_str()
        ),
    };
    // The file is written and served already; a lost history line must not undo that.
    if let Err(e) = s.store.write(op).await {
        tracing::warn!(error = %e, node = %entry.hostname, "enlist not recorded in the history");
    }
    let catalog = s.catalog();
    let node = catalog.node(&entry.hostname).map(|n| {
        let fleet = s.fleet.read().unwrap_or_else(|e| e.into_inner());
        node_view(&catalog.inventory, &fleet, n, now_ms(), stuck_ms(&s))
    });
    Ok(Json(json!({
        "status": "enlisted",
        "entry": entry_json(&entry),
        "inventory": s.inventory_file().display().to_string(),
        "next": next,
        "node": node,
    }))
    .into_response())
}
