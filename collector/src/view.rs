//! JSON documents of the read API (`GET /v1/nodes`, `GET /v1/nodes/{id}`), shared with
//! `plasmagen status`, which deserializes them.

use plasma_inventory::inventory::{Inventory, Node};
use plasma_wire::discover::DiscoverReport;
use serde::{Deserialize, Serialize};

use super::fleet::{Discovered, Fleet, NodeLive, NodeState};
use super::store::{HistoryEntry, format_ms};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetView {
    pub cluster: String,
    pub generated_at: String,
    pub stuck_after_secs: u64,
    pub summary: Summary,
    pub nodes: Vec<NodeView>,
    /// Discovered MACs that match no inventory node, as summaries, the most recently seen
    /// [`MAX_UNKNOWN_LISTED`] of them: every one is listed by `GET /v1/discovered` (pages) and
    /// the facts are behind `GET /v1/discovered/{mac}` (a fleet list stays small however many
    /// machines report).
    pub unknown_discovered: Vec<DiscoveredSummary>,
    /// How many discovered MACs match no inventory node (also those not listed).
    #[serde(default)]
    pub unknown_discovered_total: u64,
    /// Reports refused because their node_id is not in the inventory.
    pub rejected_unknown_nodes: Vec<RejectedView>,
}

/// Unknown machines listed in `GET /v1/nodes` at most.
pub const MAX_UNKNOWN_LISTED: usize = 1_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub total: u64,
    pub joined: u64,
    pub failed: u64,
    pub stuck: u64,
    pub in_progress: u64,
    pub installed: u64,
    pub pending: u64,
}

impl Summary {
    /// How many of `nodes` are in each state.
    pub fn of(nodes: &[NodeView]) -> Summary {
        let mut summary = Summary {
            total: nodes.len() as u64,
            ..Summary::default()
        };
        for n in nodes {
            match n.state {
                NodeState::Joined => summary.joined += 1,
                NodeState::Failed => summary.failed += 1,
                NodeState::Stuck => summary.stuck += 1,
                NodeState::InProgress => summary.in_progress += 1,
                NodeState::Installed => summary.installed += 1,
                NodeState::Pending => summary.pending += 1,
            }
        }
        summary
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub hostname: String,
    pub fqdn: String,
    pub role: String,
    pub mac: String,
    pub provisioning_ip: String,
    pub bootstrap: bool,
    pub state: NodeState,
    pub installed: bool,
    pub installed_by: Option<String>,
    pub installed_at: Option<String>,
    /// The Raft services the node must join (`chainfire`, plus `flaredb` on control planes).
    pub raft_services: Vec<String>,
    pub services: Vec<ServiceView>,
    pub last_message: Option<String>,
    pub last_report_at: Option<String>,
    /// Time in the phase of the most recently reported service.
    pub time_in_phase_secs: Option<u64>,
    pub reports: u64,
    /// Only in `GET /v1/nodes/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntry>>,
    /// Older history exists: pass this as `before=` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_before: Option<i64>,
    /// Unverified facts a discovery image reported for this node's MAC (`GET /v1/nodes/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered: Option<DiscoveredView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    pub service: String,
    pub phase: String,
    pub status: String,
    pub message: String,
    pub since: String,
    pub time_in_phase_secs: u64,
    pub last_report_at: String,
    pub sent_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredView {
    pub mac: String,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
    pub remote: Option<String>,
    pub facts: DiscoverReport,
}

/// A discovered machine in the fleet list: bounded, whatever its report held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveredSummary {
    pub mac: String,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
    pub remote: Option<String>,
    /// The machine's own hostname, cut to [`SUMMARY_TEXT`] bytes.
    pub hostname: Option<String>,
    pub firmware: Option<String>,
    /// `<model> ×<logical CPUs>`, cut to [`SUMMARY_TEXT`] bytes.
    pub cpu: String,
    pub memory_bytes: u64,
    pub nics: usize,
    pub disks: usize,
    /// The largest disk, in bytes.
    pub largest_disk_bytes: u64,
}

/// Longest text of a summary field, in bytes.
pub const SUMMARY_TEXT: usize = 96;

fn cut(s: &str) -> String {
    let mut end = s.len().min(SUMMARY_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

pub fn discovered_summary(mac: &str, d: &Discovered) -> DiscoveredSummary {
    let f = &d.report;
    DiscoveredSummary {
        mac: mac.to_string(),
        first_seen: format_ms(d.first_ms),
        last_seen: format_ms(d.last_ms),
        count: d.count,
        remote: d.remote.clone(),
        hostname: f.hostname.as_deref().map(cut),
        firmware: f.firmware.as_deref().map(cut),
        cpu: cut(&format!("{} ×{}", f.cpu.model, f.cpu.logical_cpus)),
        memory_bytes: f.memory_bytes,
        nics: f.nics.len(),
        disks: f.disks.len(),
        largest_disk_bytes: f.disks.iter().map(|d| d.size_bytes).max().unwrap_or(0),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedView {
    pub node_id: String,
    pub count: u64,
    pub last_at: String,
    pub peer: Option<String>,
}

fn secs_between(now_ms: i64, then_ms: i64) -> u64 {
    u64::try_from((now_ms - then_ms).max(0) / 1000).unwrap_or(0)
}

pub fn discovered_view(mac: &str, d: &Discovered) -> DiscoveredView {
    DiscoveredView {
        mac: mac.to_string(),
        first_seen: format_ms(d.first_ms),
        last_seen: format_ms(d.last_ms),
        count: d.count,
        remote: d.remote.clone(),
        facts: d.report.clone(),
    }
}

pub fn node_view(
    inv: &Inventory,
    fleet: &Fleet,
    node: &Node,
    now_ms: i64,
    stuck_after_ms: i64,
) -> NodeView {
    let empty = NodeLive::default();
    let live = fleet.nodes.get(&node.hostname).unwrap_or(&empty);
    let services: Vec<ServiceView> = live
        .services
        .iter()
        .map(|(name, s)| ServiceView {
            service: name.clone(),
            phase: s.phase.as_str().to_string(),
            status: s.status.as_str().to_string(),
            message: s.message.clone(),
            since: format_ms(s.since_ms),
            time_in_phase_secs: secs_between(now_ms, s.since_ms),
            last_report_at: format_ms(s.last_ms),
            sent_at: s.sent_at.clone(),
        })
        .collect();
    let latest = live.services.values().max_by_key(|s| s.last_ms);
    NodeView {
        hostname: node.hostname.clone(),
        fqdn: inv.fqdn(node),
        role: node.role.as_str().to_string(),
        mac: node.mac.to_string(),
        provisioning_ip: node.provisioning_ip.to_string(),
        bootstrap: inv.is_bootstrap(node),
        state: fleet.state_of(node, now_ms, stuck_after_ms),
        installed: live.installed.is_some(),
        installed_by: live.installed.as_ref().map(|i| i.by.clone()),
        installed_at: live.installed.as_ref().map(|i| format_ms(i.at_ms)),
        raft_services: node
            .role
            .raft_services()
            .iter()
            .map(|s| s.name().to_string())
            .collect(),
        services,
        last_message: live.last_message.clone(),
        last_report_at: live.last_ms.map(format_ms),
        time_in_phase_secs: latest.map(|s| secs_between(now_ms, s.since_ms)),
        reports: live.reports,
        history: None,
        history_before: None,
        discovered: None,
    }
}

pub fn fleet_view(inv: &Inventory, fleet: &Fleet, now_ms: i64, stuck_after_ms: i64) -> FleetView {
    let nodes: Vec<NodeView> = inv
        .nodes
        .iter()
        .map(|n| node_view(inv, fleet, n, now_ms, stuck_after_ms))
        .collect();
    let summary = Summary::of(&nodes);
    let known: std::collections::HashSet<&str> = inv.nodes.iter().map(|n| n.mac.as_str()).collect();
    // From the set's index by last report: no sort of every machine on each read.
    let unknown_listed: Vec<DiscoveredSummary> = fleet
        .discovered
        .most_recent()
        .filter(|(mac, _)| !known.contains(mac.as_str()))
        .take(MAX_UNKNOWN_LISTED)
        .map(|(mac, d)| discovered_summary(mac, d))
        .collect();
    let inventory_discovered = known
        .iter()
        .filter(|mac| fleet.discovered.contains_key(mac))
        .count();
    let unknown_total = (fleet.discovered.len() - inventory_discovered) as u64;
    FleetView {
        cluster: inv.cluster.name.clone(),
        generated_at: format_ms(now_ms),
        stuck_after_secs: u64::try_from(stuck_after_ms / 1000).unwrap_or(0),
        summary,
        nodes,
        unknown_discovered: unknown_listed,
        unknown_discovered_total: unknown_total,
        rejected_unknown_nodes: fleet
            .rejected
            .values()
            .map(|r| RejectedView {
                node_id: r.node_id.clone(),
                count: r.count,
                last_at: format_ms(r.last_ms),
                peer: r.peer.clone(),
            })
            .collect(),
    }
}
