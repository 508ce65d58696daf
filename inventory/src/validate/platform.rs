//! Rules about the platform the fleet runs on: NixOS release, LUKS unlock, the NICs.

use std::collections::HashMap;

use super::Rules;
use crate::inventory::{BmcProtocol, DiskLayout, LuksUnlock};
use crate::release;

pub(super) fn release_rules(r: &mut Rules<'_>) {
    let inv = &r.parsed.inventory;
    let sv = inv.cluster.state_version.clone();
    if !r.broken("cluster.state_version") && sv.len() == 5 && !release::is_supported(&sv) {
        r.warning(
            None,
            "cluster.state_version",
            format!(
                "{sv:?} is not a supported NixOS release ({}): a new fleet should use {:?}; keep an older value only for machines first installed with it",
                release::supported_list(),
                release::DEFAULT
            ),
        );
    }
    let url = inv.flake_inputs.nixpkgs.clone();
    if let Some(found) = release::release_of_nixpkgs_url(&url)
        && !release::is_supported(&found)
    {
        r.warning(
            None,
            "flake.inputs.nixpkgs",
            format!(
                "{url:?} follows NixOS {found}, which is not supported ({}): it gets no security updates and its rustc may be too old to build plasmagen and plasma-agent; use {:?}",
                release::supported_list(),
                release::nixpkgs_url(release::DEFAULT)
            ),
        );
    }
    let luks_nodes = inv
        .nodes
        .iter()
        .filter(|n| n.disk_layout == DiskLayout::LuksLvm)
        .count();
    let unlock = inv.cluster.luks_unlock;
    if luks_nodes > 0 && unlock != LuksUnlock::InitrdSsh {
        r.error(
            None,
            "cluster.luks_unlock",
            format!(
                "{:?} is not available yet; use \"initrd-ssh\" (the default: docs/nix.md explains the choice)",
                unlock.as_str()
            ),
        );
    }
}

/// Linux interface names: at most 15 bytes, no '/', ':' or whitespace (dev_valid_name()).
fn is_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

pub(super) fn nic_rules(r: &mut Rules<'_>) {
    let inv = &r.parsed.inventory;
    let iface = inv.provisioning.interface.clone();
    let field = "networks.provisioning.interface";
    if !r.broken(field) && !iface.is_empty() && !is_ifname(&iface) {
        r.error(
            None,
            field,
            format!("{iface:?} is not a Linux interface name (at most 15 letters, digits, '-', '_', '.', '@')"),
        );
    }
    // Every MAC of the fleet, provisioning and production, belongs to one NIC.
    let mut seen: HashMap<String, String> = HashMap::new();
    for (i, node) in inv.nodes.iter().enumerate() {
        let mac_field = format!("nodes[{i}].mac");
        if !r.broken(&mac_field) {
            seen.entry(node.mac.as_str().to_string())
                .or_insert_with(|| format!("{mac_field} ({})", node.hostname));
        }
    }
    for (i, node) in inv.nodes.iter().enumerate() {
        let n = Some(node.hostname.as_str());
        let field = format!("nodes[{i}].production_macs");
        if r.broken(&field) {
            continue;
        }
        let has_field = r.parsed.spans.contains_key(&field);
        if node.production_macs.is_empty() {
            if has_field {
                r.error(
                    n,
                    &field,
                    "empty: list the production NIC's MAC (two or more make a bond), or leave the field out".into(),
                );
            } else {
                r.warning(
                    n,
                    &field,
                    "not set: the production address goes on the interface the kernel calls eth1, and eth0/eth1 can swap between boots; list the production NICs by MAC".into(),
                );
            }
            continue;
        }
        for (j, mac) in node.production_macs.iter().enumerate() {
            let path = format!("{field}[{j}]");
            let here = format!("{path} ({})", node.hostname);
            if let Some(first) = seen.insert(mac.as_str().to_string(), here.clone()) {
                r.error(n, &path, format!("duplicate MAC {mac} (also {first})"));
                seen.insert(mac.as_str().to_string(), first);
            }
        }
    }
}

/// Redfish-only BMC settings, and the TLS choice of each Redfish BMC.
pub(super) fn bmc_rules(r: &mut Rules<'_>) {
    let inv = &r.parsed.inventory;
    let mut found = Vec::new();
    for (i, node) in inv.nodes.iter().enumerate() {
        if let Some(bmc) = &node.bmc {
            found.push((i, node.hostname.clone(), bmc.clone()));
        }
    }
    for (i, host, bmc) in found {
        let n = Some(host.as_str());
        let f = |k: &str| format!("nodes[{i}].bmc.{k}");
        if bmc.protocol != BmcProtocol::Redfish {
            for (key, set) in [
                ("system", bmc.system.is_some()),
                ("ca_file", bmc.ca_file.is_some()),
                ("insecure", bmc.insecure),
            ] {
                if set {
                    r.error(
                        n,
                        &f(key),
                        format!("`{key}` is a Redfish setting; this BMC speaks {} (set `protocol = \"redfish\"` or remove it)", bmc.protocol.as_str()),
                    );
                }
            }
            continue;
        }
        if let Some(ca) = &bmc.ca_file
            && !ca.starts_with('/')
        {
            r.error(n, &f("ca_file"), format!("{ca:?} must be an absolute path"));
        }
        if bmc.insecure && bmc.ca_file.is_some() {
            r.error(
                n,
                &f("insecure"),
                "`insecure = true` and `ca_file` contradict each other: keep `ca_file` and drop `insecure`".into(),
            );
        } else if bmc.insecure {
            r.warning(
                n,
                &f("insecure"),
                format!("the certificate of {} is not checked: anyone on the management network can pose as it and receive its password; prefer `ca_file`", bmc.address),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn interface_names() {
        for ok in ["eth0", "enp1s0", "enp0s31f6", "br-prov", "bond0.100"] {
            assert!(super::is_ifname(ok), "{ok}");
        }
        for bad in ["", "enp0s20f0u1u2u3u4", "a b", "eth0;", "a/b", ".."] {
            assert!(!super::is_ifname(bad), "{bad}");
        }
    }
}
