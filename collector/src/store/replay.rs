//! Rebuild the in-memory [`Fleet`] from the database at start, verifying every row on the way
//! (the replay reads them all anyway, so the checksums cost only the CRC).

use plasma_wire::discover::DiscoverReport;
use plasma_wire::{Phase, Report, ReportStatus};
use rusqlite::Connection;

use super::checksum::{Counters, DiscoveredRow, StoredHistory};
use super::{KIND_ENLIST, KIND_INSTALLED, KIND_PROVISION, KIND_REPORT, KIND_REPROVISION};
use crate::fleet::{Discovered, Fleet};

/// What the replay found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Replayed {
    /// `history` rows of kind `report`.
    pub reports: u64,
    pub history: i64,
    pub discovered: i64,
    pub max_id: i64,
}

#[derive(Debug)]
pub enum ReplayError {
    Sqlite(rusqlite::Error),
    /// A row whose content is not what was written: the sentence says which.
    Damaged(String),
}

impl From<rusqlite::Error> for ReplayError {
    fn from(e: rusqlite::Error) -> Self {
        ReplayError::Sqlite(e)
    }
}

fn damaged(table: &str, key: impl std::fmt::Display) -> ReplayError {
    ReplayError::Damaged(format!(
        "{table} row {key} fails its checksum (its bytes changed on disk)"
    ))
}

/// Apply every row to `fleet`; then the counts must be those `meta` recorded.
pub fn replay(
    conn: &Connection,
    fleet: &mut Fleet,
    meta: &Counters,
) -> Result<Replayed, ReplayError> {
    let mut out = Replayed::default();
    let mut stmt = conn.prepare(
        "SELECT id, node, kind, service, phase, status, message, sent_at, received_ms, actor, crc
         FROM history ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let stored = StoredHistory::read(row.get(0)?, row)?;
        if !stored.intact() {
            return Err(damaged("history", stored.id));
        }
        let StoredHistory {
            id,
            node,
            kind,
            service,
            phase,
            status,
            message,
            sent_at,
            received_ms: ms,
            actor,
            ..
        } = stored;
        out.history += 1;
        out.max_id = out.max_id.max(id);
        match kind.as_str() {
            KIND_REPORT => {
                out.reports += 1;
                let (Some(phase), Some(status)) = (
                    phase.and_then(|p| p.parse::<Phase>().ok()),
                    status.and_then(|s| s.parse::<ReportStatus>().ok()),
                ) else {
                    continue;
                };
                let r = Report {
                    node_id: node,
                    service: service.unwrap_or_default(),
                    phase,
                    status,
                    message,
                    at: sent_at.unwrap_or_default(),
                    installation: actor,
                };
                fleet.apply_report(&r, ms);
            }
            KIND_INSTALLED => fleet.apply_installed(&node, ms),
            KIND_REPROVISION => fleet.apply_reprovision(&node),
            KIND_PROVISION => fleet.apply_provision(&node, &message, ms),
            KIND_ENLIST => fleet.apply_enlisted(&node, &message),
            _ => {}
        }
    }
    let mut stmt =
        conn.prepare("SELECT mac, report, remote, first_ms, last_ms, count, crc FROM discovered")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let mac: String = row.get(0)?;
        let json: String = row.get(1)?;
        let remote: Option<String> = row.get(2)?;
        let (first_ms, last_ms, count): (i64, i64, i64) = (row.get(3)?, row.get(4)?, row.get(5)?);
        if let Some(crc) = row.get::<_, Option<i64>>(6)? {
            let r = DiscoveredRow {
                mac: &mac,
                report: &json,
                remote: remote.as_deref(),
                first_ms,
                last_ms,
                count,
            };
            if r.crc() != crc {
                return Err(damaged("discovered", &mac));
            }
        }
        out.discovered += 1;
        let Ok(report) = serde_json::from_str::<DiscoverReport>(&json) else {
            continue;
        };
        fleet.discovered.insert(
            mac,
            Discovered {
                report,
                remote,
                first_ms,
                last_ms,
                count: count as u64,
                size: json.len(),
            },
        );
    }
    for (table, found, recorded) in [
        ("history", out.history, meta.history),
        ("discovered", out.discovered, meta.discovered),
    ] {
        if found != recorded {
            return Err(ReplayError::Damaged(format!(
                "{table} holds {found} rows but the store recorded {recorded}: rows vanished \
                 without SQLite noticing (a changed page header or cell)"
            )));
        }
    }
    Ok(out)
}
