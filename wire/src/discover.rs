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
    /// `uefi` when the kernel booted through UEFI (`/sys/firmware/efi` exists), else `bios`.
    /// Absent in reports of older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// The BMC's LAN settings as the machine's own IPMI interface reports them
    /// (`ipmitool lan print` through /dev/ipmi0), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc: Option<BmcLan>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BmcLan {
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub mac: Option<String>,
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
    /// The kernel driver bound to the NIC (`/sys/class/net/<nic>/device/driver`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
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
    /// USB sticks, card readers (`/sys/block/<disk>/removable`): never a boot disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removable: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    pub model: String,
    pub logical_cpus: u32,
}
