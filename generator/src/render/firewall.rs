//! firewall/<role>.nft and firewall/pxe-server.nft: the runbook's nftables policy (3.4), each
//! the body of one table that NixOS loads with `networking.nftables.tables`.

use askama::Template;

use super::{RenderError, Rendered, askama_err};
use crate::inventory::{Cidr, Inventory, Role};

#[derive(Template)]
#[template(path = "firewall/role.nft", escape = "none")]
struct RoleNft {
    cluster: String,
    table: &'static str,
    role: &'static str,
    management: Cidr,
    production: Cidr,
    /// Members and the management network (operator tools).
    api_sources: String,
    raft_ports: String,
    admin_ports: String,
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

/// An nft source: the subnets in order, without one that another contains (nft rejects
/// overlapping elements in one set); a single subnet without braces.
fn sources(all: &[Cidr]) -> String {
    let mut kept: Vec<Cidr> = Vec::new();
    for (i, x) in all.iter().enumerate() {
        let covered = all.iter().enumerate().any(|(j, y)| {
            j != i
                && y.prefix <= x.prefix
                && y.contains(x.network)
                && (y.prefix < x.prefix || j < i)
        });
        if !covered && !kept.contains(x) {
            kept.push(*x);
        }
    }
    match kept.as_slice() {
        [one] => one.to_string(),
        many => format!(
            "{{ {} }}",
            many.iter()
                .map(Cidr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[derive(Template)]
#[template(path = "firewall/pxe-server.nft", escape = "none")]
struct PxeServerNft {
    cluster: String,
    table: &'static str,
    provisioning: Cidr,
    http_ports: String,
    collector_port: u16,
    collector_sources: String,
}

/// The nftables table of a node's rules (`networking.nftables.tables.<name>`).
pub const NODE_TABLE: &str = "plasmacloud";
/// The nftables table of the provisioning server's rules.
pub const PXE_TABLE: &str = "plasmacloud-pxe";

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
        table: PXE_TABLE,
        provisioning: inv.provisioning.subnet,
        http_ports: join(&[super::pxe::HTTP_PORT, super::pxe::COLLECTOR_BOOT_PORT]),
        collector_port: collector_port(&inv.cluster.collector_url),
        collector_sources: sources(&[
            inv.provisioning.subnet,
            inv.production.subnet,
            inv.ssh_source(),
        ]),
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
        let mut admin = Vec::new();
        let mut api_tcp = Vec::new();
        let mut api_udp = Vec::new();
        for svc in role.services() {
            if let Some(port) = svc.raft_port() {
                // Operator tools (verify, rollout, decommission) call the admin API from the
                // management network (runbook 10.4); Raft itself stays between members.
                admin.push(svc.api_port());
                raft.push(port);
                raft.extend(svc.gossip_port());
            } else {
                api_tcp.push(svc.api_port());
                api_udp.extend(svc.udp_ports());
            }
        }
        let nft = RoleNft {
            cluster: inv.cluster.name.clone(),
            table: NODE_TABLE,
            role: role.as_str(),
            management,
            production,
            api_sources: sources(&[production, management]),
            raft_ports: join(&raft),
            admin_ports: join(&admin),
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
