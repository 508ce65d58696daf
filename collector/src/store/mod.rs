//! SQLite storage: versioned schema, one writer thread doing group commits, one reader
//! connection for history queries.
//!
//! A request hands its write to the writer and waits; the writer takes everything that queued
//! up meanwhile (up to [`MAX_BATCH`]), commits it in one transaction (WAL, `synchronous=FULL`:
//! one fsync per batch), applies it to the in-memory [`Fleet`], and only then answers each
//! request. So a 2xx means "on disk", and concurrent reports share the fsync.
//!
//! Damage is seen, not served: [`open`] checks the file before anything else ([`integrity`]),
//! rows carry checksums ([`checksum`]), the `<db>.ack` sidecar ([`ack`]) notices a lost WAL
//! tail, and [`recover()`] salvages what is readable into a new file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, params};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use super::error::{CollectorError, StoreError};
use super::fleet::Fleet;

pub mod ack;
pub mod checksum;
pub mod integrity;
mod recover;
mod replay;
mod resent;
mod retention;
mod salvage;
mod write;
pub use integrity::StoreStatus;
pub use recover::{Recovery, TableRecovery, recover};
/// For tools and tests that inspect a collector database.
pub use rusqlite;
use write::{Job, Writer, writer};
pub use write::{WriteOp, provision_message};

pub use retention::DEFAULT_KEEP as DEFAULT_HISTORY_PER_SERVICE;

/// What the store keeps at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Discovered machines (unknown ones are evicted beyond it, least recently seen first).
    pub discovered: crate::discovered::Budget,
    /// Reports kept per node and service (besides each phase's first and last).
    pub history_per_service: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            discovered: crate::discovered::Budget::default(),
            history_per_service: DEFAULT_HISTORY_PER_SERVICE,
        }
    }
}

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
    // 2: row checksums (NULL for older rows: not verified) and the store's counters, which
    // the writer updates in every commit (see integrity.rs).
    "ALTER TABLE history ADD COLUMN crc INTEGER;
    ALTER TABLE discovered ADD COLUMN crc INTEGER;
    CREATE TABLE store_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        store_id INTEGER NOT NULL,
        acked INTEGER NOT NULL,
        history INTEGER NOT NULL,
        discovered INTEGER NOT NULL,
        crc INTEGER NOT NULL
    );
    INSERT INTO store_meta (id, store_id, acked, history, discovered, crc)
    VALUES (1, random(), 0, (SELECT count(*) FROM history), (SELECT count(*) FROM discovered), 0);",
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
    health: Arc<integrity::Health>,
}

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> CollectorError + '_ {
    move |source| CollectorError::Db {
        path: path.to_path_buf(),
        source,
    }
}

/// Open (creating and migrating) the database, check it, rebuild `fleet` from it, start the
/// writer. A damaged database is refused ([`CollectorError::Corrupt`]). Must be called inside
/// a tokio runtime.
pub fn open(
    path: &Path,
    fleet: Arc<RwLock<Fleet>>,
    changed: watch::Sender<u64>,
    limits: Limits,
) -> Result<Store, CollectorError> {
    let started = std::time::Instant::now();
    let err = db_err(path);
    let checked = {
        let mut f = fleet.write().unwrap_or_else(|e| e.into_inner());
        open_checked(path, &mut f)?
    };
    let Checked {
        conn,
        check,
        meta,
        replayed,
    } = checked;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)
        .map_err(&err)?;
    let ack_file = ack::AckFile::start(path, &meta).map_err(|source| CollectorError::File {
        path: ack::path_of(path),
        source,
    })?;
    tracing::info!(
        db = %path.display(),
        check = check.check,
        bytes = check.bytes,
        check_ms = check.ms,
        total_ms = started.elapsed().as_millis() as u64,
        rows = replayed.history,
        "store checked"
    );
    let health = Arc::new(integrity::Health::new(
        check.check,
        now_ms(),
        replayed.reports,
    ));
    let reader = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    reader
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(&err)?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let w = Writer {
        counters: meta,
        next_id: replayed.max_id + 1,
        ack: ack_file,
        ack_failing: false,
        health: health.clone(),
        fleet,
        changed,
        budget: limits.discovered,
        retention: retention::Retention::new(limits.history_per_service),
        resent: resent::Resent::default(),
    };
    std::thread::Builder::new()
        .name("collector-db-writer".into())
        .spawn(move || writer(conn, rx, w))
        .map_err(|e| CollectorError::Config(format!("cannot start the database writer: {e}")))?;
    Ok(Store {
        tx,
        reader: Arc::new(Mutex::new(reader)),
        path: path.to_path_buf(),
        health,
    })
}

/// A database that passed every start-up check (its connection still refuses to checkpoint
/// on close).
struct Checked {
    conn: Connection,
    check: integrity::Checked,
    meta: checksum::Counters,
    replayed: replay::Replayed,
}

/// The start-up sequence up to a verified replay into `fleet` (integrity.rs lists the checks).
/// Nothing is written to a database that has checksums before they all pass.
fn open_checked(path: &Path, fleet: &mut Fleet) -> Result<Checked, CollectorError> {
    let err = db_err(path);
    let ack = ack::read(path);
    if let (false, Ok(Some(a))) = (path.exists(), &ack)
        && a.acked > 0
    {
        return Err(integrity::corrupt(
            path,
            format!(
                "the database file is gone but {} records {} acknowledged writes ({} history rows)",
                ack::path_of(path).display(),
                a.acked,
                a.history
            ),
        ));
    }
    let mut conn = Connection::open(path).map_err(&err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(&err)?;
    // A refused store stays as found: closing must not fold (what is left of) the WAL into it.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(&err)?;
    let setup = integrity::classify(path, "opening the database");
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(&setup)?;
    // FULL: the WAL is fsynced at every commit, so an acknowledged report survives power loss,
    // not only a killed process.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(&setup)?;
    let check = integrity::structure(&conn, path)?;
    migrate(&mut conn, path)?;
    let meta = integrity::read_meta(&conn, path)?;
    let warning = integrity::compare_ack(path, &meta, ack)?;
    let replayed = replay::replay(&conn, fleet, &meta).map_err(|e| match e {
        replay::ReplayError::Sqlite(e) => integrity::classify(path, "reading the history")(e),
        replay::ReplayError::Damaged(what) => integrity::corrupt(path, what),
    })?;
    if let Some(w) = warning {
        tracing::warn!(db = %path.display(), "{w}");
    }
    Ok(Checked {
        conn,
        check,
        meta,
        replayed,
    })
}

/// Bring the schema to [`SCHEMA_VERSION`] (each step one transaction).
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), CollectorError> {
    let err = integrity::classify(path, "migrating the schema");
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
        if i + 1 == 2 {
            // The counters' checksum is computed here, not in SQL.
            let c = tx
                .query_row(
                    "SELECT store_id, acked, history, discovered FROM store_meta WHERE id = 1",
                    [],
                    |r| {
                        Ok(checksum::Counters {
                            store_id: r.get(0)?,
                            acked: r.get(1)?,
                            history: r.get(2)?,
                            discovered: r.get(3)?,
                        })
                    },
                )
                .map_err(&err)?;
            tx.execute("UPDATE store_meta SET crc = ?1 WHERE id = 1", [c.crc()])
                .map_err(&err)?;
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
        tracing::info!(version = i + 1, db = %path.display(), "applied schema migration");
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

/// One page of a node's history: the newest `limit` entries older than `before`, oldest
/// first, and the cursor of the next (older) page when there is one.
#[derive(Debug, Clone, Default)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    pub older: Option<i64>,
}

fn read_history(
    conn: &Connection,
    node: &str,
    limit: u32,
    before: Option<i64>,
) -> rusqlite::Result<HistoryPage> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, service, phase, status, message, sent_at, received_ms, actor
         FROM history WHERE node = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    // One more than asked: whether an older page exists, without a count.
    let mut out = stmt
        .query_map(
            params![node, before.unwrap_or(i64::MAX), limit + 1],
            |row| {
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
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let older = if out.len() > limit as usize {
        out.truncate(limit as usize);
        out.last().map(|e| e.id)
    } else {
        None
    };
    out.reverse();
    Ok(HistoryPage {
        entries: out,
        older,
    })
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

    /// The node's last `limit` history entries before the entry `before` (all when `None`),
    /// oldest first.
    pub async fn history(
        &self,
        node: &str,
        limit: u32,
        before: Option<i64>,
    ) -> Result<HistoryPage, StoreError> {
        let reader = self.reader.clone();
        let health = self.health.clone();
        let node = node.to_string();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|e| e.into_inner());
            read_history(&conn, &node, limit, before).map_err(|e| {
                health.observe(&e, "reading the history");
                StoreError::from(e)
            })
        })
        .await
        .map_err(|e| StoreError::Sqlite(e.to_string()))?
    }

    /// The store's state for `/health`: cached, never waits for the store's connections.
    pub fn status(&self) -> StoreStatus {
        self.health.status()
    }

    /// `Some(sentence)` when the database file is no longer there (a `stat`, not a query).
    pub fn missing_file(&self) -> Option<String> {
        (!self.path.exists()).then(|| format!("{} no longer exists", self.path.display()))
    }

    /// The writer is still running.
    pub fn writer_alive(&self) -> bool {
        !self.tx.is_closed()
    }
}
