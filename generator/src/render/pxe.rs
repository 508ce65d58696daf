//! iPXE scripts: per-node netboot, local-disk boot for installed nodes (install-loop
//! avoidance), and the discovery script for unknown MACs. Shared by the static PXE artifacts
//! and the collector, which serves `GET /boot/<mac>.ipxe` depending on install state.

use askama::Template;

use super::{RenderError, askama_err};
use crate::inventory::{Inventory, Node, Role};

/// HTTP port of the PXE server's static files (runbook 3.2: `http://<pxe>:8080/boot/...`).
pub const HTTP_PORT: u16 = 8080;
/// Profile the discovery image uses for machines that are not in the inventory.
pub const DISCOVERY_PROFILE: Role = Role::Worker;

#[derive(Template)]
#[template(path = "pxe/node.ipxe", escape = "none")]
struct NodeIpxe<'a> {
    hostname: &'a str,
    mac: &'a str,
    profile: &'static str,
    collector_url: &'a str,
    image_base: String,
}

#[derive(Template)]
#[template(path = "pxe/local.ipxe", escape = "none")]
struct LocalIpxe<'a> {
    hostname: &'a str,
}

#[derive(Template)]
#[template(path = "pxe/discovery.ipxe", escape = "none")]
struct DiscoveryIpxe<'a> {
    collector_url: &'a str,
    profile: &'static str,
    image_base: String,
}

/// `http://<pxe_server>:8080/boot/nixos`: one directory per profile with bzImage, initrd,
/// netboot.ipxe (runbook 5.2).
pub fn image_base(inv: &Inventory) -> String {
    format!(
        "http://{}:{HTTP_PORT}/boot/nixos",
        inv.provisioning.pxe_server
    )
}

/// Netboot script of a node that is not installed yet.
pub fn netboot_script(inv: &Inventory, node: &Node) -> Result<String, RenderError> {
    NodeIpxe {
        hostname: &node.hostname,
        mac: node.mac.as_str(),
        profile: node.role.as_str(),
        collector_url: &inv.cluster.collector_url,
        image_base: image_base(inv),
    }
    .render()
    .map(with_newline)
    .map_err(askama_err("pxe/node.ipxe"))
}

/// Script for an installed node: boot the local disk.
pub fn local_boot_script(node: &Node) -> Result<String, RenderError> {
    LocalIpxe {
        hostname: &node.hostname,
    }
    .render()
    .map(with_newline)
    .map_err(askama_err("pxe/local.ipxe"))
}

/// Script for a MAC that is not in the inventory.
pub fn discovery_script(inv: &Inventory) -> Result<String, RenderError> {
    DiscoveryIpxe {
        collector_url: &inv.cluster.collector_url,
        profile: DISCOVERY_PROFILE.as_str(),
        image_base: image_base(inv),
    }
    .render()
    .map(with_newline)
    .map_err(askama_err("pxe/discovery.ipxe"))
}

fn with_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// Port of the collector's plain-HTTP boot listener (`plasmagen collector --boot-listen`),
/// which serves `GET /boot/<mac>.ipxe` by install state. Plain HTTP because iPXE cannot verify
/// the cluster CA; the scripts hold nothing secret.
pub const COLLECTOR_BOOT_PORT: u16 = 8081;
/// How long the boot menu waits before the automatic choice.
pub const MENU_TIMEOUT_MS: u32 = 5000;

/// `http://<pxe_server>:8080/boot/ipxe`: where the static scripts (this module) are served.
pub fn static_base(inv: &Inventory) -> String {
    format!(
        "http://{}:{HTTP_PORT}/boot/ipxe",
        inv.provisioning.pxe_server
    )
}

/// What DHCP hands to iPXE (runbook 3.2).
pub fn boot_script_url(inv: &Inventory) -> String {
    format!("{}/boot.ipxe", static_base(inv))
}

#[derive(Template)]
#[template(path = "pxe/boot.ipxe", escape = "none")]
struct BootIpxe {
    cluster: String,
    static_base: String,
    collector_boot_base: String,
    menu_timeout_ms: u32,
}

/// pxe/boot.ipxe, pxe/nodes/<mac>.ipxe (hyphenated MAC, as iPXE's `${mac:hexhyp}`),
/// pxe/discovery.ipxe.
pub fn render(inv: &Inventory, out: &mut super::Rendered) -> Result<(), RenderError> {
    let boot = BootIpxe {
        cluster: inv.cluster.name.clone(),
        static_base: static_base(inv),
        collector_boot_base: format!(
            "http://{}:{COLLECTOR_BOOT_PORT}",
            inv.provisioning.pxe_server
        ),
        menu_timeout_ms: MENU_TIMEOUT_MS,
    };
    out.add(
        "pxe/boot.ipxe",
        boot.render().map_err(askama_err("pxe/boot.ipxe"))?,
    );
    for node in &inv.nodes {
        out.add(
            format!("pxe/nodes/{}.ipxe", node.mac.dashed()),
            netboot_script(inv, node)?,
        );
    }
    out.add("pxe/discovery.ipxe", discovery_script(inv)?);
    Ok(())
}
