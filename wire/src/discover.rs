//! Discovery reports: `POST <collector_url>/v1/discover`, sent unauthenticated by
//! `plasma-agent discover` from a netbooted machine. Unverified facts, keyed by MAC.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverReport {
    /// The MAC the machine booted from when known (from the kernel command line), else the
    /// first non-loopback NIC's.
    pub primary_mac: String,
    pub nics: Vec<Nic>,
    pub disks: Vec<Disk>,
    pub memory_bytes: u64,
    pub cpu: Cpu,
    #[serde(default)]
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    pub name: String,
    pub mac: String,
    /// Link speed in Mb/s when the kernel reports one.
    #[serde(default)]
    pub speed_mbps: Option<u64>,
    #[serde(default)]
    pub carrier: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// Kernel name, e.g. `sda`, `nvme0n1`.
    pub name: String,
    pub size_bytes: u64,
    /// Stable names under /dev/disk/by-id pointing at this disk, full paths.
    pub by_id: Vec<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub rotational: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    pub model: String,
    pub logical_cpus: u32,
}
