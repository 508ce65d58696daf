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
//! A (node, service) with more than 2 × `keep` rows past its floor is pruned when the writer has
//! no write waiting (in a transaction of its own), or at once, in the transaction that wrote
//! the report, when it reaches 4 × `keep` (a writer that is never idle). A prune is one
//! indexed read of those rows, then a delete by id of each row that goes (a first version that
//! pruned in line every `keep`/4 reports with one DELETE and three subqueries cost the steady
//! bench a quarter of its rate).

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
    /// (node, service) pairs over 2 × `keep`, pruned when the writer has nothing waiting.
    pending: std::collections::BTreeSet<(String, String)>,
}

const COUNT_SQL: &str = "SELECT count(*) FROM history
     WHERE node = ?1 AND kind = 'report' AND service = ?2 AND id > ?3";

const ROWS_SQL: &str = "SELECT id, phase FROM history
     WHERE node = ?1 AND kind = 'report' AND service = ?2 AND id > ?3 ORDER BY id";

/// Which of `rows` (id, phase; oldest first) go: all but the newest `keep` and the first and
/// last of each phase.
fn doomed(rows: &[(i64, Option<String>)], keep: usize) -> Vec<i64> {
    let newest = rows.len().saturating_sub(keep);
    let mut first: HashMap<Option<&str>, usize> = HashMap::new();
    let mut last: HashMap<Option<&str>, usize> = HashMap::new();
    for (i, (_, phase)) in rows.iter().enumerate() {
        first.entry(phase.as_deref()).or_insert(i);
        last.insert(phase.as_deref(), i);
    }
    let kept: std::collections::HashSet<usize> =
        first.into_values().chain(last.into_values()).collect();
    (0..newest)
        .filter(|i| !kept.contains(i))
        .map(|i| rows[i].0)
        .collect()
}

impl Retention {
    pub(super) fn new(keep: u32) -> Retention {
        Retention {
            keep: keep.max(1),
            nodes: HashMap::new(),
            pending: Default::default(),
        }
    }

    /// Forget what was looked up: after a failed commit the counts may include rows that were
    /// rolled back.
    pub(super) fn reset(&mut self) {
        self.nodes.clear();
        self.pending.clear();
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

    /// A report row for (`node`, `service`) was inserted in `tx`. Over 2 × `keep` rows the
    /// pair is queued for [`Retention::prune_pending`], which the writer runs when no write is
    /// waiting; over 4 × `keep` (the writer never idle) it is pruned here, in this transaction.
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
        if count > self.keep.saturating_mul(4) {
            return self.prune(tx, node, service);
        }
        if count > self.keep.saturating_mul(2) {
            self.pending.insert((node.to_string(), service.to_string()));
        }
        Ok(0)
    }

    /// Pairs waiting for [`Retention::prune_pending`].
    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Prune every queued pair in `tx`; returns the rows deleted.
    pub(super) fn prune_pending(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<i64> {
        let mut deleted = 0;
        for (node, service) in std::mem::take(&mut self.pending) {
            deleted += self.prune(tx, &node, &service)?;
        }
        Ok(deleted)
    }

    /// Delete what [`doomed`] picks of (`node`, `service`)'s rows past its floor.
    fn prune(&mut self, tx: &Transaction<'_>, node: &str, service: &str) -> rusqlite::Result<i64> {
        let Some(rows) = self.nodes.get_mut(node) else {
            return Ok(0);
        };
        let found: Vec<(i64, Option<String>)> = tx
            .prepare_cached(ROWS_SQL)?
            .query_map(params![node, service, rows.floor], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let doomed = doomed(&found, self.keep as usize);
        let mut deleted = 0;
        // One statement per few hundred ids (integers, written into the SQL): a statement per
        // row costs more than the delete itself.
        for chunk in doomed.chunks(500) {
            let ids: Vec<String> = chunk.iter().map(i64::to_string).collect();
            deleted += tx.execute(
                &format!("DELETE FROM history WHERE id IN ({})", ids.join(",")),
                [],
            )?;
        }
        rows.services
            .insert(service.to_string(), (found.len() - deleted) as u32);
        self.pending
            .remove(&(node.to_string(), service.to_string()));
        Ok(deleted as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::doomed;

    #[test]
    fn keeps_the_newest_and_each_phase_ends() {
        let p = |s: &str| Some(s.to_string());
        let rows: Vec<(i64, Option<String>)> = [
            (1, p("booted")),
            (2, p("booted")),
            (3, p("booted")),
            (4, p("joining")),
            (5, p("joining")),
            (6, p("joining")),
            (7, p("joined")),
            (8, p("joined")),
        ]
        .into();
        // Newest 2 (7, 8); booted 1 and 3; joining 4 and 6.
        assert_eq!(doomed(&rows, 2), [2, 5]);
        assert!(doomed(&rows, 8).is_empty());
        assert!(doomed(&rows[..1], 0).is_empty());
    }
}
