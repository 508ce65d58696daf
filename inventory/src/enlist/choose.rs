//! The rules of enlistment, each a small pure function.
//!
//! - **Address**: the lowest free host number of the role's pool within the subnet; never the
//!   network or broadcast address, never one already taken (nodes, gateways, PXE server, DHCP
//!   range, VIPs).
//! - **Hostname**: the next free number of a `prefix##` pattern; default pattern from the
//!   existing names (the most common `letters + digits` shape, e.g. `node##`).
//! - **Boot disks**: never a removable disk, never one without a `/dev/disk/by-id` name; at
//!   least [`MIN_DISK_BYTES`]; `raid1`: the smallest pair of equal size; otherwise the smallest
//!   disk, SSDs (non-rotational) before spinning disks.
//! - **Production NICs**: every NIC but the PXE one whose link speed is the highest reported
//!   (unknown speed counts lowest); two or more become a bond.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use plasma_wire::discover::{Disk, Nic};

use crate::inventory::{Cidr, DiskLayout};

/// Smaller disks (card readers, SATA DOMs of a few GB) are no system disk.
pub const MIN_DISK_BYTES: u64 = 16 << 30;

pub fn address(
    subnet: Cidr,
    pool: &RangeInclusive<u32>,
    taken: &BTreeSet<Ipv4Addr>,
) -> Result<Ipv4Addr, String> {
    let network = u32::from(subnet.network);
    let hosts = if subnet.prefix >= 31 {
        0
    } else {
        (1u64 << (32 - u32::from(subnet.prefix))) - 2
    };
    for host in pool.clone() {
        if u64::from(host) > hosts {
            break;
        }
        let ip = Ipv4Addr::from(network + host);
        if !taken.contains(&ip) {
            return Ok(ip);
        }
    }
    Err(if u64::from(*pool.start()) > hosts {
        format!("the subnet has only {hosts} host addresses")
    } else {
        "every address is taken: widen [allocation] or free one".into()
    })
}

/// `pattern` with its `#` run replaced by the lowest free number (at least 1).
pub fn hostname(
    pattern: Option<&str>,
    taken: &BTreeSet<String>,
) -> Result<String, (String, String)> {
    let pattern = match pattern {
        Some(p) => p.to_string(),
        None => default_pattern(taken),
    };
    let Some(start) = pattern.find('#') else {
        return Err((pattern, "needs a run of # for the number".into()));
    };
    let width = pattern[start..].chars().take_while(|c| *c == '#').count();
    let (prefix, suffix) = (&pattern[..start], &pattern[start + width..]);
    if suffix.contains('#') {
        return Err((pattern.clone(), "one run of # only".into()));
    }
    for n in 1..100_000u32 {
        let name = format!("{prefix}{n:0width$}{suffix}");
        if !taken.contains(&name) {
            return Ok(name);
        }
    }
    Err((pattern.clone(), "no free number".into()))
}

/// The most common `letters` + `digits` shape among the names (`node01` → `node##`).
fn default_pattern(names: &BTreeSet<String>) -> String {
    let mut shapes: BTreeMap<(String, usize), usize> = BTreeMap::new();
    for name in names {
        let digits = name.chars().rev().take_while(char::is_ascii_digit).count();
        if digits > 0 && digits < name.len() {
            let prefix = name[..name.len() - digits].to_string();
            *shapes.entry((prefix, digits)).or_default() += 1;
        }
    }
    shapes
        .into_iter()
        .max_by_key(|(_, count)| *count)
        .map_or_else(
            || "node##".to_string(),
            |((prefix, width), _)| format!("{prefix}{}", "#".repeat(width)),
        )
}

/// The boot disks by the rule above, as `/dev/disk/by-id/…` paths.
pub fn boot_disks(disks: &[Disk], layout: DiskLayout) -> Result<Vec<String>, String> {
    let usable: Vec<(&Disk, String)> = disks
        .iter()
        .filter(|d| d.removable != Some(true) && d.size_bytes >= MIN_DISK_BYTES)
        .filter_map(|d| stable_path(d).map(|p| (d, p)))
        .collect();
    // SSD (or unknown) before rotational, then smaller first, then by name: stable.
    let key = |d: &Disk| (d.rotational == Some(true), d.size_bytes, d.name.clone());
    match layout {
        DiskLayout::Raid1 => {
            let mut by_size: BTreeMap<u64, Vec<&(&Disk, String)>> = BTreeMap::new();
            for u in &usable {
                by_size.entry(u.0.size_bytes).or_default().push(u);
            }
            let pair = by_size.values().find(|v| v.len() >= 2).ok_or_else(|| {
                "raid1 needs two non-removable disks of equal size with /dev/disk/by-id names"
                    .to_string()
            })?;
            let mut pair: Vec<_> = pair.iter().collect();
            pair.sort_by_key(|u| key(u.0));
            Ok(pair.iter().take(2).map(|u| u.1.clone()).collect())
        }
        DiskLayout::Single | DiskLayout::LuksLvm => usable
            .iter()
            .min_by_key(|u| key(u.0))
            .map(|u| vec![u.1.clone()])
            .ok_or_else(|| {
                format!(
                    "no disk to install on: none is non-removable, at least {} GiB and has a \
                     /dev/disk/by-id name (--disk chooses one by hand)",
                    MIN_DISK_BYTES >> 30
                )
            }),
    }
}

/// The by-id name to write: serial-based names before `wwn-`/`nvme-eui.` ones, then by name.
pub fn stable_path(disk: &Disk) -> Option<String> {
    let rank = |p: &str| {
        let base = p.rsplit('/').next().unwrap_or(p);
        u8::from(
            base.starts_with("wwn-")
                || base.starts_with("nvme-eui.")
                || base.starts_with("nvme-nvme."),
        )
    };
    disk.by_id
        .iter()
        .filter(|p| !p.contains("-part"))
        .min_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)))
        .map(|p| {
            if p.starts_with('/') {
                p.clone()
            } else {
                format!("/dev/disk/by-id/{p}")
            }
        })
}

/// The fastest NICs other than the PXE one (`pxe_mac`), in name order.
pub fn production_nics(nics: &[Nic], pxe_mac: &str) -> Vec<String> {
    let others: Vec<&Nic> = nics
        .iter()
        .filter(|n| !n.mac.eq_ignore_ascii_case(pxe_mac))
        .collect();
    let Some(best) = others.iter().map(|n| n.speed_mbps.unwrap_or(0)).max() else {
        return Vec::new();
    };
    let mut chosen: Vec<&Nic> = others
        .into_iter()
        .filter(|n| n.speed_mbps.unwrap_or(0) == best)
        .collect();
    chosen.sort_by(|a, b| a.name.cmp(&b.name));
    chosen.iter().map(|n| n.mac.to_ascii_lowercase()).collect()
}

#[cfg(test)]
mod tests;
