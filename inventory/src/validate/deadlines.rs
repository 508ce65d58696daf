//! The join deadline against the fleet's size.
//!
//! A Raft leader applies one membership change at a time, and every joining node costs two
//! (added as a learner, then promoted: docs/admin-api.md, "Membership changes"). When a whole
//! fleet powers on together, the last node in that queue waits for all the others; bench/fleet.sh
//! measured 1,000 nodes at 200 ms per change (see the README). A deadline shorter than the
//! queue does not break the fleet — the join unit restarts and goes on — but it turns a normal
//! first boot into failed units and alarming logs, so the operator is told before.

use super::Rules;

/// What one membership change is assumed to take (the fleet simulator's default).
const CHANGE_SECS: f64 = 0.2;
/// What the rest of a join takes besides the queue (local health, catch-up, reports).
const MARGIN_SECS: u64 = 60;

pub(super) fn join_deadline_rules(r: &mut Rules<'_>) {
    let inv = &r.parsed.inventory;
    if r.broken("cluster.join_timeout_secs") || r.broken("cluster.bootstrap") {
        return;
    }
    let joiners = inv
        .nodes
        .iter()
        .filter(|n| !n.role.raft_services().is_empty())
        .filter(|n| !inv.cluster.bootstrap.contains(&n.hostname))
        .count();
    let queue = (joiners as f64 * 2.0 * CHANGE_SECS).ceil() as u64;
    let deadline = inv.cluster.join_timeout_secs;
    if queue + MARGIN_SECS > deadline {
        r.warning(
            None,
            "cluster.join_timeout_secs",
            format!(
                "{joiners} nodes join the Raft clusters after the founders; a leader applies one \
                 membership change at a time (two per node), so if they power on together the \
                 last waits about {queue}s at {ms} ms a change, more than join_timeout_secs = \
                 {deadline}: its join unit fails and restarts. Set cluster.join_timeout_secs to \
                 at least {}, or power the fleet on in batches",
                queue + MARGIN_SECS,
                ms = (CHANGE_SECS * 1000.0) as u64,
            ),
        );
    }
}
