//! An N-node fleet on disk for scale tests: `inventory.toml` (the layout of
//! examples/collector_load.rs `setup`: 3 control-plane founders, the rest workers, one /16 per
//! network, production NICs by MAC so the loader has nothing to warn about) and the plasma-pki
//! secrets directory with a certificate per node.
//!
//! Self-contained (no `super::`) so the fleet harness can include it with `#[path]` too.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use plasma_pki::store::{self, NodeIdentity, StoreInput};

/// What [`write_fleet`] wrote.
#[derive(Debug, Clone)]
pub struct BigFleet {
    pub inventory: PathBuf,
    pub secrets: PathBuf,
    /// Inventory order: `hosts[0..3]` are the control-plane founders.
    pub hosts: Vec<String>,
    pub domain: String,
}

/// Hostname of node `i`: fixed width so inventory order is name order.
pub fn host(i: usize) -> String {
    format!("n{i:04}")
}

/// Node `i`'s provisioning and production addresses: 250 per /24, so up to 65,000 nodes.
fn addresses(i: usize) -> (Ipv4Addr, Ipv4Addr) {
    let (a, b) = (
        u8::try_from(i / 250).expect("at most 65,000 nodes"),
        (i % 250) as u8 + 1,
    );
    (Ipv4Addr::new(10, 100, a, b), Ipv4Addr::new(10, 200, a, b))
}

/// Write `dir/inventory.toml` and `dir/secrets/` for `nodes` nodes (at least 3: the founders).
pub fn write_fleet(dir: &Path, nodes: usize) -> BigFleet {
    assert!(nodes >= 3, "a fleet has three founders");
    std::fs::create_dir_all(dir).expect("fleet directory");
    let domain = "scale.example".to_string();
    let mut toml = format!(
        r#"[cluster]
name = "scale"
domain = "{domain}"
bootstrap = ["{}", "{}", "{}"]
ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkd86f/K36q5Khr2jtCpqAhME6U6WYvfZ+SRxEj42Ve scale@example.com"]
state_version = "26.05"
collector_url = "https://10.100.255.250:8443"

[networks.provisioning]
subnet = "10.100.0.0/16"
gateway = "10.100.255.254"
nameservers = ["10.100.255.254"]
dhcp_range = {{ start = "10.100.254.1", end = "10.100.254.200" }}
pxe_server = "10.100.255.250"
interface = "eth0"

[networks.production]
subnet = "10.200.0.0/16"
gateway = "10.200.255.254"
nameservers = ["10.200.255.254"]
"#,
        host(0),
        host(1),
        host(2)
    );
    let mut ids = Vec::with_capacity(nodes);
    let mut hosts = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let h = host(i);
        let (prov, prod) = addresses(i);
        let role = if i < 3 { "control-plane" } else { "worker" };
        toml.push_str(&format!(
            "\n[[nodes]]\nhostname = \"{h}\"\nrole = \"{role}\"\nmac = \"52:54:02:{mac}\"\n\
             production_macs = [\"52:54:03:{mac}\"]\n\
             provisioning_ip = \"{prov}\"\nproduction_ip = \"{prod}\"\n\
             disks = [\"/dev/disk/by-id/wwn-0x5000c500{i:08x}\"]\n",
            mac = format!(
                "{:02x}:{:02x}:{:02x}",
                (i >> 16) & 0xff,
                (i >> 8) & 0xff,
                i & 0xff
            ),
        ));
        ids.push(NodeIdentity {
            hostname: h.clone(),
            fqdn: format!("{h}.{domain}"),
            ips: vec![IpAddr::V4(prod), IpAddr::V4(prov)],
        });
        hosts.push(h);
    }
    let inventory = dir.join("inventory.toml");
    std::fs::write(&inventory, toml).expect("write inventory");
    let secrets = dir.join("secrets");
    let input = StoreInput::new("scale", ids, IpAddr::V4(Ipv4Addr::new(10, 100, 255, 250)));
    store::apply(&secrets, &input, time::OffsetDateTime::now_utc()).expect("issue certificates");
    BigFleet {
        inventory,
        secrets,
        hosts,
        domain,
    }
}
