//! `plasmagen status` for a large fleet: a screenful however many nodes there are. One row per
//! node stops being readable long before 1,000 nodes (and `--wait` would end with a
//! thousand-line table), so above [`FULL_TABLE_MAX`] nodes a person gets the counts per state
//! and per service phase, then only the nodes that need them: failed and stuck ones.
//!
//! ```text
//! 1000 nodes: 875 joined, 100 in progress, 0 stuck, 25 failed, 0 pending
//!   chainfire: 100 joining, 874 joined, 1 bootstrapped, 25 failed
//!   flaredb: 2 joined, 1 bootstrapped
//! 25 need attention (25 failed, 0 stuck):
//! NODE   ROLE    STATE   CHAINFIRE  FLAREDB  IN PHASE  LAST MESSAGE
//! n0007  worker  failed  failed     n/a      1m02s     join refused: …
//! … and 5 more (plasmagen status --all or --json lists every node)
//! ```

use std::collections::{BTreeMap, BTreeSet};

use super::{counts_line, node_rows, unknown_line};
use crate::collector::fleet::NodeState;
use crate::collector::view::{FleetView, NodeView};
use plasma_wire::Phase;

/// Fleets up to this many nodes get the full table.
pub const FULL_TABLE_MAX: usize = 50;
/// Nodes needing attention listed at most (the rest are counted).
pub const ATTENTION_MAX: usize = 20;
/// Names listed at most on one line (`failed: a, b, … and K more`).
pub const NAMES_MAX: usize = 20;
/// Last messages in the attention rows are cut to this many characters (a report's message may
/// hold 8 KiB; the full text is in `--json` and the node's history).
const MESSAGE_MAX: usize = 100;

/// Counts, phases per service, the failed and stuck nodes (at most [`ATTENTION_MAX`]).
pub fn summary(fleet: &FleetView) -> String {
    let mut out = counts_line(fleet);
    for (service, counts) in phase_counts(fleet) {
        out.push_str(&format!("  {service}: {counts}\n"));
    }
    // Failed before stuck: a failed node stops the rollout (`--wait` exits on it).
    let failed = fleet.nodes.iter().filter(|n| n.state == NodeState::Failed);
    let stuck = fleet.nodes.iter().filter(|n| n.state == NodeState::Stuck);
    let attention: Vec<&NodeView> = failed.chain(stuck).collect();
    if attention.is_empty() {
        out.push_str("no node needs attention (none failed or stuck)\n");
    } else {
        out.push_str(&format!(
            "{} need attention ({} failed, {} stuck):\n",
            attention.len(),
            fleet.summary.failed,
            fleet.summary.stuck
        ));
        let shown = &attention[..attention.len().min(ATTENTION_MAX)];
        out.push_str(&node_rows(shown, MESSAGE_MAX));
    }
    let more = attention.len().saturating_sub(ATTENTION_MAX);
    if more > 0 {
        out.push_str(&format!(
            "… and {more} more (plasmagen status --all or --json lists every node)\n"
        ));
    } else {
        out.push_str(&format!(
            "(a summary of {} nodes: --all prints one row per node)\n",
            fleet.nodes.len()
        ));
    }
    out.push_str(&unknown_line(fleet));
    out
}

/// Per service, `N phase` in the agent's phase order, then nodes whose Raft service has not
/// reported yet. Raft services first (in role order), then the others by name.
fn phase_counts(fleet: &FleetView) -> Vec<(String, String)> {
    let mut raft: Vec<&str> = Vec::new();
    for n in &fleet.nodes {
        for r in &n.raft_services {
            if !raft.contains(&r.as_str()) {
                raft.push(r);
            }
        }
    }
    let mut counts: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    let mut silent: BTreeMap<&str, u64> = BTreeMap::new();
    for n in &fleet.nodes {
        for s in &n.services {
            *counts
                .entry(&s.service)
                .or_default()
                .entry(&s.phase)
                .or_default() += 1;
        }
        for r in &n.raft_services {
            if !n.services.iter().any(|s| &s.service == r) {
                *silent.entry(r).or_default() += 1;
            }
        }
    }
    let others: BTreeSet<&str> = counts
        .keys()
        .copied()
        .filter(|s| !raft.contains(s))
        .collect();
    raft.iter()
        .copied()
        .chain(others)
        .filter_map(|svc| {
            let by_phase = counts.get(svc);
            let mut parts: Vec<String> = Vec::new();
            let known = Phase::ALL.map(Phase::as_str);
            for p in known {
                if let Some(k) = by_phase.and_then(|m| m.get(p)) {
                    parts.push(format!("{k} {p}"));
                }
            }
            // A phase this binary does not know (a newer collector): still counted.
            for (p, k) in by_phase.into_iter().flatten() {
                if !known.contains(p) {
                    parts.push(format!("{k} {p}"));
                }
            }
            if let Some(k) = silent.get(svc) {
                parts.push(format!("{k} not reported"));
            }
            (!parts.is_empty()).then(|| (svc.to_string(), parts.join(", ")))
        })
        .collect()
}

/// `a, b, c` for up to [`NAMES_MAX`] names, then `… and K more`.
pub fn some_names(names: &[&str]) -> String {
    let mut s = names[..names.len().min(NAMES_MAX)].join(", ");
    if names.len() > NAMES_MAX {
        s.push_str(&format!(" … and {} more", names.len() - NAMES_MAX));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::view::{ServiceView, Summary};

    fn node(i: usize, state: NodeState, phase: Option<&str>) -> NodeView {
        NodeView {
            hostname: format!("n{i:04}"),
            fqdn: format!("n{i:04}.example.com"),
            role: "worker".into(),
            mac: "52:54:00:00:00:01".into(),
            provisioning_ip: "10.0.0.1".into(),
            bootstrap: false,
            state,
            installed: false,
            installed_by: None,
            installed_at: None,
            raft_services: vec!["chainfire".into()],
            services: phase
                .map(|p| ServiceView {
                    service: "chainfire".into(),
                    phase: p.into(),
                    status: "in-progress".into(),
                    message: String::new(),
                    since: String::new(),
                    time_in_phase_secs: 5,
                    last_report_at: String::new(),
                    sent_at: String::new(),
                })
                .into_iter()
                .collect(),
            last_message: phase.map(|p| format!("{p} {}", "x".repeat(300))),
            last_report_at: None,
            time_in_phase_secs: Some(5),
            reports: 1,
            history: None,
            history_before: None,
            discovered: None,
        }
    }

    fn fleet(nodes: Vec<NodeView>) -> FleetView {
        let summary = Summary::of(&nodes);
        FleetView {
            cluster: "c".into(),
            generated_at: String::new(),
            stuck_after_secs: 600,
            summary,
            nodes,
            unknown_discovered: vec![],
            unknown_discovered_total: 0,
            rejected_unknown_nodes: vec![],
        }
    }

    #[test]
    fn a_large_fleet_is_counted_and_only_failed_then_stuck_nodes_are_listed() {
        let nodes = (0..1000)
            .map(|i| match i % 100 {
                1 => node(i, NodeState::Stuck, Some("joining")),
                2 | 3 => node(i, NodeState::Failed, Some("failed")),
                4 => node(i, NodeState::Pending, None),
                _ => node(i, NodeState::Joined, Some("joined")),
            })
            .collect();
        let text = super::super::human(&fleet(nodes), false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "1000 nodes: 960 joined, 0 in progress, 10 stuck, 20 failed, 10 pending"
        );
        assert_eq!(
            lines[1],
            "  chainfire: 10 joining, 960 joined, 20 failed, 10 not reported"
        );
        assert_eq!(lines[2], "30 need attention (20 failed, 10 stuck):");
        assert!(lines[3].starts_with("NODE "), "{text}");
        // The 20 failed nodes fill the list; the 10 stuck ones are counted.
        assert!(lines[4].starts_with("n0002 ") && lines[4].contains("failed"));
        assert!(lines[23].starts_with("n0903 "), "{text}");
        assert!(
            lines[4].chars().count() < 160,
            "messages are cut: {}",
            lines[4]
        );
        assert_eq!(
            lines[24],
            "… and 10 more (plasmagen status --all or --json lists every node)"
        );
        assert_eq!(lines.len(), 25, "{text}");
    }

    #[test]
    fn small_fleets_and_all_keep_the_full_table() {
        let small = fleet(
            (0..FULL_TABLE_MAX)
                .map(|i| node(i, NodeState::Joined, Some("joined")))
                .collect(),
        );
        assert_eq!(
            super::super::human(&small, false).lines().count(),
            FULL_TABLE_MAX + 2
        );
        let large = fleet(
            (0..60)
                .map(|i| node(i, NodeState::Stuck, Some("joining")))
                .collect(),
        );
        assert_eq!(super::super::human(&large, true).lines().count(), 62);
        let text = super::super::human(&large, false);
        assert!(
            text.contains("60 need attention (0 failed, 60 stuck):"),
            "{text}"
        );
        assert_eq!(
            text.lines().count(),
            1 + 1 + 1 + 1 + ATTENTION_MAX + 1,
            "{text}"
        );
    }

    #[test]
    fn name_lists_are_bounded() {
        let names: Vec<String> = (0..25).map(|i| format!("n{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(some_names(&refs[..2]), "n0, n1");
        assert!(some_names(&refs).ends_with("n19 … and 5 more"));
    }
}
