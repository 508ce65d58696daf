//! Enlistment: a discovered machine becomes an inventory entry without anyone typing its
//! facts. [`plan`] decides the entry from the discovery report and the inventory (hostname,
//! addresses from the `[allocation]` pools, boot disks, production NICs, firmware, BMC);
//! [`edit`] writes entries into the inventory's own text, keeping everything else byte for
//! byte; [`apply()`] does both for an inventory file and validates the result, and
//! [`write_in_place`] replaces the file (the CLI and the collector share them).

pub mod apply;
pub mod choose;
pub mod edit;

pub use apply::{Applied, ApplyError, Machine, WriteError, apply, enlisted, write_in_place};

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use plasma_wire::discover::DiscoverReport;

use crate::inventory::{DiskLayout, Inventory, Role};

/// What the operator asks for.
#[derive(Debug, Clone)]
pub struct Request {
    pub role: Role,
    /// `node##` (each `#` a digit); default: from the existing names.
    pub hostname_pattern: Option<String>,
    /// Boot disks chosen by the operator (`/dev/disk/by-id/…`), instead of the rule.
    pub disks: Option<Vec<String>>,
    pub disk_layout: DiskLayout,
    /// BMC user name; the BMC entry is written only with it (the report has the address).
    pub bmc_user: Option<String>,
}

/// The inventory entry of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub hostname: String,
    pub role: Role,
    pub mac: String,
    pub provisioning_ip: Ipv4Addr,
    pub production_ip: Ipv4Addr,
    pub disks: Vec<String>,
    pub disk_layout: DiskLayout,
    /// `uefi` or `bios` as discovered (`uefi` when the report predates firmware reporting).
    pub firmware: String,
    pub production_macs: Vec<String>,
    /// `(address, username)`.
    pub bmc: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnlistError {
    #[error("{mac}: {what} pool {pool} of {subnet} is full ({why})")]
    PoolFull {
        mac: String,
        what: &'static str,
        pool: String,
        subnet: String,
        why: String,
    },
    #[error("{mac}: {reason}")]
    Disks { mac: String, reason: String },
    #[error("hostname pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
}

/// What is taken already: grows with each entry planned in one run.
#[derive(Debug, Clone, Default)]
pub struct Taken {
    pub addresses: BTreeSet<Ipv4Addr>,
    pub hostnames: BTreeSet<String>,
}

impl Taken {
    /// Every address a node, a gateway, the PXE server, the DHCP range or a VIP holds.
    pub fn of(inv: &Inventory) -> Taken {
        let mut t = Taken::default();
        for n in &inv.nodes {
            t.addresses.insert(n.provisioning_ip);
            t.addresses.insert(n.production_ip);
            t.hostnames.insert(n.hostname.clone());
        }
        t.addresses.insert(inv.provisioning.gateway);
        t.addresses.insert(inv.provisioning.pxe_server);
        t.addresses.insert(inv.production.gateway);
        let (start, end) = (
            u32::from(inv.provisioning.dhcp_range.0),
            u32::from(inv.provisioning.dhcp_range.1),
        );
        for a in start..=end {
            t.addresses.insert(Ipv4Addr::from(a));
        }
        t.addresses.extend(inv.vips.values().copied());
        t
    }
}

/// The entry for the machine `report` describes, taking its hostname and addresses in `taken`.
pub fn plan(
    inv: &Inventory,
    report: &DiscoverReport,
    req: &Request,
    taken: &mut Taken,
) -> Result<Entry, EnlistError> {
    let mac = report.primary_mac.clone();
    let control = req.role.is_control_plane();
    let alloc = &inv.allocation;
    let (prov_pool, prod_pool) = if control {
        (
            &alloc.control_plane_provisioning,
            &alloc.control_plane_production,
        )
    } else {
        (&alloc.worker_provisioning, &alloc.worker_production)
    };
    let provisioning_ip = choose::address(inv.provisioning.subnet, prov_pool, &taken.addresses)
        .map_err(|why| EnlistError::PoolFull {
            mac: mac.clone(),
            what: "provisioning",
            pool: format!("{}-{}", prov_pool.start(), prov_pool.end()),
            subnet: inv.provisioning.subnet.to_string(),
            why,
        })?;
    let production_ip = choose::address(inv.production.subnet, prod_pool, &taken.addresses)
        .map_err(|why| EnlistError::PoolFull {
            mac: mac.clone(),
            what: "production",
            pool: format!("{}-{}", prod_pool.start(), prod_pool.end()),
            subnet: inv.production.subnet.to_string(),
            why,
        })?;
    let disks = match &req.disks {
        Some(d) => d.clone(),
        None => choose::boot_disks(&report.disks, req.disk_layout).map_err(|reason| {
            EnlistError::Disks {
                mac: mac.clone(),
                reason,
            }
        })?,
    };
    let hostname = choose::hostname(req.hostname_pattern.as_deref(), &taken.hostnames)
        .map_err(|(pattern, reason)| EnlistError::Pattern { pattern, reason })?;
    taken.addresses.insert(provisioning_ip);
    taken.addresses.insert(production_ip);
    taken.hostnames.insert(hostname.clone());
    Ok(Entry {
        hostname,
        role: req.role,
        mac: mac.clone(),
        provisioning_ip,
        production_ip,
        disks,
        disk_layout: req.disk_layout,
        firmware: report.firmware.clone().unwrap_or_else(|| "uefi".into()),
        production_macs: choose::production_nics(&report.nics, &mac),
        bmc: report
            .bmc
            .as_ref()
            .and_then(|b| b.address.clone())
            .zip(req.bmc_user.clone()),
    })
}
