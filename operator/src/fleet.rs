//! The inventory as the operator commands see the running fleet: which node runs which Raft
//! service and IAM, at which production address.

use plasma_inventory::inventory::{Inventory, Node, Service};

use crate::cluster::{CHAINFIRE, ClusterNode, FLAREDB};

pub fn cluster_node(inv: &Inventory, node: &Node) -> ClusterNode {
    let services = node.role.services();
    ClusterNode {
        hostname: node.hostname.clone(),
        address: node.production_ip.to_string(),
        bootstrap: inv.is_bootstrap(node),
        raft: services
            .iter()
            .filter_map(|s| match s {
                Service::Chainfire => Some(CHAINFIRE),
                Service::Flaredb => Some(FLAREDB),
                _ => None,
            })
            .collect(),
        iam: services.contains(&Service::Iam),
    }
}

pub fn cluster_nodes(inv: &Inventory) -> Vec<ClusterNode> {
    inv.nodes.iter().map(|n| cluster_node(inv, n)).collect()
}
