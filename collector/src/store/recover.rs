//! `plasmagen collector --recover`: salvage a damaged database into a new one.
//!
//! The damaged files are moved aside first (`<db>.corrupt-<time>`, with its `-wal` and `.ack`)
//! and read from there with checkpoints disabled, so they stay exactly as found. Every table is
//! read in rowid order; where SQLite reports a damaged page the scan probes forward to the
//! next readable row (one id at a time, then doubling, then bisecting back), so one bad page
//! costs only its own rows. A row whose checksum fails is dropped, not copied. What is lost
//! is counted against the larger of the counters the damaged file and its sidecar recorded.

use std::fmt;
use std::path::{Path, PathBuf};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Row, params};

use super::checksum::{Counters, DiscoveredRow, StoredHistory};
use super::salvage::salvage;
use super::{ack, integrity, migrate};
use crate::error::CollectorError;
use crate::fleet::Fleet;

/// What happened to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRecovery {
    pub table: &'static str,
    pub recovered: u64,
    /// Rows read but not kept: failed checksum or unreadable values.
    pub damaged: u64,
    /// Places where SQLite reported a damaged page and rows were skipped.
    pub unreadable_regions: u64,
    /// Rows the store had recorded (0 when no counter survived).
    pub expected: u64,
}

impl TableRecovery {
    pub fn lost(&self) -> u64 {
        self.expected
            .max(self.recovered + self.damaged)
            .saturating_sub(self.recovered)
    }
}

/// What `--recover` did.
#[derive(Debug, Clone)]
pub struct Recovery {
    pub db: PathBuf,
    /// Why the database was rebuilt; `None`: it passed its checks (or did not exist) and was
    /// left alone.
    pub reason: Option<String>,
    /// Where the damaged database now is.
    pub aside: Option<PathBuf>,
    pub tables: Vec<TableRecovery>,
    /// Acknowledged writes the damaged file no longer held (from its sidecar).
    pub lost_writes: u64,
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let db = self.db.display();
        let Some(reason) = &self.reason else {
            return write!(f, "{db} passed its checks: nothing to recover");
        };
        writeln!(f, "{db} was damaged: {reason}")?;
        if let Some(aside) = &self.aside {
            writeln!(
                f,
                "the damaged files are kept as {} (with its -wal and .ack, if any)",
                aside.display()
            )?;
        }
        for t in &self.tables {
            writeln!(
                f,
                "{}: {} rows recovered, {} lost ({} failed their checksum, {} unreadable regions)",
                t.table,
                t.recovered,
                t.lost(),
                t.damaged,
                t.unreadable_regions
            )?;
        }
        if self.lost_writes > 0 {
            writeln!(
                f,
                "{} acknowledged writes were in the lost end of the write-ahead log",
                self.lost_writes
            )?;
        }
        write!(
            f,
            "new database {db}: nodes whose reports were lost show older phases until they \
             report again; check `plasmagen status` and mark installed nodes again if needed"
        )
    }
}

fn file_err(path: &Path) -> impl Fn(std::io::Error) -> CollectorError + '_ {
    move |source| CollectorError::File {
        path: path.to_path_buf(),
        source,
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// `<db>.corrupt-<UTC time>`, with a counter if a recovery in the same second took it.
fn aside_name(db: &Path) -> PathBuf {
    let t = time::OffsetDateTime::now_utc();
    let stamp = format!(
        ".corrupt-{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let mut name = with_suffix(db, &stamp);
    let mut n = 1;
    while name.exists() || ack::path_of(&name).exists() {
        name = with_suffix(db, &format!("{stamp}-{n}"));
        n += 1;
    }
    name
}

/// Rename `from` to `to` when it exists.
fn move_if_there(from: &Path, to: &Path) -> Result<(), CollectorError> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(file_err(from)(e)),
        _ => Ok(()),
    }
}

/// Check `db` as a start would; if it is damaged, rebuild it from what is readable. The
/// collector must not be running on it. Afterwards [`super::open`] starts normally.
pub fn recover(db: &Path) -> Result<Recovery, CollectorError> {
    let mut out = Recovery {
        db: db.to_path_buf(),
        reason: None,
        aside: None,
        tables: Vec::new(),
        lost_writes: 0,
    };
    let had_ack = matches!(ack::read(db), Ok(Some(_)));
    if !db.exists() && !had_ack {
        return Ok(out);
    }
    match super::open_checked(db, &mut Fleet::default()) {
        Ok(_) => return Ok(out),
        Err(CollectorError::Corrupt { problem, .. }) => out.reason = Some(problem),
        Err(e) => return Err(e),
    }
    let sidecar = ack::read(db).ok().flatten();
    let aside = aside_name(db);
    move_if_there(db, &aside)?;
    move_if_there(&with_suffix(db, "-wal"), &with_suffix(&aside, "-wal"))?;
    move_if_there(&ack::path_of(db), &ack::path_of(&aside))?;
    // The wal-index is a cache SQLite rebuilds from the WAL.
    let _ = std::fs::remove_file(with_suffix(db, "-shm"));
    if aside.exists() {
        out.aside = Some(aside.clone());
    }

    let fresh = with_suffix(db, ".recovering");
    for stale in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(with_suffix(&fresh, stale));
    }
    let db_err = |source| CollectorError::Db {
        path: fresh.clone(),
        source,
    };
    let mut dst = Connection::open(&fresh).map_err(db_err)?;
    migrate(&mut dst, &fresh)?;
    let src = out.aside.as_deref().and_then(open_source);
    let old_meta = src
        .as_ref()
        .and_then(|c| integrity::read_meta(c, &aside).ok());
    // The sidecar counts only if it belongs to this database (or nothing says otherwise).
    let sidecar = sidecar.filter(|a| old_meta.is_none_or(|m| m.store_id == a.store_id));
    let expected = |pick: fn(&Counters) -> i64| {
        [old_meta.as_ref(), sidecar.as_ref()]
            .into_iter()
            .flatten()
            .map(pick)
            .max()
            .unwrap_or(0)
            .max(0) as u64
    };
    out.lost_writes = match (sidecar, old_meta) {
        (Some(a), Some(m)) => (a.acked - m.acked).max(0) as u64,
        _ => 0,
    };

    let tx = dst.transaction().map_err(db_err)?;
    let mut history = TableRecovery {
        table: "history",
        recovered: 0,
        damaged: 0,
        unreadable_regions: 0,
        expected: expected(|c| c.history),
    };
    let mut discovered = TableRecovery {
        table: "discovered",
        expected: expected(|c| c.discovered),
        ..history.clone()
    };
    if let Some(src) = &src {
        let mut max_id = 0;
        salvage(
            src,
            "history",
            HISTORY_COLS,
            &mut history,
            &mut |id, row| {
                max_id = max_id.max(id);
                copy_history(&tx, id, row)
            },
        );
        // Ids are 1..=n: a missing top id is a lost row even if no counter survived.
        history.expected = history.expected.max(max_id.max(0) as u64);
        salvage(
            src,
            "discovered",
            DISCOVERED_COLS,
            &mut discovered,
            &mut |_, row| copy_discovered(&tx, row),
        );
    }
    let counters = Counters {
        store_id: tx
            .query_row("SELECT store_id FROM store_meta WHERE id = 1", [], |r| {
                r.get(0)
            })
            .map_err(db_err)?,
        acked: 0,
        history: history.recovered as i64,
        discovered: discovered.recovered as i64,
    };
    tx.execute(
        "UPDATE store_meta SET acked = ?1, history = ?2, discovered = ?3, crc = ?4 WHERE id = 1",
        params![
            counters.acked,
            counters.history,
            counters.discovered,
            counters.crc()
        ],
    )
    .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    dst.pragma_update(None, "journal_mode", "WAL")
        .map_err(db_err)?;
    drop(dst);
    drop(src);
    // Leave the damaged files as found: no wal-index, no empty WAL made by reading them.
    let _ = std::fs::remove_file(with_suffix(&aside, "-shm"));
    let wal = with_suffix(&aside, "-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() == 0) {
        let _ = std::fs::remove_file(wal);
    }
    std::fs::File::open(&fresh)
        .and_then(|f| f.sync_all())
        .map_err(file_err(&fresh))?;
    std::fs::rename(&fresh, db).map_err(file_err(db))?;
    ack::replace(db, &counters).map_err(file_err(&ack::path_of(db)))?;
    out.tables = vec![history, discovered];
    Ok(out)
}

/// The damaged file, read-only in effect; `None` when SQLite cannot open it at all.
fn open_source(path: &Path) -> Option<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).ok()?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .ok()?;
    conn.pragma_update(None, "query_only", true).ok()?;
    Some(conn)
}

const HISTORY_COLS: &str =
    "node, kind, service, phase, status, message, sent_at, received_ms, actor, crc";
const DISCOVERED_COLS: &str = "mac, report, remote, first_ms, last_ms, count, crc";

/// Copy one history row (columns from 1, after the rowid); `Ok(false)`: damaged, not kept.
fn copy_history(dst: &Connection, id: i64, r: &Row<'_>) -> rusqlite::Result<bool> {
    let stored = StoredHistory::read(id, r)?;
    if !stored.intact() {
        return Ok(false);
    }
    let row = stored.row();
    dst.prepare_cached(
        "INSERT INTO history (id, node, kind, service, phase, status, message, sent_at, received_ms, actor, crc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        id, row.node, row.kind, row.service, row.phase, row.status, row.message, row.sent_at,
        row.received_ms, row.actor, row.crc()
    ])?;
    Ok(true)
}

fn copy_discovered(dst: &Connection, r: &Row<'_>) -> rusqlite::Result<bool> {
    let (mac, report, remote) = (
        r.get::<_, String>(1)?,
        r.get::<_, String>(2)?,
        r.get::<_, Option<String>>(3)?,
    );
    let row = DiscoveredRow {
        mac: &mac,
        report: &report,
        remote: remote.as_deref(),
        first_ms: r.get(4)?,
        last_ms: r.get(5)?,
        count: r.get(6)?,
    };
    if r.get::<_, Option<i64>>(7)?
        .is_some_and(|crc| crc != row.crc())
    {
        return Ok(false);
    }
    let n = dst
        .prepare_cached(
            "INSERT INTO discovered (mac, report, remote, first_ms, last_ms, count, crc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(mac) DO NOTHING",
        )?
        .execute(params![
            row.mac,
            row.report,
            row.remote,
            row.first_ms,
            row.last_ms,
            row.count,
            row.crc()
        ])?;
    Ok(n == 1)
}
