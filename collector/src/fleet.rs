//! The fleet as the collector sees it, in memory: the latest phase per node and service,
//! install state, discovered machines. Rebuilt from the database's history at start and updated
//! by the writer after each commit, so what the API shows is always what is durable.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use plasma_inventory::inventory::{Inventory, Node};
use plasma_wire::{Phase, Report, ReportStatus};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceLive {
    pub phase: Phase,
    pub status: ReportStatus,
    pub message: String,
    /// When the collector first saw the service in this phase (ms since the epoch).
    pub since_ms: i64,
    pub last_ms: i64,
    /// `at` of the latest report, as the node sent it.
    pub sent_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledMark {
    /// `report` (the installed system reported) or `operator` (mark-installed).
    pub by: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NodeLive {
    pub services: BTreeMap<String, ServiceLive>,
    pub installed: Option<InstalledMark>,
    pub last_ms: Option<i64>,
    pub last_message: Option<String>,
    /// Reports accepted since the collector's database was created.
    pub reports: u64,
    /// An operator asked for a reinstall: only a fresh system's `booted` report (or an operator
    /// mark) counts as installed again, not a late progress report from the old system.
    pub awaiting_boot: bool,
    /// The installation whose reports count ([`Report::installation`]), once one reported it.
    pub installation: Option<String>,
    /// Installations a reprovision replaced: their reports are stored and shown, and change
    /// nothing (the old system's restart-looping join unit keeps sending `booted`).
    pub retired: BTreeSet<String>,
    /// Reports from retired installations since the collector started.
    pub ignored: u64,
}

pub use crate::discovered::{Discovered, DiscoveredSet};

/// A report for a node that is not in the inventory, refused with 403.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub node_id: String,
    pub count: u64,
    pub last_ms: i64,
    pub peer: Option<String>,
}

/// At most this many distinct unknown node ids are remembered for the dashboard.
const MAX_REJECTED_IDS: usize = 256;

#[derive(Debug, Default)]
pub struct Fleet {
    pub nodes: HashMap<String, NodeLive>,
    pub discovered: DiscoveredSet,
    pub rejected: BTreeMap<String, Rejected>,
    /// Bumped on every change; the dashboard's event stream sends it.
    pub version: u64,
}

/// Overall state of a node, from its services' phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeState {
    /// Nothing heard yet.
    Pending,
    /// Marked installed by the operator, no report yet.
    Installed,
    InProgress,
    /// No report for longer than `--stuck-after`, neither joined nor failed.
    Stuck,
    Failed,
    /// Every Raft service of its role joined (or bootstrapped).
    Joined,
}

impl NodeState {
    pub const ALL: [NodeState; 6] = [
        NodeState::Pending,
        NodeState::Installed,
        NodeState::InProgress,
        NodeState::Stuck,
        NodeState::Failed,
        NodeState::Joined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Pending => "pending",
            NodeState::Installed => "installed",
            NodeState::InProgress => "in-progress",
            NodeState::Stuck => "stuck",
            NodeState::Failed => "failed",
            NodeState::Joined => "joined",
        }
    }
}

impl Fleet {
    pub fn new(inv: &Inventory) -> Fleet {
        let mut f = Fleet::default();
        f.add_nodes(inv);
        f
    }

    /// A row for every node of `inv` that has none (an enlist added nodes); live state of the
    /// others stays. Its MACs are the ones discovery never evicts.
    pub fn add_nodes(&mut self, inv: &Inventory) {
        for n in &inv.nodes {
            self.nodes.entry(n.hostname.clone()).or_default();
        }
        self.discovered
            .protect(inv.nodes.iter().map(|n| n.mac.as_str()));
    }

    pub fn apply_report(&mut self, r: &Report, received_ms: i64) {
        let Some(node) = self.nodes.get_mut(&r.node_id) else {
            return;
        };
        if let Some(id) = &r.installation {
            if node.retired.contains(id) {
                node.ignored += 1;
                node.last_message = Some(format!(
                    "ignored: {} {} from the installation a reprovision replaced ({}): {}",
                    r.service,
                    r.phase,
                    &id[..8.min(id.len())],
                    r.message
                ));
                return;
            }
            node.installation = Some(id.clone());
        }
        let since_ms = match node.services.get(&r.service) {
            Some(s) if s.phase == r.phase => s.since_ms,
            _ => received_ms,
        };
        node.services.insert(
            r.service.clone(),
            ServiceLive {
                phase: r.phase,
                status: r.status,
                message: r.message.clone(),
                since_ms,
                last_ms: received_ms,
                sent_at: r.at.clone(),
            },
        );
        // Every phase is `Booted` or later and only an installed system holds its certificate.
        let counts = if node.awaiting_boot {
            r.phase == Phase::Booted
        } else {
            r.phase >= Phase::Booted
        };
        if node.installed.is_none() && counts {
            node.awaiting_boot = false;
            node.installed = Some(InstalledMark {
                by: "report".into(),
                at_ms: received_ms,
            });
        }
        node.last_ms = Some(received_ms);
        node.last_message = Some(format!("{} {}: {}", r.service, r.phase, r.message));
        node.reports += 1;
    }

    pub fn apply_installed(&mut self, hostname: &str, at_ms: i64) {
        if let Some(node) = self.nodes.get_mut(hostname) {
            node.awaiting_boot = false;
            node.installed = Some(InstalledMark {
                by: "operator".into(),
                at_ms,
            });
            node.last_message = Some("marked installed by the operator".into());
        }
    }

    /// A step of `plasmagen provision`: the dashboard's last message for the node.
    pub fn apply_provision(&mut self, hostname: &str, message: &str, at_ms: i64) {
        if let Some(node) = self.nodes.get_mut(hostname) {
            node.last_message = Some(message.to_string());
            node.last_ms = Some(at_ms);
        }
    }

    /// Enlisted from discovery: the message only. Nothing runs on the node yet, so its
    /// "stuck" clock does not start here.
    pub fn apply_enlisted(&mut self, hostname: &str, message: &str) {
        if let Some(node) = self.nodes.get_mut(hostname) {
            node.last_message = Some(message.to_string());
        }
    }

    /// Runbook 9.2: the next PXE boot reinstalls, and the old phases no longer mean anything.
    pub fn apply_reprovision(&mut self, hostname: &str) {
        if let Some(node) = self.nodes.get_mut(hostname) {
            node.installed = None;
            node.awaiting_boot = true;
            node.services.clear();
            if let Some(id) = node.installation.take() {
                node.retired.insert(id);
            }
            node.last_message = Some("reprovision requested by the operator".into());
        }
    }

    pub fn record_rejected(&mut self, node_id: &str, peer: Option<String>, at_ms: i64) {
        // A node certificate may send any node_id: kept no longer than a DNS name, so the
        // list (MAX_REJECTED_IDS entries, shown in every /v1/nodes) stays small.
        let node_id = bounded_id(node_id);
        let node_id = node_id.as_str();
        if let Some(r) = self.rejected.get_mut(node_id) {
            r.count += 1;
            r.last_ms = at_ms;
            r.peer = peer;
        } else if self.rejected.len() < MAX_REJECTED_IDS {
            self.rejected.insert(
                node_id.to_string(),
                Rejected {
                    node_id: node_id.to_string(),
                    count: 1,
                    last_ms: at_ms,
                    peer,
                },
            );
        }
        self.version += 1;
    }

    pub fn is_installed(&self, hostname: &str) -> bool {
        self.nodes
            .get(hostname)
            .is_some_and(|n| n.installed.is_some())
    }

    pub fn state_of(&self, node: &Node, now_ms: i64, stuck_after_ms: i64) -> NodeState {
        let Some(live) = self.nodes.get(&node.hostname) else {
            return NodeState::Pending;
        };
        if live.services.values().any(|s| s.phase == Phase::Failed) {
            return NodeState::Failed;
        }
        let raft = node.role.raft_services();
        let joined = !raft.is_empty()
            && raft.iter().all(|s| {
                live.services
                    .get(s.name())
                    .is_some_and(|l| l.phase.is_member())
            });
        if joined {
            return NodeState::Joined;
        }
        let last = live.last_ms.or(live.installed.as_ref().map(|i| i.at_ms));
        match last {
            Some(t) if now_ms - t > stuck_after_ms => NodeState::Stuck,
            _ if !live.services.is_empty() => NodeState::InProgress,
            _ if live.installed.is_some() => NodeState::Installed,
            _ => NodeState::Pending,
        }
    }
}

/// The longest refused node id kept, in bytes (a DNS name's limit).
pub const MAX_REJECTED_ID: usize = 253;

/// `id` cut to [`MAX_REJECTED_ID`] bytes at a character boundary, marked with `…`.
fn bounded_id(id: &str) -> String {
    if id.len() <= MAX_REJECTED_ID {
        return id.to_string();
    }
    let mut end = MAX_REJECTED_ID;
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &id[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, service: &str, phase: Phase) -> Report {
        Report {
            installation: None,
            node_id: node.into(),
            service: service.into(),
            phase,
            status: ReportStatus::InProgress,
            message: "m".into(),
            at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn time_in_phase_starts_at_phase_change() {
        let mut f = Fleet::default();
        f.nodes.insert("n".into(), NodeLive::default());
        f.apply_report(&report("n", "chainfire", Phase::Joining), 1000);
        f.apply_report(&report("n", "chainfire", Phase::Joining), 2000);
        let s = &f.nodes["n"].services["chainfire"];
        assert_eq!((s.since_ms, s.last_ms), (1000, 2000));
        f.apply_report(&report("n", "chainfire", Phase::Joined), 3000);
        assert_eq!(f.nodes["n"].services["chainfire"].since_ms, 3000);
        assert!(f.is_installed("n"));
        f.apply_reprovision("n");
        assert!(!f.is_installed("n"));
        assert!(f.nodes["n"].services.is_empty());
        // A late report from the old system does not end the reinstall; a fresh boot does.
        f.apply_report(&report("n", "chainfire", Phase::Joined), 4000);
        assert!(!f.is_installed("n"));
        f.apply_report(&report("n", "system", Phase::Booted), 5000);
        assert!(f.is_installed("n"));
        // Reports for nodes outside the inventory never create state.
        f.apply_report(&report("ghost", "chainfire", Phase::Joined), 1);
        assert!(!f.nodes.contains_key("ghost"));
    }

    #[test]
    fn refused_ids_are_kept_short() {
        let mut f = Fleet::default();
        let long = "é".repeat(40_000);
        f.record_rejected(&long, None, 1);
        f.record_rejected(&long, None, 2);
        let ids: Vec<&String> = f.rejected.keys().collect();
        assert_eq!(ids.len(), 1, "the same long id is one entry");
        assert!(
            ids[0].len() <= MAX_REJECTED_ID + '…'.len_utf8(),
            "{}",
            ids[0].len()
        );
        assert!(ids[0].ends_with('…'));
        assert_eq!(f.rejected[ids[0]].count, 2);
    }
}
