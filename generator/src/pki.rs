//! Inventory → the PKI store's input. The certificates themselves are plasma-pki's business.

use std::net::IpAddr;

use plasma_pki::store::{NodeIdentity, StoreInput};

use crate::inventory::Inventory;

pub fn store_input(inv: &Inventory, renew_before_days: u32, prune_secrets: bool) -> StoreInput {
    let nodes = inv
        .nodes
        .iter()
        .map(|n| NodeIdentity {
            hostname: n.hostname.clone(),
            fqdn: inv.fqdn(n),
            ips: vec![IpAddr::V4(n.production_ip), IpAddr::V4(n.provisioning_ip)],
        })
        .collect();
    let mut input = StoreInput::new(
        &inv.cluster.name,
        nodes,
        IpAddr::V4(inv.provisioning.pxe_server),
    );
    input.node_validity_days = inv.cluster.cert_validity_days;
    input.renew_before_days = renew_before_days;
    input.prune_secrets = prune_secrets;
    input
}
