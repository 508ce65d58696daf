//! The writer thread: takes every queued write (up to [`MAX_BATCH`]), commits them in one
//! transaction, applies them to the in-memory [`Fleet`] and only then answers each requester.

use std::sync::{Arc, RwLock};

use plasma_wire::Report;
use plasma_wire::discover::DiscoverReport;
use plasma_wire::report::ProvisionStep;
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    KIND_ENLIST, KIND_INSTALLED, KIND_PROVISION, KIND_REPORT, KIND_REPROVISION, MAX_BATCH,
};
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
        remote: Option<String>,
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

pub(super) struct Job {
    pub(super) op: WriteOp,
    pub(super) received_ms: i64,
    pub(super) done: oneshot::Sender<Result<(), StoreError>>,
}

pub(super) fn writer(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    fleet: Arc<RwLock<Fleet>>,
    changed: watch::Sender<u64>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let result = commit(&mut conn, &batch).map_err(StoreError::from);
        match &result {
            Ok(()) => {
                let mut f = fleet.write().unwrap_or_else(|e| e.into_inner());
                for job in &batch {
                    apply(&mut f, &job.op, job.received_ms);
                }
                f.version += 1;
                changed.send_replace(f.version);
            }
            Err(e) => tracing::error!(error = %e, batch = batch.len(), "group commit failed"),
        }
        for job in batch.drain(..) {
            // The requester may have gone away (client disconnected); the write stands.
            let _ = job.done.send(result.clone());
        }
    }
}

fn commit(conn: &mut Connection, batch: &[Job]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut hist = tx.prepare_cached(
            "INSERT INTO history (node, kind, service, phase, status, message, sent_at, received_ms, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let mut disc = tx.prepare_cached(
            "INSERT INTO discovered (mac, report, remote, first_ms, last_ms, count)
             VALUES (?1, ?2, ?3, ?4, ?4, 1)
             ON CONFLICT(mac) DO UPDATE SET report = excluded.report, remote = excluded.remote,
               last_ms = excluded.last_ms, count = count + 1",
        )?;
        for job in batch {
            let ms = job.received_ms;
            match &job.op {
                WriteOp::Report(r) => {
                    hist.execute(params![
                        r.node_id,
                        KIND_REPORT,
                        r.service,
                        r.phase.as_str(),
                        r.status.as_str(),
                        r.message,
                        r.at,
                        ms,
                        Option::<String>::None
                    ])?;
                }
                WriteOp::Installed { node, actor } => {
                    hist.execute(params![
                        node,
                        KIND_INSTALLED,
                        None::<String>,
                        None::<String>,
                        None::<String>,
                        "marked installed by the operator",
                        None::<String>,
                        ms,
                        actor
                    ])?;
                }
                WriteOp::Reprovision { node, actor } => {
                    hist.execute(params![
                        node,
                        KIND_REPROVISION,
                        None::<String>,
                        None::<String>,
                        None::<String>,
                        "reprovision requested: the next PXE boot reinstalls",
                        None::<String>,
                        ms,
                        actor
                    ])?;
                }
                WriteOp::Provision { node, actor, step } => {
                    hist.execute(params![
                        node,
                        KIND_PROVISION,
                        None::<String>,
                        step.step,
                        if step.ok { "ok" } else { "error" },
                        provision_message(step),
                        None::<String>,
                        ms,
                        actor
                    ])?;
                }
                WriteOp::Enlisted {
                    node,
                    actor,
                    message,
                } => {
                    hist.execute(params![
                        node,
                        KIND_ENLIST,
                        None::<String>,
                        None::<String>,
                        None::<String>,
                        message,
                        None::<String>,
                        ms,
                        actor
                    ])?;
                }
                WriteOp::Discover {
                    mac,
                    report,
                    remote,
                } => {
                    let json = serde_json::to_string(report).unwrap_or_default();
                    disc.execute(params![mac, json, remote, ms])?;
                }
            }
        }
    }
    tx.commit()
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
            remote,
        } => f.apply_discover(mac, report.clone(), remote.clone(), ms),
    }
}

/// How a provisioning step reads in the history and on the dashboard.
pub fn provision_message(step: &ProvisionStep) -> String {
    let mark = if step.ok { "" } else { "FAILED " };
    format!("provision {mark}{}: {}", step.step, step.message)
}
