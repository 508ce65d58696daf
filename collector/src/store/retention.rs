//! History retention: per node and service, the last `keep` reports, plus the first and last
//! report of each phase, so a node certificate that reports in a loop cannot grow the
//! database (or one read) without limit and no phase a node went through is ever lost.
//!
//! Reports written before the node's latest reprovision are never deleted: at start the fleet
//! is replayed from the history, and which installation a reprovision retired is the one the
//! reports just before it name. Each reprovision freezes at most `keep` + 2 × phases rows per
//! service, and only an operator can reprovision. Operator events (mark-installed, reprovision,
//! provision steps, enlist) are kept: only operators write them.
//!
//! Pruning runs in the writer's transaction, when a (node, service) has `keep` + a slack of
//! rows past its floor, so its cost (one indexed scan of that node's rows) is paid once per
//! slack-many reports.

use std::collections::HashMap;

use rusqlite::{Transaction, params};

use super::KIND_REPROVISION;

/// Reports kept per node and service by default.
pub const DEFAULT_KEEP: u32 = 200;

struct NodeRows {
    /// Id of the node's latest reprovision row (0: none): rows up to it are frozen.
    floor: i64,
    /// Report rows past `floor`, per service, once looked up.
    services: HashMap<String, u32>,
}

pub(super) struct Retention {
    keep: u32,
    nodes: HashMap<String, NodeRows>,
}

/// Report rows past the floor, kept over `keep` before a prune.
fn slack(keep: u32) -> u32 {
    (keep / 4).max(8)
}

const COUNT_SQL: &str = "SELECT count(*) FROM history
     WHERE node = ?1 AND kind = 'report' AND service = ?2 AND id > ?3";

/// Everything past the floor except the newest `keep` (?4) and each phase's first and last.
const PRUNE_SQL: &str = "DELETE FROM history
     WHERE node = ?1 AND kind = 'report' AND service = ?2 AND id > ?3
       AND id < (SELECT id FROM history
                 WHERE node = ?1 AND kind = 'report' AND service = ?2 AND id > ?3
                 ORDER BY id DESC LIMIT 1 OFFSET ?4 - 1)
       AND id NOT IN (
         SELECT min(id) FROM history
         WHERE node = ?1 AND kind = 'report' AND service = ?2 AND id > ?3 GROUP BY phase
         UNION ALL
         SELECT max(id) FROM history
         WHERE node = ?1 AND kind = 'report' AND service = ?2 AND id > ?3 GROUP BY phase)";

impl Retention {
    pub(super) fn new(keep: u32) -> Retention {
        Retention {
            keep: keep.max(1),
            nodes: HashMap::new(),
        }
    }

    /// Forget what was looked up: after a failed commit the counts may include rows that were
    /// rolled back.
    pub(super) fn reset(&mut self) {
        self.nodes.clear();
    }

    /// The node's reprovision row `id` was written: everything before it is frozen.
    pub(super) fn reprovisioned(&mut self, node: &str, id: i64) {
        self.nodes.insert(
            node.to_string(),
            NodeRows {
                floor: id,
                services: HashMap::new(),
            },
        );
    }

    /// A report row for (`node`, `service`) was inserted in `tx`: prune when over the limit.
    /// Returns the rows deleted.
    pub(super) fn added(
        &mut self,
        tx: &Transaction<'_>,
        node: &str,
        service: &str,
    ) -> rusqlite::Result<i64> {
        if !self.nodes.contains_key(node) {
            let floor: i64 = tx
                .prepare_cached(
                    "SELECT coalesce(max(id), 0) FROM history WHERE node = ?1 AND kind = ?2",
                )?
                .query_row(params![node, KIND_REPROVISION], |r| r.get(0))?;
            self.nodes.insert(
                node.to_string(),
                NodeRows {
                    floor,
                    services: HashMap::new(),
                },
            );
        }
        let Some(rows) = self.nodes.get_mut(node) else {
            return Ok(0);
        };
        let floor = rows.floor;
        let count = match rows.services.get_mut(service) {
            Some(c) => {
                *c += 1;
                *c
            }
            None => {
                // Looked up after the insert: the new row is counted.
                let c: u32 = tx
                    .prepare_cached(COUNT_SQL)?
                    .query_row(params![node, service, floor], |r| r.get(0))?;
                rows.services.insert(service.to_string(), c);
                c
            }
        };
        if count <= self.keep + slack(self.keep) {
            return Ok(0);
        }
        let deleted = tx
            .prepare_cached(PRUNE_SQL)?
            .execute(params![node, service, floor, self.keep])?;
        let left: u32 = tx
            .prepare_cached(COUNT_SQL)?
            .query_row(params![node, service, floor], |r| r.get(0))?;
        rows.services.insert(service.to_string(), left);
        Ok(deleted as i64)
    }
}
