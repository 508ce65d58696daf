//! DNS zones (runbook 3.3): the cluster domain (nodes on the production network, their
//! provisioning addresses under `prov`, service VIPs) and one reverse zone per network.

use std::net::Ipv4Addr;
use std::path::Path;

use askama::Template;

use super::{RenderError, Rendered, askama_err};
use crate::inventory::{Cidr, Inventory, Role};

/// Stands for the SOA serial until [`settle_serials`] picks the real one.
const SERIAL_PLACEHOLDER: &str = "0000000000";

struct Record {
    name: String,
    ip: Ipv4Addr,
}

struct Group {
    title: String,
    records: Vec<Record>,
}

#[derive(Template)]
#[template(path = "dns/forward.zone", escape = "none")]
struct ForwardZone {
    cluster: String,
    domain: String,
    serial: &'static str,
    pxe_server: Ipv4Addr,
    groups: Vec<Group>,
}

struct Ptr {
    name: String,
    target: String,
}

#[derive(Template)]
#[template(path = "dns/reverse.zone", escape = "none")]
struct ReverseZone {
    cluster: String,
    domain: String,
    zone: String,
    subnet: Cidr,
    serial: &'static str,
    records: Vec<Ptr>,
}

/// `in-addr.arpa` zone covering `subnet` (rounded out to an octet boundary), and the relative
/// record name of `ip` inside it.
pub fn reverse_zone(subnet: Cidr) -> String {
    let octets = subnet.network.octets();
    let labels = usize::from(subnet.prefix / 8).max(1);
    let mut parts: Vec<String> = octets[..labels].iter().rev().map(u8::to_string).collect();
    parts.push("in-addr.arpa".into());
    parts.join(".")
}

fn reverse_name(subnet: Cidr, ip: Ipv4Addr) -> String {
    let labels = usize::from(subnet.prefix / 8).max(1);
    ip.octets()[labels..]
        .iter()
        .rev()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

pub fn render(inv: &Inventory, out: &mut Rendered) -> Result<(), RenderError> {
    let domain = &inv.cluster.domain;
    let mut groups = Vec::new();
    for (role, title) in [
        (Role::ControlPlane, "Control plane nodes"),
        (Role::AllInOne, "All-in-one nodes"),
        (Role::Worker, "Worker nodes"),
    ] {
        let records: Vec<Record> = inv
            .nodes
            .iter()
            .filter(|n| n.role == role)
            .map(|n| Record {
                name: n.hostname.clone(),
                ip: n.production_ip,
            })
            .collect();
        if !records.is_empty() {
            groups.push(Group {
                title: title.into(),
                records,
            });
        }
    }
    groups.push(Group {
        title: "Provisioning addresses".into(),
        records: inv
            .nodes
            .iter()
            .map(|n| Record {
                name: format!("{}.prov", n.hostname),
                ip: n.provisioning_ip,
            })
            .collect(),
    });
    if !inv.vips.is_empty() {
        groups.push(Group {
            title: "Service VIPs".into(),
            records: inv
                .vips
                .iter()
                .map(|(name, ip)| Record {
                    name: name.clone(),
                    ip: *ip,
                })
                .collect(),
        });
    }
    let fwd = ForwardZone {
        cluster: inv.cluster.name.clone(),
        domain: domain.clone(),
        serial: SERIAL_PLACEHOLDER,
        pxe_server: inv.provisioning.pxe_server,
        groups,
    };
    out.add(
        format!("dns/{domain}.zone"),
        fwd.render().map_err(askama_err("dns/forward.zone"))?,
    );

    for (subnet, addrs) in [
        (
            inv.production.subnet,
            inv.nodes
                .iter()
                .map(|n| (n.production_ip, inv.fqdn(n)))
                .collect::<Vec<_>>(),
        ),
        (inv.provisioning.subnet, {
            let mut v: Vec<_> = inv
                .nodes
                .iter()
                .map(|n| (n.provisioning_ip, format!("{}.prov.{domain}", n.hostname)))
                .collect();
            v.push((inv.provisioning.pxe_server, format!("pxe.{domain}")));
            v
        }),
    ] {
        let zone = reverse_zone(subnet);
        let mut records: Vec<Ptr> = addrs
            .into_iter()
            .map(|(ip, target)| Ptr {
                name: reverse_name(subnet, ip),
                target,
            })
            .collect();
        records.sort_by(|a, b| a.name.cmp(&b.name));
        let rev = ReverseZone {
            cluster: inv.cluster.name.clone(),
            domain: domain.clone(),
            zone: zone.clone(),
            subnet,
            serial: SERIAL_PLACEHOLDER,
            records,
        };
        out.add(
            format!("dns/{zone}.zone"),
            rev.render().map_err(askama_err("dns/reverse.zone"))?,
        );
    }
    Ok(())
}

/// Give every zone a SOA serial: the previous one while the zone's records are unchanged (so a
/// re-run changes nothing), else a new one greater than the previous and than `<today>00`, so
/// secondaries pick the change up.
pub fn settle_serials(rendered: &mut Rendered, flake_dir: &Path, today_yyyymmdd: u32) {
    let base = u64::from(today_yyyymmdd) * 100;
    for (rel, bytes) in rendered.files.iter_mut() {
        if rel.extension().is_none_or(|e| e != "zone") {
            continue;
        }
        let new = String::from_utf8_lossy(bytes).into_owned();
        let old = std::fs::read_to_string(flake_dir.join(rel)).ok();
        let old_serial = old.as_deref().and_then(serial_of);
        let serial = match (old.as_deref(), old_serial) {
            (Some(old_text), Some(s))
                if old_text.replacen(&format!("{s:010}"), SERIAL_PLACEHOLDER, 1) == new =>
            {
                s
            }
            (_, Some(s)) => (s + 1).max(base),
            _ => base,
        };
        *bytes = new
            .replacen(SERIAL_PLACEHOLDER, &format!("{serial:010}"), 1)
            .into_bytes();
    }
}

fn serial_of(zone: &str) -> Option<u64> {
    zone.lines()
        .find(|l| l.contains("; serial"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_zone_names() {
        let c: Cidr = "10.0.200.0/24".parse().unwrap();
        assert_eq!(reverse_zone(c), "200.0.10.in-addr.arpa");
        assert_eq!(reverse_name(c, Ipv4Addr::new(10, 0, 200, 12)), "12");
        let c: Cidr = "172.16.0.0/16".parse().unwrap();
        assert_eq!(reverse_zone(c), "16.172.in-addr.arpa");
        assert_eq!(reverse_name(c, Ipv4Addr::new(172, 16, 1, 10)), "10.1");
        let c: Cidr = "10.4.0.0/22".parse().unwrap();
        assert_eq!(reverse_zone(c), "4.10.in-addr.arpa");
    }
}
