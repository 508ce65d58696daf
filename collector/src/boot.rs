//! The plain-HTTP boot listener: `GET /boot/<mac>.ipxe`. iPXE as Debian builds it cannot check
//! our CA, and the answer is no secret (the same scripts are static PXE artifacts).
//!
//! Install-loop avoidance: machines keep "network first" in their boot order, so an installed
//! node must get a local-boot script here, not the installer again.

use axum::Router;
use axum::extract::State;

use super::extract::PathParam;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use plasma_inventory::inventory::Mac;
use plasma_inventory::ipxe as pxe;

use super::AppState;
use super::error::ApiError;

pub fn boot_app(state: AppState) -> Router {
    Router::new()
        .route("/boot/{file}", get(boot_script))
        .fallback(|| async { ApiError::not_found("only GET /boot/<mac>.ipxe is served here") })
        .with_state(state)
}

/// `52-54-00-12-34-56.ipxe` or `52:54:00:12:34:56.ipxe`, any case.
pub fn parse_boot_file(file: &str) -> Option<Mac> {
    let stem = file
        .strip_suffix(".ipxe")
        .or_else(|| file.strip_suffix(".IPXE"))?;
    Mac::parse_any_separator(stem).ok()
}

async fn boot_script(State(s): State<AppState>, PathParam(file): PathParam<String>) -> Response {
    let Some(mac) = parse_boot_file(&file) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_a_boot_script",
            format!("{file:?} is not <mac>.ipxe"),
        )
        .into_response();
    };
    let catalog = s.catalog();
    let inv = &catalog.inventory;
    let script = match catalog.node_by_mac(mac.as_str()) {
        Some(node) => {
            let installed = s
                .fleet
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_installed(&node.hostname);
            tracing::info!(node = %node.hostname, %mac, installed, "boot script requested");
            if installed {
                pxe::local_boot_script(node)
            } else {
                pxe::netboot_script(inv, node)
            }
        }
        None => {
            tracing::info!(%mac, "boot script requested by an unknown MAC: discovery");
            pxe::discovery_script(inv)
        }
    };
    match script {
        Ok(text) => (
            [
                (
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            text,
        )
            .into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "render_failed",
            e.to_string(),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_file_names() {
        for f in [
            "52-54-00-12-34-56.ipxe",
            "52:54:00:12:34:56.ipxe",
            "52-54-00-12-34-56.IPXE",
        ] {
            assert_eq!(
                parse_boot_file(f).unwrap().as_str(),
                "52:54:00:12:34:56",
                "{f}"
            );
        }
        assert_eq!(
            parse_boot_file("52-54-00-AB-CD-EF.ipxe").unwrap().as_str(),
            "52:54:00:ab:cd:ef"
        );
        assert!(parse_boot_file("52-54-00-12-34.ipxe").is_none());
        assert!(parse_boot_file("52-54-00-12-34-56.txt").is_none());
        assert!(parse_boot_file("../etc/passwd.ipxe").is_none());
    }
}
