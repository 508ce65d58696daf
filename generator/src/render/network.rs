//! nodes/<fqdn>/network.nix: the node's NICs for systemd-networkd, matched by permanent MAC
//! address. One production NIC carries the address (or the VLAN); two or more form a bond.

use askama::Template;

use super::{RenderError, Rendered, askama_err, nix};
use crate::inventory::{BondMode, Inventory, Node};

/// Name of the production bond device.
pub const BOND: &str = "bond0";

#[derive(Template)]
#[template(path = "flake/network.nix", escape = "none")]
struct NetworkNix {
    fqdn: String,
    hostname: String,
    domain: String,
    legacy: bool,
    nameservers: String,
    netdevs: Vec<Netdev>,
    networks: Vec<Network>,
}

struct Netdev {
    unit: String,
    kind: String,
    name: String,
    bond_mode: Option<String>,
    lacp: bool,
    vlan_id: Option<u16>,
}

struct Network {
    comment: String,
    unit: String,
    match_key: &'static str,
    match_value: String,
    /// Set on bond members: the bond they join.
    bond: Option<String>,
    vlans: String,
    addresses: String,
    gateways: String,
    required_for_online: String,
}

impl Network {
    fn new(comment: String, unit: &str, match_key: &'static str, match_value: &str) -> Network {
        Network {
            comment,
            unit: nix::string(unit),
            match_key,
            match_value: nix::string(match_value),
            bond: None,
            vlans: String::new(),
            addresses: String::new(),
            gateways: String::new(),
            required_for_online: nix::string("routable"),
        }
    }
}

pub fn render(
    inv: &Inventory,
    node: &Node,
    dir: &str,
    out: &mut Rendered,
) -> Result<(), RenderError> {
    let prod = &inv.production;
    let mut netdevs = Vec::new();
    let mut networks = Vec::new();

    let mut provisioning = Network::new(
        "provisioning (PXE) NIC: the address of its DHCP reservation; no default route".into(),
        "10-provisioning",
        "PermanentMACAddress",
        node.mac.as_str(),
    );
    provisioning.addresses = nix::string_list(&[inv.provisioning_address(node)]);
    // The provisioning network is temporary (runbook 3.5): the node is online when its
    // production network is, not when a PXE cable still happens to be plugged in.
    provisioning.required_for_online = nix::string("no");
    networks.push(provisioning);

    // The link the production network rides on: a NIC, a bond, or eth1 (legacy).
    let carrier_unit = "20-production";
    let mut carrier = match node.production_macs.as_slice() {
        [] => Network::new(
            "production NIC by kernel name (legacy)".into(),
            carrier_unit,
            "Name",
            "eth1",
        ),
        [mac] => Network::new(
            "production NIC".into(),
            carrier_unit,
            "PermanentMACAddress",
            mac.as_str(),
        ),
        macs => {
            let mode = prod.bond_mode;
            netdevs.push(Netdev {
                unit: nix::string(&format!("20-{BOND}")),
                kind: nix::string("bond"),
                name: nix::string(BOND),
                bond_mode: Some(nix::string(mode.as_str())),
                lacp: mode == BondMode::Lacp,
                vlan_id: None,
            });
            for (i, mac) in macs.iter().enumerate() {
                let mut member = Network::new(
                    format!("{BOND} member {} of {}", i + 1, macs.len()),
                    &format!("20-{BOND}-member{i}"),
                    "PermanentMACAddress",
                    mac.as_str(),
                );
                member.bond = Some(nix::string(BOND));
                networks.push(member);
            }
            Network::new(
                format!("{BOND} ({})", mode.as_str()),
                &format!("30-{BOND}"),
                "Name",
                BOND,
            )
        }
    };
    let address = nix::string_list(&[inv.production_address(node)]);
    let gateway = nix::string_list(&[prod.gateway.to_string()]);
    match prod.vlan {
        Some(id) => {
            let name = format!("vlan{id}");
            netdevs.push(Netdev {
                unit: nix::string(&format!("40-{name}")),
                kind: nix::string("vlan"),
                name: nix::string(&name),
                bond_mode: None,
                lacp: false,
                vlan_id: Some(id),
            });
            carrier.vlans = nix::string_list(std::slice::from_ref(&name));
            // The tagged VLAN carries the address; the untagged link only needs to be up.
            carrier.required_for_online = nix::string("carrier");
            networks.push(carrier);
            let mut tagged = Network::new(
                format!("production network, VLAN {id}"),
                &format!("40-{name}"),
                "Name",
                &name,
            );
            tagged.addresses = address;
            tagged.gateways = gateway;
            networks.push(tagged);
        }
        None => {
            carrier.addresses = address;
            carrier.gateways = gateway;
            networks.push(carrier);
        }
    }

    let text = NetworkNix {
        fqdn: inv.fqdn(node),
        hostname: nix::string(&node.hostname),
        domain: nix::string(&inv.cluster.domain),
        legacy: node.production_macs.is_empty(),
        nameservers: nix::string_list(
            &prod
                .nameservers
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>(),
        ),
        netdevs,
        networks,
    }
    .render()
    .map_err(askama_err("flake/network.nix"))?;
    out.add_nix(format!("{dir}/network.nix"), "flake/network.nix", text)
}
