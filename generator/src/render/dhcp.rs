//! The provisioning network's DHCP configurations: ISC dhcpd, Kea and dnsmasq (plus a
//! proxy-DHCP dnsmasq), all with the runbook's boot-file choice (3.2) and one reservation per
//! node.

use askama::Template;
use serde_json::json;

use super::pxe::boot_script_url;
use super::{RenderError, Rendered, askama_err};
use crate::inventory::Inventory;

/// Where the PXE server's TFTP root holds undionly.kpxe and ipxe.efi.
pub const TFTP_ROOT: &str = "/var/lib/tftpboot";

struct Host {
    hostname: String,
    mac: String,
    ip: String,
}

#[derive(Template)]
#[template(path = "pxe/dhcpd.conf", escape = "none")]
struct DhcpdConf {
    cluster: String,
    network: String,
    netmask: String,
    range_start: String,
    range_end: String,
    gateway: String,
    nameservers: String,
    domain: String,
    pxe_server: String,
    boot_script_url: String,
    hosts: Vec<Host>,
}

#[derive(Template)]
#[template(path = "pxe/dnsmasq.conf", escape = "none")]
struct DnsmasqConf {
    cluster: String,
    interface: String,
    domain: String,
    range_start: String,
    range_end: String,
    netmask: String,
    gateway: String,
    nameservers: String,
    boot_script_url: String,
    pxe_server: String,
    tftp_root: &'static str,
    hosts: Vec<Host>,
}

#[derive(Template)]
#[template(path = "pxe/dnsmasq-proxy.conf", escape = "none")]
struct DnsmasqProxyConf {
    cluster: String,
    interface: String,
    network: String,
    netmask: String,
    boot_script_url: String,
    tftp_root: &'static str,
}

fn hosts(inv: &Inventory) -> Vec<Host> {
    inv.nodes
        .iter()
        .map(|n| Host {
            hostname: n.hostname.clone(),
            mac: n.mac.to_string(),
            ip: n.provisioning_ip.to_string(),
        })
        .collect()
}

pub fn render(inv: &Inventory, out: &mut Rendered) -> Result<(), RenderError> {
    let p = &inv.provisioning;
    let ns = |sep: &str| {
        p.nameservers
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(sep)
    };
    let dhcpd = DhcpdConf {
        cluster: inv.cluster.name.clone(),
        network: p.subnet.network.to_string(),
        netmask: p.subnet.netmask().to_string(),
        range_start: p.dhcp_range.0.to_string(),
        range_end: p.dhcp_range.1.to_string(),
        gateway: p.gateway.to_string(),
        nameservers: ns(", "),
        domain: inv.cluster.domain.clone(),
        pxe_server: p.pxe_server.to_string(),
        boot_script_url: boot_script_url(inv),
        hosts: hosts(inv),
    };
    out.add(
        "pxe/dhcpd.conf",
        dhcpd.render().map_err(askama_err("pxe/dhcpd.conf"))?,
    );

    let dnsmasq = DnsmasqConf {
        cluster: inv.cluster.name.clone(),
        interface: p.interface.clone(),
        domain: inv.cluster.domain.clone(),
        range_start: p.dhcp_range.0.to_string(),
        range_end: p.dhcp_range.1.to_string(),
        netmask: p.subnet.netmask().to_string(),
        gateway: p.gateway.to_string(),
        nameservers: ns(","),
        boot_script_url: boot_script_url(inv),
        pxe_server: p.pxe_server.to_string(),
        tftp_root: TFTP_ROOT,
        hosts: hosts(inv),
    };
    out.add(
        "pxe/dnsmasq.conf",
        dnsmasq.render().map_err(askama_err("pxe/dnsmasq.conf"))?,
    );

    let proxy = DnsmasqProxyConf {
        cluster: inv.cluster.name.clone(),
        interface: p.interface.clone(),
        network: p.subnet.network.to_string(),
        netmask: p.subnet.netmask().to_string(),
        boot_script_url: boot_script_url(inv),
        tftp_root: TFTP_ROOT,
    };
    out.add(
        "pxe/dnsmasq-proxy.conf",
        proxy
            .render()
            .map_err(askama_err("pxe/dnsmasq-proxy.conf"))?,
    );

    let mut kea =
        serde_json::to_string_pretty(&kea_config(inv)).map_err(|source| RenderError::Json {
            what: "pxe/kea-dhcp4.json".into(),
            source,
        })?;
    kea.push('\n');
    out.add("pxe/kea-dhcp4.json", kea);
    Ok(())
}

/// Kea DHCPv4 configuration (data, so built as JSON rather than templated text).
pub fn kea_config(inv: &Inventory) -> serde_json::Value {
    let p = &inv.provisioning;
    let pxe = p.pxe_server.to_string();
    let nameservers = p
        .nameservers
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let reservations: Vec<_> = inv
        .nodes
        .iter()
        .map(|n| {
            json!({
                "hw-address": n.mac.to_string(),
                "ip-address": n.provisioning_ip.to_string(),
                "hostname": n.hostname,
            })
        })
        .collect();
    json!({
        "Dhcp4": {
            "interfaces-config": { "interfaces": [p.interface] },
            "lease-database": { "type": "memfile", "persist": true, "name": "/var/lib/kea/dhcp4.leases" },
            "valid-lifetime": 600,
            "max-valid-lifetime": 7200,
            "authoritative": true,
            // Evaluated in order; the tests keep them mutually exclusive so exactly one boot
            // file applies (runbook 3.2).
            "client-classes": [
                {
                    "name": "ipxe",
                    "test": "substring(option[77].hex,0,4) == 'iPXE'",
                    "boot-file-name": boot_script_url(inv)
                },
                {
                    "name": "bios",
                    "test": "not member('ipxe') and option[93].hex == 0x0000",
                    "next-server": pxe,
                    "boot-file-name": "undionly.kpxe"
                },
                {
                    "name": "uefi",
                    "test": "not member('ipxe') and not member('bios')",
                    "next-server": pxe,
                    "boot-file-name": "ipxe.efi"
                }
            ],
            "subnet4": [{
                "id": 1,
                "subnet": p.subnet.to_string(),
                "pools": [{ "pool": format!("{} - {}", p.dhcp_range.0, p.dhcp_range.1) }],
                "next-server": pxe,
                "option-data": [
                    { "name": "routers", "data": p.gateway.to_string() },
                    { "name": "domain-name-servers", "data": nameservers },
                    { "name": "domain-name", "data": inv.cluster.domain }
                ],
                "reservations": reservations
            }],
            "loggers": [{ "name": "kea-dhcp4", "output_options": [{ "output": "stdout" }], "severity": "INFO" }]
        }
    })
}
