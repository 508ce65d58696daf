//! `plasmagen decommission`: what a node is in the running cluster, whether the groups keep
//! their quorum without it, and its removal at each group's leader (runbook 7.6).

use plasma_wire::admin::Member;

use crate::cluster::{AdminClient, CHAINFIRE, ClusterNode, FLAREDB, RaftService};

/// The node's place in one Raft group.
#[derive(Debug, Clone)]
pub struct Membership {
    pub service: RaftService,
    pub member: Option<Member>,
    /// After removing the node: (healthy members, members).
    pub after: (usize, usize),
    pub leader: Option<String>,
}

impl Membership {
    /// A majority of what is left must be healthy, or the group stops accepting writes.
    pub fn keeps_quorum(&self) -> bool {
        let (healthy, total) = self.after;
        total == 0 || healthy * 2 > total
    }
}

/// Ask the other members (never the node itself first: it may be half-dead) about every
/// group the node belongs to, FlareDB first (it is removed first: it points at Chainfire).
pub fn memberships(
    client: &AdminClient,
    fleet: &[ClusterNode],
    node: &ClusterNode,
) -> Result<Vec<Membership>, String> {
    let mut out = Vec::new();
    for svc in [FLAREDB, CHAINFIRE]
        .into_iter()
        .filter(|s| node.raft.contains(s))
    {
        let mut askable: Vec<&ClusterNode> = fleet
            .iter()
            .filter(|n| n.raft.contains(&svc) && n.hostname != node.hostname)
            .collect();
        askable.push(node);
        let members = askable
            .iter()
            .find_map(|n| client.members(&n.address, svc.port).ok())
            .ok_or_else(|| format!("{}: no member answers /admin/cluster/members", svc.name))?;
        let rest: Vec<&Member> = members
            .members
            .iter()
            .filter(|m| m.id != node.hostname)
            .collect();
        out.push(Membership {
            service: svc,
            member: members
                .members
                .iter()
                .find(|m| m.id == node.hostname)
                .cloned(),
            after: (
                rest.iter().filter(|m| m.status == "healthy").count(),
                rest.len(),
            ),
            leader: members
                .members
                .iter()
                .find(|m| m.role == "leader")
                .map(|m| m.id.clone()),
        });
    }
    Ok(out)
}

/// `DELETE /admin/member/<node>` at the group's leader (or, without one known, at any other
/// member, which redirects), then membership read back without it.
pub fn remove(
    client: &AdminClient,
    fleet: &[ClusterNode],
    node: &ClusterNode,
    m: &Membership,
) -> Result<(), String> {
    let svc = m.service;
    let at = m
        .leader
        .as_deref()
        .and_then(|l| fleet.iter().find(|n| n.hostname == l))
        .or_else(|| {
            fleet
                .iter()
                .find(|n| n.raft.contains(&svc) && n.hostname != node.hostname)
        })
        .ok_or_else(|| format!("{}: no other member to ask", svc.name))?;
    let root = format!("https://{}:{}", at.address, svc.port);
    client.remove_member(&root, &node.hostname)?;
    let members = client.members(&at.address, svc.port)?;
    if members.members.iter().any(|x| x.id == node.hostname) {
        return Err(format!(
            "{}: {} is still listed after the removal",
            svc.name, node.hostname
        ));
    }
    Ok(())
}
