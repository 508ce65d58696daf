//! The inventory the collector serves, with the indexes every report and boot request looks
//! nodes up in. Built once per inventory and replaced whole (never edited in place) when an
//! enlist rewrites the inventory file, so a handler holding one sees a consistent fleet.

use std::collections::HashMap;

use plasma_inventory::inventory::{Inventory, Node};

pub struct Catalog {
    pub inventory: Inventory,
    /// Normalised MAC → index into `inventory.nodes`.
    by_mac: HashMap<String, usize>,
    /// Hostname → index into `inventory.nodes`.
    by_host: HashMap<String, usize>,
}

impl Catalog {
    pub fn new(inventory: Inventory) -> Catalog {
        let by_mac = inventory
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.mac.as_str().to_string(), i))
            .collect();
        let by_host = inventory
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.hostname.clone(), i))
            .collect();
        Catalog {
            inventory,
            by_mac,
            by_host,
        }
    }

    /// The inventory node named `hostname` (an index lookup, not a scan).
    pub fn node(&self, hostname: &str) -> Option<&Node> {
        self.by_host
            .get(hostname)
            .map(|&i| &self.inventory.nodes[i])
    }

    /// The node whose PXE MAC is `mac` (normalised).
    pub fn node_by_mac(&self, mac: &str) -> Option<&Node> {
        self.by_mac.get(mac).map(|&i| &self.inventory.nodes[i])
    }

    pub fn hostname_by_mac(&self, mac: &str) -> Option<&str> {
        self.node_by_mac(mac).map(|n| n.hostname.as_str())
    }
}
