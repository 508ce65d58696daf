//! `cluster-config.json`: written by `plasmagen generate` per node, read by `plasma-agent`.
//!
//! The first eight fields keep the runbook's names and meaning (runbook 5.3 Step 3.2);
//! the rest is what the agent needs to join safely.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Default for [`ClusterConfig::health_timeout_secs`] (runbook: "Health check timeout after 120s").
pub const DEFAULT_HEALTH_TIMEOUT_SECS: u64 = 120;
/// Default for [`ClusterConfig::join_timeout_secs`].
pub const DEFAULT_JOIN_TIMEOUT_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub node_id: String,
    /// `control-plane`, `worker` or `all-in-one`.
    pub node_role: String,
    /// True only for the founding Raft members listed in the inventory's `cluster.bootstrap`.
    pub bootstrap: bool,
    pub cluster_name: String,
    /// Runbook field: the Chainfire API URL of the first bootstrap member. Kept for
    /// compatibility; the agent uses `services.*.join_urls`, which lists every member.
    pub leader_url: String,
    /// This node's Chainfire Raft address (`<production_ip>:2380`).
    pub raft_addr: String,
    /// Chainfire Raft peers of the founding members (`<fqdn>:2380`); empty on joining nodes.
    #[serde(default)]
    pub initial_peers: Vec<String>,
    /// FlareDB Raft peers of the founding members (`<fqdn>:2480`); empty on joining nodes.
    #[serde(default)]
    pub flaredb_peers: Vec<String>,
    /// Per Raft service (`chainfire`, `flaredb`): where to find the local service and the cluster.
    pub services: BTreeMap<String, ServiceEndpoint>,
    pub tls: TlsPaths,
    /// Where the agent reports progress (`POST <collector_url>/v1/reports`).
    pub collector_url: String,
    #[serde(default = "default_health_timeout")]
    pub health_timeout_secs: u64,
    #[serde(default = "default_join_timeout")]
    pub join_timeout_secs: u64,
}

fn default_health_timeout() -> u64 {
    DEFAULT_HEALTH_TIMEOUT_SECS
}

fn default_join_timeout() -> u64 {
    DEFAULT_JOIN_TIMEOUT_SECS
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEndpoint {
    /// Admin API of the service on this node, e.g. `https://localhost:2379`.
    pub local_url: String,
    /// Admin API URLs of every bootstrap member, so a join never depends on one node.
    pub join_urls: Vec<String>,
    /// This node's Raft address for this service, e.g. `10.0.200.20:2380`.
    pub raft_addr: String,
}

/// Paths on the installed node (runtime strings, never Nix paths: keys stay out of the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    pub ca: String,
    pub cert: String,
    pub key: String,
}
