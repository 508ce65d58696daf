//! The writer thread: takes every queued write (up to [`MAX_BATCH`]), commits them in one
//! transaction, applies them to the in-memory [`Fleet`] and only then answers each requester.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use plasma_wire::Report;
use plasma_wire::discover::DiscoverReport;
use plasma_wire::report::ProvisionStep;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot, watch};

use super::ack::AckFile;
use super::checksum::{Counters, DiscoveredRow, HistoryRow};
use super::integrity::Health;
use super::resent::Resent;
use super::retention::Retention;
use super::{
    KIND_ENLIST, KIND_INSTALLED, KIND_PROVISION, KIND_REPORT, KIND_REPROVISION, MAX_BATCH,
};
use crate::discovered::Budget;
use crate::error::StoreError;
use crate::fleet::Fleet;

#[derive(Debug)]
pub enum WriteOp {
    Report(Report),
    Installed {
        node: String,
        actor: String,
    },
    Reprovision {
        node: String,
        actor: String,
    },
    Discover {
        mac: String,
        report: DiscoverReport,
        /// The report as stored (its length is what the byte budget counts).
        json: String,
        remote: Option<String>,
    },
    /// `plasmagen discovered --prune`: forget these discovered machines.
    PruneDiscovered {
        macs: Vec<String>,
        actor: String,
    },
    /// A step of `plasmagen provision` (history only, plus the node's last message).
    Provision {
        node: String,
        actor: String,
        step: ProvisionStep,
    },
    /// A discovered machine became inventory node `node` (after the file was written).
    Enlisted {
        node: String,
        actor: String,
        message: String,
    },
}

impl WriteOp {
    /// A discovery report, with the JSON it is stored as.
    pub fn discover(mac: String, report: DiscoverReport, remote: Option<String>) -> WriteOp {
        let json = serde_json::to_string(&report).unwrap_or_default();
        WriteOp::Discover {
            mac,
            report,
            json,
            remote,
        }
    }
}

pub(super) struct Job {
    pub(super) op: WriteOp,
    pub(super) received_ms: i64,
    pub(super) done: oneshot::Sender<Result<(), StoreError>>,
}

/// What the writer thread owns besides its connection.
pub(super) struct Writer {
    /// As committed: advanced only after a commit succeeds.
    pub(super) counters: Counters,
    pub(super) next_id: i64,
    pub(super) ack: AckFile,
    pub(super) ack_failing: bool,
    pub(super) health: Arc<Health>,
    pub(super) fleet: Arc<RwLock<Fleet>>,
    pub(super) changed: watch::Sender<u64>,
    pub(super) budget: Budget,
    pub(super) retention: Retention,
    pub(super) resent: Resent,
}

pub(super) fn writer(mut conn: Connection, mut rx: mpsc::Receiver<Job>, mut w: Writer) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let evict = plan_evictions(&w, &batch);
        let result = match commit(&mut conn, &batch, &evict, &mut w) {
            Ok((counters, next_id, resent)) => {
                w.counters = counters;
                w.next_id = next_id;
                // After the fsync, before the 2xx: the sidecar never runs ahead of the disk.
                match w.ack.record(&counters) {
                    Ok(()) => w.ack_failing = false,
                    // Once per failing stretch, not once per commit.
                    Err(e) if !w.ack_failing => {
                        w.ack_failing = true;
                        tracing::warn!(error = %e, "cannot update the ack file: lost writes go unnoticed until it works again");
                    }
                    Err(_) => {}
                }
                let mut f = w.fleet.write().unwrap_or_else(|e| e.into_inner());
                f.discovered.evict(&evict);
                let mut reports = 0;
                for (i, job) in batch.iter().enumerate() {
                    if resent.contains(&i) {
                        continue;
                    }
                    reports += u64::from(matches!(job.op, WriteOp::Report(_)));
                    apply(&mut f, &job.op, job.received_ms);
                }
                w.health.add_reports(reports);
                f.version += 1;
                w.changed.send_replace(f.version);
                Ok(())
            }
            Err(e) => {
                w.retention.reset();
                w.resent.reset();
                w.health.observe(&e, "committing");
                tracing::error!(error = %e, batch = batch.len(), "group commit failed");
                Err(StoreError::from(e))
            }
        };
        for job in batch.drain(..) {
            // The requester may have gone away (client disconnected); the write stands.
            let _ = job.done.send(result.clone());
        }
        if w.retention.has_pending() && rx.is_empty() {
            prune_history(&mut conn, &mut w);
        }
    }
}

/// Retention's queued prunes, in a transaction of their own while no write is waiting.
fn prune_history(conn: &mut Connection, w: &mut Writer) {
    fn run(conn: &mut Connection, w: &mut Writer) -> rusqlite::Result<Counters> {
        let tx = conn.transaction()?;
        let mut counters = w.counters;
        counters.history -= w.retention.prune_pending(&tx)?;
        store_counters(&tx, &counters)?;
        tx.commit()?;
        Ok(counters)
    }
    match run(conn, w) {
        Ok(counters) => {
            w.counters = counters;
            // Best effort: the sidecar guards acknowledged writes, which a prune does not add.
            let _ = w.ack.record(&counters);
        }
        Err(e) => {
            w.retention.reset();
            w.health.observe(&e, "pruning the history");
            tracing::warn!(error = %e, "history retention: prune failed, retried later");
        }
    }
}

/// The store's counters, in the transaction that changed them.
fn store_counters(tx: &rusqlite::Transaction<'_>, c: &Counters) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE store_meta SET acked = ?1, history = ?2, discovered = ?3, crc = ?4 WHERE id = 1",
    )?
    .execute(params![c.acked, c.history, c.discovered, c.crc()])?;
    Ok(())
}

/// The history row an operation writes, if any (`id` filled in by [`commit`]).
fn history_row(op: &WriteOp, ms: i64) -> Option<(HistoryRow<'_>, Cow<'_, str>)> {
    let row = |node, kind, phase, status, message: Cow<'static, str>, actor| {
        (
            HistoryRow {
                id: 0,
                node,
                kind,
                service: None,
                phase,
                status,
                message: "",
                sent_at: None,
                received_ms: ms,
                actor,
            },
            message,
        )
    };
    Some(match op {
        WriteOp::Report(r) => (
            HistoryRow {
                id: 0,
                node: &r.node_id,
                kind: KIND_REPORT,
                service: Some(&r.service),
                phase: Some(r.phase.as_str()),
                status: Some(r.status.as_str()),
                message: "",
                sent_at: Some(&r.at),
                received_ms: ms,
                // For a report, who acted is the installation that sent it.
                actor: r.installation.as_deref(),
            },
            Cow::Borrowed(r.message.as_str()),
        ),
        WriteOp::Installed { node, actor } => row(
            node,
            KIND_INSTALLED,
            None,
            None,
            Cow::Borrowed("marked installed by the operator"),
            Some(actor.as_str()),
        ),
        WriteOp::Reprovision { node, actor } => row(
            node,
            KIND_REPROVISION,
            None,
            None,
            Cow::Borrowed("reprovision requested: the next PXE boot reinstalls"),
            Some(actor.as_str()),
        ),
        WriteOp::Provision { node, actor, step } => row(
            node,
            KIND_PROVISION,
            Some(step.step.as_str()),
            Some(if step.ok { "ok" } else { "error" }),
            Cow::Owned(provision_message(step)),
            Some(actor.as_str()),
        ),
        WriteOp::Enlisted {
            node,
            actor,
            message,
        } => row(
            node,
            KIND_ENLIST,
            None,
            None,
            Cow::Owned(message.clone()),
            Some(actor.as_str()),
        ),
        WriteOp::Discover { .. } | WriteOp::PruneDiscovered { .. } => return None,
    })
}

/// One transaction for the whole batch, the counters included; returns the new counters, the
/// next history id (applied by the caller only if this succeeds) and the positions of reports
/// that were resent (acknowledged, not written again: [`Resent`]).
fn commit(
    conn: &mut Connection,
    batch: &[Job],
    evict: &[String],
    w: &mut Writer,
) -> rusqlite::Result<(Counters, i64, Vec<usize>)> {
    let (mut counters, mut next_id) = (w.counters, w.next_id);
    let mut resent = Vec::new();
    let tx = conn.transaction()?;
    {
        let mut forget = tx.prepare_cached("DELETE FROM discovered WHERE mac = ?1")?;
        for mac in evict {
            counters.discovered -= forget.execute([mac])? as i64;
        }
        let mut hist = tx.prepare_cached(
            "INSERT INTO history (id, node, kind, service, phase, status, message, sent_at, received_ms, actor, crc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut seen =
            tx.prepare_cached("SELECT first_ms, count FROM discovered WHERE mac = ?1")?;
        let mut disc = tx.prepare_cached(
            "INSERT INTO discovered (mac, report, remote, first_ms, last_ms, count, crc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(mac) DO UPDATE SET report = excluded.report, remote = excluded.remote,
               last_ms = excluded.last_ms, count = excluded.count, crc = excluded.crc",
        )?;
        for (i, job) in batch.iter().enumerate() {
            let ms = job.received_ms;
            if let Some((row, message)) = history_row(&job.op, ms) {
                let row = HistoryRow {
                    id: next_id,
                    message: &message,
                    ..row
                };
                if matches!(job.op, WriteOp::Report(_)) && w.resent.check(&tx, &row)? {
                    resent.push(i);
                    continue;
                }
                hist.execute(params![
                    row.id,
                    row.node,
                    row.kind,
                    row.service,
                    row.phase,
                    row.status,
                    row.message,
                    row.sent_at,
                    row.received_ms,
                    row.actor,
                    row.crc()
                ])?;
                match &job.op {
                    WriteOp::Report(r) => {
                        counters.history -= w.retention.added(&tx, &r.node_id, &r.service)?;
                    }
                    WriteOp::Reprovision { node, .. } => w.retention.reprovisioned(node, row.id),
                    _ => {}
                }
                next_id += 1;
                counters.history += 1;
            } else if let WriteOp::PruneDiscovered { macs, .. } = &job.op {
                for mac in macs {
                    counters.discovered -= forget.execute([mac])? as i64;
                }
            } else if let WriteOp::Discover {
                mac, json, remote, ..
            } = &job.op
            {
                let json = json.as_str();
                let before: Option<(i64, i64)> = seen
                    .query_row([mac], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let (first_ms, count) = before.map_or((ms, 1), |(f, n)| (f, n + 1));
                let row = DiscoveredRow {
                    mac,
                    report: json,
                    remote: remote.as_deref(),
                    first_ms,
                    last_ms: ms,
                    count,
                };
                disc.execute(params![mac, json, remote, first_ms, ms, count, row.crc()])?;
                counters.discovered += i64::from(before.is_none());
            }
        }
        counters.acked += batch.len() as i64;
        store_counters(&tx, &counters)?;
    }
    tx.commit()?;
    Ok((counters, next_id, resent))
}

fn apply(f: &mut Fleet, op: &WriteOp, ms: i64) {
    match op {
        WriteOp::Report(r) => f.apply_report(r, ms),
        WriteOp::Installed { node, .. } => f.apply_installed(node, ms),
        WriteOp::Reprovision { node, .. } => f.apply_reprovision(node),
        WriteOp::Provision { node, step, .. } => {
            f.apply_provision(node, &provision_message(step), ms)
        }
        WriteOp::Enlisted { node, message, .. } => f.apply_enlisted(node, message),
        WriteOp::Discover {
            mac,
            report,
            json,
            remote,
        } => f
            .discovered
            .record(mac, report.clone(), json.len(), remote.clone(), ms),
        WriteOp::PruneDiscovered { macs, .. } => {
            for mac in macs {
                f.discovered.remove(mac);
            }
        }
    }
}

/// Discovered machines to delete in this batch's transaction so the table stays within its
/// budget with the batch's reports in it.
fn plan_evictions(w: &Writer, batch: &[Job]) -> Vec<String> {
    let incoming: Vec<(&str, usize)> = batch
        .iter()
        .filter_map(|j| match &j.op {
            WriteOp::Discover { mac, json, .. } => Some((mac.as_str(), json.len())),
            _ => None,
        })
        .collect();
    if incoming.is_empty() {
        return Vec::new();
    }
    let f = w.fleet.read().unwrap_or_else(|e| e.into_inner());
    f.discovered.plan_evictions(&incoming, w.budget)
}

/// How a provisioning step reads in the history and on the dashboard.
pub fn provision_message(step: &ProvisionStep) -> String {
    let mark = if step.ok { "" } else { "FAILED " };
    format!("provision {mark}{}: {}", step.step, step.message)
}
