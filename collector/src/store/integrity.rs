//! Start-up checks of the store, and its health as `/health` reports it.
//!
//! Before the collector serves (and before it writes anything to a database that has
//! checksums), [`open`](super::open) runs, in order:
//!
//! 1. [`structure`]: `PRAGMA integrity_check` when the database (with its WAL) is under
//!    [`FULL_CHECK_BELOW`], else `PRAGMA quick_check` (same page and b-tree checks, without
//!    matching each index against its table). Catches a damaged page: an index page, a
//!    table's interior page, a cell count.
//! 2. [`compare_ack`]: the counters in `store_meta` against the `<db>.ack` sidecar
//!    ([`super::ack`]): fewer acknowledged writes than the sidecar recorded means a lost WAL
//!    tail (a frame that failed its checksum, and everything after it).
//! 3. the replay ([`super::replay`]) verifies every row's checksum ([`super::checksum`]) and
//!    that the row counts are the ones `store_meta` recorded: changed bytes inside a record,
//!    which SQLite cannot see, and rows gone without a structural error.
//!
//! Any failure refuses to start ([`CollectorError::Corrupt`], exit 74) until the operator runs
//! `--recover` ([`super::recover`]) or removes the files.

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rusqlite::{Connection, ErrorCode, OptionalExtension};
use serde::Serialize;

use super::checksum::Counters;
use crate::error::CollectorError;

/// Below this size (database + WAL) the full `integrity_check` runs at start.
pub const FULL_CHECK_BELOW: u64 = 8 << 20;
/// Findings quoted in the refusal.
const MAX_FINDINGS: usize = 10;

/// SQLite says the file is damaged (not busy, not missing).
pub fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

pub fn corrupt(path: &Path, problem: impl Into<String>) -> CollectorError {
    CollectorError::Corrupt {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// A SQLite error during the checks: corruption refuses with the recovery steps, anything
/// else stays a plain database error.
pub fn classify<'a>(path: &'a Path, what: &str) -> impl Fn(rusqlite::Error) -> CollectorError + 'a {
    let what = what.to_string();
    move |e| {
        if is_corrupt(&e) {
            corrupt(path, format!("{what}: {e}"))
        } else {
            CollectorError::Db {
                path: path.to_path_buf(),
                source: e,
            }
        }
    }
}

/// Which structural check ran and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    pub check: &'static str,
    pub bytes: u64,
    pub ms: u64,
}

/// Database plus WAL size.
pub fn size_of(path: &Path) -> u64 {
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    len(path) + len(Path::new(&wal))
}

/// Step 1: SQLite's own page and b-tree checks.
pub fn structure(conn: &Connection, path: &Path) -> Result<Checked, CollectorError> {
    let bytes = size_of(path);
    let check = if bytes < FULL_CHECK_BELOW {
        "integrity_check"
    } else {
        "quick_check"
    };
    let start = Instant::now();
    let stopped = format!("PRAGMA {check} could not finish");
    let err = classify(path, &stopped);
    let mut stmt = conn
        .prepare(&format!("PRAGMA {check}({MAX_FINDINGS})"))
        .map_err(&err)?;
    let findings: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(&err)?
        .collect::<Result<_, _>>()
        .map_err(&err)?;
    if findings != ["ok"] {
        return Err(corrupt(
            path,
            format!("PRAGMA {check} failed: {}", findings.join("; ")),
        ));
    }
    Ok(Checked {
        check,
        bytes,
        ms: start.elapsed().as_millis() as u64,
    })
}

/// The `store_meta` row, its checksum verified. `None` before the schema has it.
pub fn read_meta(conn: &Connection, path: &Path) -> Result<Counters, CollectorError> {
    let err = classify(path, "reading store_meta");
    let row = conn
        .query_row(
            "SELECT store_id, acked, history, discovered, crc FROM store_meta WHERE id = 1",
            [],
            |r| {
                Ok((
                    Counters {
                        store_id: r.get(0)?,
                        acked: r.get(1)?,
                        history: r.get(2)?,
                        discovered: r.get(3)?,
                    },
                    r.get::<_, i64>(4)?,
                ))
            },
        )
        .optional()
        .map_err(&err)?;
    match row {
        None => Err(corrupt(path, "the store_meta row is missing")),
        Some((c, crc)) if crc != c.crc() => Err(corrupt(
            path,
            "the store_meta row fails its checksum (its bytes changed on disk)",
        )),
        Some((c, _)) => Ok(c),
    }
}

/// Step 2: the database must hold every write the sidecar says was acknowledged.
/// `Ok(Some(warning))` when the sidecar cannot be used (missing, garbled, another database's).
pub fn compare_ack(
    path: &Path,
    db: &Counters,
    ack: Result<Option<Counters>, String>,
) -> Result<Option<String>, CollectorError> {
    let ack_file = super::ack::path_of(path);
    match ack {
        Err(e) => Ok(Some(format!(
            "{e}: cannot check for lost writes this time; it is rewritten"
        ))),
        Ok(None) if db.acked > 0 => Ok(Some(format!(
            "{} is missing: cannot check for lost writes this time; it is recreated",
            ack_file.display()
        ))),
        Ok(None) => Ok(None),
        Ok(Some(a)) if a.store_id != db.store_id => Ok(Some(format!(
            "{} belongs to another database (store {:016x}, this one is {:016x}): the \
             database was replaced; it is rewritten",
            ack_file.display(),
            a.store_id as u64,
            db.store_id as u64
        ))),
        Ok(Some(a)) if a.acked > db.acked => Err(corrupt(
            path,
            format!(
                "{} acknowledged writes are missing: {} records {} (history rows: {}), the \
                 database holds {} (history rows: {}). The end of the write-ahead log was lost \
                 or failed its checksum, and SQLite dropped it without an error",
                a.acked - db.acked,
                ack_file.display(),
                a.acked,
                a.history,
                db.acked,
                db.history
            ),
        )),
        Ok(Some(_)) => Ok(None),
    }
}

/// The store's health, written by the store and read by `/health` without any lock.
#[derive(Debug)]
pub struct Health {
    check: &'static str,
    checked_ms: i64,
    reports: AtomicU64,
    /// Set once, at the first sign of damage at run time; a restart checks again.
    degraded: OnceLock<String>,
}

/// What `/health` shows under `store`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreStatus {
    /// `ok` or `degraded`.
    pub state: &'static str,
    /// The start-up check that passed (`integrity_check` or `quick_check`) and when.
    pub check: &'static str,
    pub checked_at: String,
    /// Reports stored (acknowledged).
    pub reports: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Health {
    pub fn new(check: &'static str, checked_ms: i64, reports: u64) -> Health {
        Health {
            check,
            checked_ms,
            reports: AtomicU64::new(reports),
            degraded: OnceLock::new(),
        }
    }

    pub fn add_reports(&self, n: u64) {
        self.reports.fetch_add(n, Ordering::Relaxed);
    }

    /// Look at a run-time error: damage marks the store degraded (logged once).
    pub fn observe(&self, e: &rusqlite::Error, during: &str) {
        if !is_corrupt(e) {
            return;
        }
        let msg = format!(
            "{during}: {e}; stop the collector and restart it with --recover (docs/collector.md)"
        );
        if self.degraded.set(msg.clone()).is_ok() {
            tracing::error!(error = %msg, "the database is damaged: store degraded");
        }
    }

    pub fn status(&self) -> StoreStatus {
        let error = self.degraded.get().cloned();
        StoreStatus {
            state: if error.is_some() { "degraded" } else { "ok" },
            check: self.check,
            checked_at: super::format_ms(self.checked_ms),
            reports: self.reports.load(Ordering::Relaxed),
            error,
        }
    }
}
