//! Errors: [`ApiError`] is what a handler answers (a JSON body saying what is wrong);
//! [`CollectorError`] is what starting the collector can fail with.

use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An HTTP error answer: `{"error": "<code>", "message": "<what is wrong>"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable code, also the `reason` label of the rejection metric.
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "no_certificate", message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.code, "message": self.message}));
        let mut resp = (self.status, body).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

/// Starting or running the collector.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("{path}: {message}")]
    Tls { path: PathBuf, message: String },
    #[error("database {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "database {path}: schema version {found} is newer than this plasmagen knows ({known}); upgrade plasmagen"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// The start-up checks found damage (docs/collector.md "Storage"); the message carries the
    /// recovery steps.
    #[error("{}", corrupt_message(path, problem))]
    Corrupt { path: PathBuf, problem: String },
    /// A file next to the database (the ack sidecar, a recovery's files).
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

fn corrupt_message(path: &std::path::Path, problem: &str) -> String {
    let db = path.display();
    let name = path
        .file_name()
        .map_or_else(|| db.to_string(), |n| n.to_string_lossy().into_owned());
    format!(
        "database {db} is damaged, the collector does not start on it: {problem}.\n\
         Serving it would show a fleet with reports silently missing. To recover:\n\
         \x20 1. stop every collector using {db};\n\
         \x20 2. back it up: cp -a {db} {db}-wal {db}.ack <backup dir>/ (those that exist);\n\
         \x20 3. run the same `plasmagen collector ...` command with --recover: every readable \
         row is copied into a new {name}, the damaged file is kept as {name}.corrupt-<time>, \
         what was lost is printed per table, then the collector serves;\n\
         \x20    or start empty: delete {db}, {db}-wal, {db}-shm and {db}.ack. Nodes report \
         again at their next step, but installed marks are gone: run `plasmagen \
         mark-installed` for every installed node before it reboots, or it reinstalls."
    )
}

/// Failures of the store as seen by a handler.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("database error: {0}")]
    Sqlite(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::unavailable(e.to_string())
    }
}
