//! Reports sent twice are stored once.
//!
//! An agent sends a report again when it did not get the answer: the collector was killed
//! after the commit and before the `200`, or the answer was lost on the way. The agent spools
//! it and resends it, oldest first, before anything newer (agent/src/report.rs), so a resent
//! report is always among the last few its node and service sent. Per (node, service) the
//! writer remembers a digest of the last [`WINDOW`] reports (phase, status, message, the
//! agent's `at` with its sub-second digits, installation); a report equal to one of them is
//! acknowledged and not written again. After a start the window is read back lazily from the
//! history (one indexed read per node and service), so a resend after a SIGKILL is caught too.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use rusqlite::{Transaction, params};

use super::checksum::HistoryRow;

/// Reports remembered per node and service.
pub const WINDOW: usize = 16;

const LAST_SQL: &str = "SELECT phase, status, message, sent_at, actor FROM history
     WHERE node = ?1 AND kind = 'report' AND service = ?2 ORDER BY id DESC LIMIT ?3";

/// Windows by node, then service: a report finds its window without allocating a key.
#[derive(Default)]
pub(super) struct Resent {
    recent: HashMap<String, HashMap<String, VecDeque<u64>>>,
}

fn digest(
    phase: Option<&str>,
    status: Option<&str>,
    message: &str,
    sent_at: Option<&str>,
    actor: Option<&str>,
) -> u64 {
    // SipHash with fixed keys: the same value in this process and after a restart.
    let mut h = DefaultHasher::new();
    (phase, status, message, sent_at, actor).hash(&mut h);
    h.finish()
}

impl Resent {
    /// Whether the report in `row` is one of the last [`WINDOW`] of its node and service;
    /// if not, it is remembered (the caller writes it in the same transaction).
    pub(super) fn check(
        &mut self,
        tx: &Transaction<'_>,
        row: &HistoryRow<'_>,
    ) -> rusqlite::Result<bool> {
        let service = row.service.unwrap_or_default();
        let d = digest(row.phase, row.status, row.message, row.sent_at, row.actor);
        if !self.recent.contains_key(row.node) {
            self.recent.insert(row.node.to_owned(), HashMap::new());
        }
        let services = self.recent.get_mut(row.node).expect("just inserted");
        if !services.contains_key(service) {
            services.insert(service.to_owned(), load(tx, row.node, service)?);
        }
        let window = services.get_mut(service).expect("just inserted");
        if window.contains(&d) {
            return Ok(true);
        }
        if window.len() == WINDOW {
            window.pop_front();
        }
        window.push_back(d);
        Ok(false)
    }

    /// Forget everything: after a failed commit the windows may hold rolled-back reports.
    pub(super) fn reset(&mut self) {
        self.recent.clear();
    }
}

/// The window of `node` and `service` as stored, oldest first.
fn load(tx: &Transaction<'_>, node: &str, service: &str) -> rusqlite::Result<VecDeque<u64>> {
    let mut q = tx.prepare_cached(LAST_SQL)?;
    let rows = q.query_map(params![node, service, WINDOW as i64], |r| {
        Ok(digest(
            r.get::<_, Option<String>>(0)?.as_deref(),
            r.get::<_, Option<String>>(1)?.as_deref(),
            &r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?.as_deref(),
            r.get::<_, Option<String>>(4)?.as_deref(),
        ))
    })?;
    let mut newest_first = rows.collect::<rusqlite::Result<Vec<u64>>>()?;
    newest_first.reverse();
    Ok(newest_first.into())
}
