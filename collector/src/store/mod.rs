//! SQLite storage: versioned schema, one writer thread doing group commits, one reader
//! connection for history queries.
//!
//! A request hands its write to the writer and waits; the writer takes everything that queued
//! up meanwhile (up to [`MAX_BATCH`]), commits it in one transaction (WAL, `synchronous=FULL`:
//! one fsync per batch), applies it to the in-memory [`Fleet`], and only then answers each
//! request. So a 2xx means "on disk", and concurrent reports share the fsync.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use plasma_wire::discover::DiscoverReport;
use plasma_wire::{Phase, Report, ReportStatus};
use rusqlite::{Connection, OpenFlags, params};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use super::error::{CollectorError, StoreError};
use super::fleet::Fleet;

mod write;
use write::{Job, writer};
pub use write::{WriteOp, provision_message};

/// Largest group commit.
pub const MAX_BATCH: usize = 4096;
/// Queue in front of the writer; senders wait when it is full (back-pressure, not loss).
const QUEUE: usize = 16_384;

/// Schema migrations, applied in order; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: report and operator-event history, discovered machines.
    "CREATE TABLE history (
        id INTEGER PRIMARY KEY,
        node TEXT NOT NULL,
        kind TEXT NOT NULL,
        service TEXT,
        phase TEXT,
        status TEXT,
        message TEXT NOT NULL DEFAULT '',
        sent_at TEXT,
        received_ms INTEGER NOT NULL,
        actor TEXT
    );
    CREATE INDEX history_node ON history(node, id);
    CREATE TABLE discovered (
        mac TEXT PRIMARY KEY,
        report TEXT NOT NULL,
        remote TEXT,
        first_ms INTEGER NOT NULL,
        last_ms INTEGER NOT NULL,
        count INTEGER NOT NULL
    );",
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub const KIND_REPORT: &str = "report";
pub const KIND_INSTALLED: &str = "mark-installed";
pub const KIND_REPROVISION: &str = "reprovision";
pub const KIND_PROVISION: &str = "provision";
pub const KIND_ENLIST: &str = "enlist";

/// One entry of a node's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HistoryEntry {
    pub id: i64,
    pub kind: String,
    pub service: Option<String>,
    pub phase: Option<String>,
    pub status: Option<String>,
    pub message: String,
    pub sent_at: Option<String>,
    pub received_at: String,
    pub actor: Option<String>,
}

/// Handle shared by the handlers.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Job>,
    reader: Arc<Mutex<Connection>>,
    path: PathBuf,
}

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> CollectorError + '_ {
    move |source| CollectorError::Db {
        path: path.to_path_buf(),
        source,
    }
}

/// Open (creating and migrating) the database, rebuild `fleet` from it, start the writer.
/// Must be called inside a tokio runtime.
pub fn open(
    path: &Path,
    fleet: Arc<RwLock<Fleet>>,
    changed: watch::Sender<u64>,
) -> Result<Store, CollectorError> {
    let err = db_err(path);
    let mut conn = Connection::open(path).map_err(&err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(&err)?;
    // FULL: the WAL is fsynced at every commit, so an acknowledged report survives power loss,
    // not only a killed process.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(&err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(&err)?;
    migrate(&mut conn, path)?;
    {
        let mut f = fleet.write().unwrap_or_else(|e| e.into_inner());
        replay(&conn, &mut f).map_err(&err)?;
    }
    let reader = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    reader
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(&err)?;
    let (tx, rx) = mpsc::channel(QUEUE);
    std::thread::Builder::new()
        .name("collector-db-writer".into())
        .spawn(move || writer(conn, rx, fleet, changed))
        .map_err(|e| CollectorError::Config(format!("cannot start the database writer: {e}")))?;
    Ok(Store {
        tx,
        reader: Arc::new(Mutex::new(reader)),
        path: path.to_path_buf(),
    })
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), CollectorError> {
    let err = db_err(path);
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(&err)?;
    if found > SCHEMA_VERSION {
        return Err(CollectorError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction().map_err(&err)?;
        tx.execute_batch(sql).map_err(&err)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
        tracing::info!(version = i + 1, db = %path.display(), "applied schema migration");
    }
    Ok(())
}

fn replay(conn: &Connection, fleet: &mut Fleet) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT node, kind, service, phase, status, message, sent_at, received_ms
         FROM history ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let node: String = row.get(0)?;
        let kind: String = row.get(1)?;
        let ms: i64 = row.get(7)?;
        match kind.as_str() {
            KIND_REPORT => {
                let phase: Option<String> = row.get(3)?;
                let status: Option<String> = row.get(4)?;
                let (Some(phase), Some(status)) = (
                    phase.and_then(|p| p.parse::<Phase>().ok()),
                    status.and_then(|s| s.parse::<ReportStatus>().ok()),
                ) else {
                    continue;
                };
                let r = Report {
                    node_id: node,
                    service: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    phase,
                    status,
                    message: row.get(5)?,
                    at: row.get::<_, Option<String>>(6)?.unwrap_or_default(),
                };
                fleet.apply_report(&r, ms);
            }
            KIND_INSTALLED => fleet.apply_installed(&node, ms),
            KIND_REPROVISION => fleet.apply_reprovision(&node),
            KIND_PROVISION => {
                let message: String = row.get(5)?;
                fleet.apply_provision(&node, &message, ms);
            }
            KIND_ENLIST => fleet.apply_enlisted(&node, &row.get::<_, String>(5)?),
            _ => {}
        }
    }
    let mut stmt =
        conn.prepare("SELECT mac, report, remote, first_ms, last_ms, count FROM discovered")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let mac: String = row.get(0)?;
        let json: String = row.get(1)?;
        let Ok(report) = serde_json::from_str::<DiscoverReport>(&json) else {
            continue;
        };
        fleet.discovered.insert(
            mac,
            super::fleet::Discovered {
                report,
                remote: row.get(2)?,
                first_ms: row.get(3)?,
                last_ms: row.get(4)?,
                count: row.get::<_, i64>(5)? as u64,
            },
        );
    }
    Ok(())
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl Store {
    /// Queue a write and wait until it is committed.
    pub async fn write(&self, op: WriteOp) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                op,
                received_ms: now_ms(),
                done,
            })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        wait.await.map_err(|_| StoreError::WriterGone)?
    }

    /// The node's last `limit` history entries, oldest first.
    pub async fn history(&self, node: &str, limit: u32) -> Result<Vec<HistoryEntry>, StoreError> {
        let reader = self.reader.clone();
        let node = node.to_string();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|e| e.into_inner());
            let mut stmt = conn.prepare_cached(
                "SELECT id, kind, service, phase, status, message, sent_at, received_ms, actor
                 FROM history WHERE node = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let mut out = stmt
                .query_map(params![node, limit], |row| {
                    Ok(HistoryEntry {
                        id: row.get(0)?,
                        kind: row.get(1)?,
                        service: row.get(2)?,
                        phase: row.get(3)?,
                        status: row.get(4)?,
                        message: row.get(5)?,
                        sent_at: row.get(6)?,
                        received_at: format_ms(row.get(7)?),
                        actor: row.get(8)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            out.reverse();
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Sqlite(e.to_string()))?
    }

    /// The database answers a query (for `/health`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let reader = self.reader.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            if !path.exists() {
                return Err(StoreError::Sqlite(format!(
                    "{} no longer exists",
                    path.display()
                )));
            }
            let conn = reader.lock().unwrap_or_else(|e| e.into_inner());
            let v: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
            if v == 0 {
                return Err(StoreError::Sqlite("the schema is missing".into()));
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Sqlite(e.to_string()))?
    }

    /// The writer is still running.
    pub fn writer_alive(&self) -> bool {
        !self.tx.is_closed()
    }
}
