//! Per-node files: nodes/<fqdn>/{configuration.nix, disko.nix, hardware.nix, cluster-config.json}.

use std::collections::BTreeMap;

use askama::Template;
use plasma_wire::{ClusterConfig, ServiceEndpoint, TlsPaths};

use super::{RenderError, Rendered, askama_err, nix};
use crate::inventory::{DiskLayout, Firmware, Inventory, Node, Service};

/// Where nixos-anywhere --extra-files puts the node's keys (runbook 5.3 Step 3.4).
pub const SECRETS_DIR_ON_NODE: &str = "/etc/nixos/secrets";
/// Where disko reads the LUKS passphrase: where `plasmagen provision` uploads it
/// (nixos-anywhere --disk-encryption-keys).
pub const LUKS_KEY_FILE: &str = plasma_operator::install::LUKS_KEY_REMOTE;

pub fn tls_paths(node: &Node) -> TlsPaths {
    TlsPaths {
        ca: format!("{SECRETS_DIR_ON_NODE}/ca-cert.pem"),
        cert: format!("{SECRETS_DIR_ON_NODE}/{}-cert.pem", node.hostname),
        key: format!("{SECRETS_DIR_ON_NODE}/{}-key.pem", node.hostname),
    }
}

#[derive(Template)]
#[template(path = "flake/configuration.nix", escape = "none")]
struct ConfigurationNix {
    fqdn: String,
    role: &'static str,
    hostname: String,
    cluster: String,
    chainfire: bool,
    flaredb: bool,
    iam: bool,
    cert_path: String,
    key_path: String,
    ca_path: String,
    join_services: String,
    iam_health_url: Option<String>,
    health_timeout: u64,
    join_timeout: u64,
    ssh_keys: String,
    state_version: String,
}

#[derive(Template)]
#[template(path = "flake/hardware.nix", escape = "none")]
struct HardwareNix {
    fqdn: String,
}

#[derive(Template)]
#[template(path = "flake/disko-single.nix", escape = "none")]
struct DiskoSingle {
    fqdn: String,
    firmware: &'static str,
    uefi: bool,
    disk: String,
}

#[derive(Template)]
#[template(path = "flake/disko-raid1.nix", escape = "none")]
struct DiskoRaid1 {
    fqdn: String,
    firmware: &'static str,
    disks: Vec<String>,
    disk_count: usize,
}

#[derive(Template)]
#[template(path = "flake/disko-luks-lvm.nix", escape = "none")]
struct DiskoLuksLvm {
    fqdn: String,
    hostname: String,
    firmware: &'static str,
    uefi: bool,
    disk: String,
    key_file: String,
    unlock: &'static str,
}

pub fn render(inv: &Inventory, node: &Node, out: &mut Rendered) -> Result<(), RenderError> {
    let fqdn = inv.fqdn(node);
    let dir = format!("nodes/{fqdn}");
    let c = &inv.cluster;
    let services = node.role.services();
    let tls = tls_paths(node);
    let raft = node.role.raft_services();
    let iam = services.contains(&Service::Iam);
    let conf = ConfigurationNix {
        fqdn: fqdn.clone(),
        role: node.role.as_str(),
        hostname: nix::string(&node.hostname),
        cluster: nix::string(&c.name),
        chainfire: services.contains(&Service::Chainfire),
        flaredb: services.contains(&Service::Flaredb),
        iam,
        cert_path: nix::string(&tls.cert),
        key_path: nix::string(&tls.key),
        ca_path: nix::string(&tls.ca),
        join_services: nix::string_list(&raft.iter().map(|s| s.name()).collect::<Vec<_>>()),
        iam_health_url: iam.then(|| nix::string("https://localhost:8080/health")),
        health_timeout: c.health_timeout_secs,
        join_timeout: c.join_timeout_secs,
        ssh_keys: nix::string_list(&c.ssh_authorized_keys),
        state_version: nix::string(&c.state_version),
    };
    out.add_nix(
        format!("{dir}/configuration.nix"),
        "flake/configuration.nix",
        conf.render()
            .map_err(askama_err("flake/configuration.nix"))?,
    )?;

    let hw = HardwareNix { fqdn: fqdn.clone() };
    out.add_nix(
        format!("{dir}/hardware.nix"),
        "flake/hardware.nix",
        hw.render().map_err(askama_err("flake/hardware.nix"))?,
    )?;

    let firmware = node.firmware.as_str();
    let uefi = node.firmware == Firmware::Uefi;
    let first_disk = nix::string(node.disks.first().map_or("/dev/sda", String::as_str));
    let (template, text) = match node.disk_layout {
        DiskLayout::Single => (
            "flake/disko-single.nix",
            DiskoSingle {
                fqdn: fqdn.clone(),
                firmware,
                uefi,
                disk: first_disk,
            }
            .render(),
        ),
        DiskLayout::Raid1 => (
            "flake/disko-raid1.nix",
            DiskoRaid1 {
                fqdn: fqdn.clone(),
                firmware,
                disks: node.disks.iter().map(|d| nix::string(d)).collect(),
                disk_count: node.disks.len(),
            }
            .render(),
        ),
        DiskLayout::LuksLvm => (
            "flake/disko-luks-lvm.nix",
            DiskoLuksLvm {
                fqdn: fqdn.clone(),
                hostname: node.hostname.clone(),
                firmware,
                uefi,
                disk: first_disk,
                key_file: nix::string(LUKS_KEY_FILE),
                unlock: inv.cluster.luks_unlock.as_str(),
            }
            .render(),
        ),
    };
    out.add_nix(
        format!("{dir}/disko.nix"),
        template,
        text.map_err(askama_err(template))?,
    )?;

    super::boot::render(inv, node, &dir, out)?;
    super::network::render(inv, node, &dir, out)?;

    let config = cluster_config(inv, node);
    let mut json = serde_json::to_string_pretty(&config).map_err(|source| RenderError::Json {
        what: format!("{dir}/cluster-config.json"),
        source,
    })?;
    json.push('\n');
    out.add(format!("{dir}/cluster-config.json"), json);
    Ok(())
}

/// The node's cluster-config.json: the runbook's fields plus what the agent needs.
pub fn cluster_config(inv: &Inventory, node: &Node) -> ClusterConfig {
    let bootstrap = inv.is_bootstrap(node);
    let members = inv.bootstrap_nodes();
    let peers = |port: u16| -> Vec<String> {
        if bootstrap {
            members
                .iter()
                .map(|m| format!("{}:{port}", inv.fqdn(m)))
                .collect()
        } else {
            Vec::new()
        }
    };
    let mut services = BTreeMap::new();
    for svc in node.role.raft_services() {
        let raft_port = svc.raft_port().expect("raft service");
        services.insert(
            svc.name().to_string(),
            ServiceEndpoint {
                local_url: format!("https://localhost:{}", svc.api_port()),
                // Production IPs, not names: a join must not depend on DNS being ready, and
                // every certificate carries its production IP as a SAN.
                join_urls: members
                    .iter()
                    .map(|m| format!("https://{}:{}", m.production_ip, svc.api_port()))
                    .collect(),
                raft_addr: format!("{}:{raft_port}", node.production_ip),
            },
        );
    }
    let leader_url = members
        .first()
        .map(|m| format!("https://{}:{}", inv.fqdn(m), Service::Chainfire.api_port()))
        .unwrap_or_default();
    ClusterConfig {
        node_id: node.hostname.clone(),
        node_role: node.role.as_str().to_string(),
        bootstrap,
        cluster_name: inv.cluster.name.clone(),
        leader_url,
        raft_addr: format!(
            "{}:{}",
            node.production_ip,
            Service::Chainfire.raft_port().expect("raft")
        ),
        initial_peers: peers(Service::Chainfire.raft_port().expect("raft")),
        flaredb_peers: peers(Service::Flaredb.raft_port().expect("raft")),
        services,
        tls: tls_paths(node),
        collector_url: inv.cluster.collector_url.clone(),
        health_timeout_secs: inv.cluster.health_timeout_secs,
        join_timeout_secs: inv.cluster.join_timeout_secs,
    }
}
