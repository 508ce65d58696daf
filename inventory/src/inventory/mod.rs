//! The fleet inventory: the one file an operator writes. Parsing collects every problem at
//! once (unknown or missing fields, wrong types, malformed values) before the semantic rules
//! in [`crate::validate`] run on what could be read.

mod allocation;
pub use allocation::{Allocation, parse_range};
mod net;
mod reader;
pub mod tree;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use net::{Cidr, Mac};

use crate::diag::{Diagnostic, Severity};

/// Default node certificate validity.
pub const DEFAULT_CERT_VALIDITY_DAYS: u32 = 365;

#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// The file it was read from, as given on the command line.
    pub source: PathBuf,
    /// Its text, copied into the flake for the collector (it holds no secret).
    pub source_text: String,
    pub cluster: Cluster,
    pub provisioning: ProvisioningNetwork,
    pub production: ProductionNetwork,
    /// Where SSH (management) is allowed from; defaults to the provisioning subnet.
    pub management_subnet: Option<Cidr>,
    pub nodes: Vec<Node>,
    /// Optional service VIPs for DNS (runbook 3.3), name → address.
    pub vips: BTreeMap<String, Ipv4Addr>,
    pub flake_inputs: FlakeInputs,
    /// Address pools for `plasmagen enlist` (`[allocation]`, the runbook's plan by default).
    pub allocation: Allocation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub domain: String,
    pub bootstrap: Vec<String>,
    pub ssh_authorized_keys: Vec<String>,
    pub state_version: String,
    pub collector_url: String,
    pub cert_validity_days: u32,
    pub health_timeout_secs: u64,
    pub join_timeout_secs: u64,
    /// How `luks-lvm` nodes get their root unlocked at boot.
    pub luks_unlock: LuksUnlock,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProvisioningNetwork {
    pub subnet: Cidr,
    pub gateway: Ipv4Addr,
    pub nameservers: Vec<Ipv4Addr>,
    pub dhcp_range: (Ipv4Addr, Ipv4Addr),
    pub pxe_server: Ipv4Addr,
    /// The PXE server's interface on this network, as its kernel names it (DHCP and TFTP
    /// bind to it). Required: a NixOS host with predictable names has no `eth0`.
    pub interface: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProductionNetwork {
    pub subnet: Cidr,
    pub gateway: Ipv4Addr,
    pub nameservers: Vec<Ipv4Addr>,
    /// 802.1Q tag of the production network on the node's production link or bond.
    pub vlan: Option<u16>,
    /// Bonding mode for nodes with two or more `production_macs`.
    pub bond_mode: BondMode,
}

/// Bonding modes the generator offers (systemd.netdev(5) `[Bond] Mode=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BondMode {
    /// LACP: needs the switch ports configured as one link aggregation group.
    Lacp,
    /// One active NIC, the other takes over on link loss; no switch configuration.
    ActiveBackup,
}

impl BondMode {
    pub const ALL: [BondMode; 2] = [BondMode::Lacp, BondMode::ActiveBackup];

    pub fn as_str(self) -> &'static str {
        match self {
            BondMode::Lacp => "802.3ad",
            BondMode::ActiveBackup => "active-backup",
        }
    }

    pub fn parse(s: &str) -> Option<BondMode> {
        BondMode::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// How an encrypted root is unlocked at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LuksUnlock {
    /// SSH in the initrd on the provisioning NIC; `plasmagen unlock NODE` sends the passphrase.
    InitrdSsh,
    /// Clevis in the initrd, bound to a Tang server.
    Tang,
    /// systemd-cryptenroll into the machine's TPM2.
    Tpm2,
}

impl LuksUnlock {
    pub const ALL: [LuksUnlock; 3] = [LuksUnlock::InitrdSsh, LuksUnlock::Tang, LuksUnlock::Tpm2];

    pub fn as_str(self) -> &'static str {
        match self {
            LuksUnlock::InitrdSsh => "initrd-ssh",
            LuksUnlock::Tang => "tang",
            LuksUnlock::Tpm2 => "tpm2",
        }
    }

    pub fn parse(s: &str) -> Option<LuksUnlock> {
        LuksUnlock::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Boot firmware of a node: decides bootloader and boot partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Firmware {
    Uefi,
    Bios,
}

impl Firmware {
    pub const ALL: [Firmware; 2] = [Firmware::Uefi, Firmware::Bios];

    pub fn as_str(self) -> &'static str {
        match self {
            Firmware::Uefi => "uefi",
            Firmware::Bios => "bios",
        }
    }

    pub fn parse(s: &str) -> Option<Firmware> {
        Firmware::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlakeInputs {
    pub nixpkgs: String,
    pub disko: String,
    pub provisioning: String,
    pub services: String,
}

impl FlakeInputs {
    pub const KEYS: [&'static str; 4] = [
        "nixpkgs",
        "disko",
        "plasmacloud-provisioning",
        "plasmacloud-services",
    ];

    pub fn defaults() -> FlakeInputs {
        FlakeInputs {
            nixpkgs: crate::release::nixpkgs_url(crate::release::DEFAULT),
            disko: "github:nix-community/disko".into(),
            provisioning: "github:plasmacloud/provisioning".into(),
            services: "github:plasmacloud/plasmacloud".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    ControlPlane,
    Worker,
    AllInOne,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::ControlPlane, Role::Worker, Role::AllInOne];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
            Role::AllInOne => "all-in-one",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Services of the role, from the runbook's port matrix (3.4).
    pub fn services(self) -> &'static [Service] {
        use Service::*;
        match self {
            Role::ControlPlane => &[Chainfire, Flaredb, Iam],
            Role::Worker => &[Chainfire, Plasmavmc, Novanet, Flashdns, Fiberlb, K8shost],
            Role::AllInOne => &[
                Chainfire, Flaredb, Iam, Plasmavmc, Novanet, Flashdns, Fiberlb, K8shost,
            ],
        }
    }

    /// Raft services the node is a member of, in join order (FlareDB points at Chainfire).
    pub fn raft_services(self) -> Vec<Service> {
        self.services()
            .iter()
            .copied()
            .filter(|s| s.raft_port().is_some())
            .collect()
    }

    /// Can be a founding Raft member: runs both Chainfire and FlareDB.
    pub fn is_control_plane(self) -> bool {
        matches!(self, Role::ControlPlane | Role::AllInOne)
    }
}

/// A PlasmaCloud service with its ports (runbook 3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Chainfire,
    Flaredb,
    Iam,
    Plasmavmc,
    Novanet,
    Flashdns,
    Fiberlb,
    K8shost,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Chainfire => "chainfire",
            Service::Flaredb => "flaredb",
            Service::Iam => "iam",
            Service::Plasmavmc => "plasmavmc",
            Service::Novanet => "novanet",
            Service::Flashdns => "flashdns",
            Service::Fiberlb => "fiberlb",
            Service::K8shost => "k8shost",
        }
    }

    pub fn api_port(self) -> u16 {
        match self {
            Service::Chainfire => 2379,
            Service::Flaredb => 2479,
            Service::Iam => 8080,
            Service::Plasmavmc => 9090,
            Service::Novanet => 9091,
            Service::Flashdns => 53,
            Service::Fiberlb => 9092,
            Service::K8shost => 10250,
        }
    }

    pub fn raft_port(self) -> Option<u16> {
        match self {
            Service::Chainfire => Some(2380),
            Service::Flaredb => Some(2480),
            _ => None,
        }
    }

    pub fn gossip_port(self) -> Option<u16> {
        match self {
            Service::Chainfire => Some(2381),
            _ => None,
        }
    }

    /// Every TCP port the service listens on.
    pub fn tcp_ports(self) -> Vec<u16> {
        [Some(self.api_port()), self.raft_port(), self.gossip_port()]
            .into_iter()
            .flatten()
            .collect()
    }

    /// FlashDNS also answers on UDP.
    pub fn udp_ports(self) -> Vec<u16> {
        match self {
            Service::Flashdns => vec![53],
            _ => vec![],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiskLayout {
    Single,
    Raid1,
    LuksLvm,
}

impl DiskLayout {
    pub const ALL: [DiskLayout; 3] = [DiskLayout::Single, DiskLayout::Raid1, DiskLayout::LuksLvm];

    pub fn as_str(self) -> &'static str {
        match self {
            DiskLayout::Single => "single",
            DiskLayout::Raid1 => "raid1",
            DiskLayout::LuksLvm => "luks-lvm",
        }
    }

    pub fn parse(s: &str) -> Option<DiskLayout> {
        DiskLayout::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub hostname: String,
    pub role: Role,
    pub mac: Mac,
    pub provisioning_ip: Ipv4Addr,
    pub production_ip: Ipv4Addr,
    pub disks: Vec<String>,
    pub disk_layout: DiskLayout,
    pub firmware: Firmware,
    /// Production NICs by MAC: one is used as is, two or more become a bond. Empty: the
    /// legacy `eth1` (kernel names), with a warning.
    pub production_macs: Vec<Mac>,
    pub bmc: Option<Bmc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bmc {
    pub protocol: BmcProtocol,
    /// IP address or DNS name of the BMC.
    pub address: String,
    pub username: String,
    /// File holding the BMC password on the provisioning workstation (never inlined).
    pub password_file: Option<String>,
    /// Redfish: the ComputerSystem id, when the BMC manages more than one.
    pub system: Option<String>,
    /// Redfish: CA certificate (PEM) the BMC's HTTPS certificate is checked against.
    pub ca_file: Option<String>,
    /// Redfish: accept any certificate (self-signed BMCs); warned about.
    pub insecure: bool,
}

/// How the operator tools talk to a node's BMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BmcProtocol {
    /// IPMI 2.0 over LAN (`ipmitool -I lanplus`).
    Ipmi,
    /// DMTF Redfish over HTTPS.
    Redfish,
}

impl BmcProtocol {
    pub const ALL: [BmcProtocol; 2] = [BmcProtocol::Ipmi, BmcProtocol::Redfish];

    pub fn as_str(self) -> &'static str {
        match self {
            BmcProtocol::Ipmi => "ipmi",
            BmcProtocol::Redfish => "redfish",
        }
    }

    pub fn parse(s: &str) -> Option<BmcProtocol> {
        BmcProtocol::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl Node {
    pub fn fqdn(&self, cluster: &Cluster) -> String {
        format!("{}.{}", self.hostname, cluster.domain)
    }
}

impl Inventory {
    pub fn node(&self, hostname: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.hostname == hostname)
    }

    pub fn is_bootstrap(&self, node: &Node) -> bool {
        self.cluster.bootstrap.contains(&node.hostname)
    }

    /// Bootstrap members in the order the inventory lists them.
    pub fn bootstrap_nodes(&self) -> Vec<&Node> {
        self.cluster
            .bootstrap
            .iter()
            .filter_map(|b| self.node(b))
            .collect()
    }

    pub fn fqdn(&self, node: &Node) -> String {
        node.fqdn(&self.cluster)
    }

    /// The node's encrypted root is unlocked over SSH in its initrd.
    pub fn unlocks_over_initrd_ssh(&self, node: &Node) -> bool {
        node.disk_layout == DiskLayout::LuksLvm && self.cluster.luks_unlock == LuksUnlock::InitrdSsh
    }

    /// The node's provisioning address with its prefix, `10.0.100.50/24`.
    pub fn provisioning_address(&self, node: &Node) -> String {
        format!(
            "{}/{}",
            node.provisioning_ip, self.provisioning.subnet.prefix
        )
    }

    /// The node's production address with its prefix, `10.0.200.10/24`.
    pub fn production_address(&self, node: &Node) -> String {
        format!("{}/{}", node.production_ip, self.production.subnet.prefix)
    }

    /// Subnet SSH is allowed from on cluster nodes.
    pub fn ssh_source(&self) -> Cidr {
        self.management_subnet.unwrap_or(self.provisioning.subnet)
    }
}

/// What was read, plus what the semantic rules need to point at the source.
#[derive(Debug)]
pub struct Parsed {
    pub inventory: Inventory,
    /// Field paths whose value could not be read; rules skip them to avoid follow-on noise.
    pub broken: BTreeSet<String>,
    /// Field path → byte span in the source (TOML only).
    pub spans: BTreeMap<String, Range<usize>>,
    pub source_text: String,
    pub diagnostics: Vec<Diagnostic>,
}

/// Errors for `load`: the diagnostics (all of them) or an unreadable file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read inventory: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} invalid", plural(.0.iter().filter(|d| d.severity == Severity::Error).count(), "problem"))]
    Invalid(Vec<Diagnostic>),
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A valid inventory plus its warnings.
#[derive(Debug)]
pub struct Loaded {
    pub inventory: Inventory,
    pub warnings: Vec<Diagnostic>,
}

/// Read, parse and validate an inventory file: the only way into the model.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(path, &text)
}

pub fn load_str(path: &Path, text: &str) -> Result<Loaded, LoadError> {
    let mut parsed = reader::parse(path, text).map_err(LoadError::Invalid)?;
    crate::validate::validate(&mut parsed);
    let (errors, warnings): (Vec<_>, Vec<_>) = parsed
        .diagnostics
        .into_iter()
        .partition(|d| d.severity == Severity::Error);
    if !errors.is_empty() {
        let mut all = errors;
        // Source order reads best; diagnostics without a position go last.
        all.sort_by_key(|d| (d.line.is_none(), d.line, d.column));
        all.extend(warnings);
        return Err(LoadError::Invalid(all));
    }
    Ok(Loaded {
        inventory: parsed.inventory,
        warnings,
    })
}
