//! firewall/<role>.nft: the runbook's nftables policy (3.4) per role.

use askama::Template;

use super::{RenderError, Rendered, askama_err};
use crate::inventory::{Cidr, Inventory, Role};

#[derive(Template)]
#[template(path = "firewall/role.nft", escape = "none")]
struct RoleNft {
    cluster: String,
    role: &'static str,
    management: Cidr,
    production: Cidr,
    api_sources: String,
    raft_ports: String,
    api_tcp_ports: String,
    api_udp_ports: String,
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `{ a, b }`, or a single subnet when one contains the other (nft rejects overlapping
/// elements in one set).
fn sources(a: Cidr, b: Cidr) -> String {
    if a.prefix <= b.prefix && a.contains(b.network) {
        a.to_string()
    } else if b.prefix <= a.prefix && b.contains(a.network) {
        b.to_string()
    } else {
        format!("{{ {a}, {b} }}")
    }
}

#[derive(Template)]
#[template(path = "firewall/pxe-server.nft", escape = "none")]
struct PxeServerNft {
    cluster: String,
    provisioning: Cidr,
    management: Cidr,
    http_ports: String,
    collector_port: u16,
    collector_sources: String,
}

/// Port of the collector's HTTPS API, from `cluster.collector_url`.
pub fn collector_port(url: &str) -> u16 {
    let https = url.starts_with("https://");
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|hp| hp.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(if https { 443 } else { 80 })
}

pub fn render(inv: &Inventory, out: &mut Rendered) -> Result<(), RenderError> {
    let pxe = PxeServerNft {
        cluster: inv.cluster.name.clone(),
        provisioning: inv.provisioning.subnet,
        management: inv.ssh_source(),
        http_ports: join(&[super::pxe::HTTP_PORT, super::pxe::COLLECTOR_BOOT_PORT]),
        collector_port: collector_port(&inv.cluster.collector_url),
        collector_sources: sources(inv.provisioning.subnet, inv.production.subnet),
    };
    out.add(
        "firewall/pxe-server.nft",
        pxe.render()
            .map_err(askama_err("firewall/pxe-server.nft"))?,
    );
    let management = inv.ssh_source();
    let production = inv.production.subnet;
    for role in Role::ALL {
        let mut raft = Vec::new();
        let mut api_tcp = Vec::new();
        let mut api_udp = Vec::new();
        for svc in role.services() {
            if svc.raft_port().is_some() {
                raft.extend(svc.tcp_ports());
            } else {
                api_tcp.push(svc.api_port());
                api_udp.extend(svc.udp_ports());
            }
        }
        let nft = RoleNft {
            cluster: inv.cluster.name.clone(),
            role: role.as_str(),
            management,
            production,
            api_sources: sources(production, management),
            raft_ports: join(&raft),
            api_tcp_ports: join(&api_tcp),
            api_udp_ports: join(&api_udp),
        };
        out.add(
            format!("firewall/{}.nft", role.as_str()),
            nft.render().map_err(askama_err("firewall/role.nft"))?,
        );
    }
    Ok(())
}
