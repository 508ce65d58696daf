//! Per-node iPXE scripts: netboot for a node not installed yet, local-disk boot for an installed
//! one (install-loop avoidance), and the discovery script for unknown MACs. Shared by the
//! generator's static PXE artifacts and the collector, which serves `GET /boot/<mac>.ipxe`
//! depending on install state; here because both depend on this crate and not on each other.

use askama::Template;

use crate::inventory::{Inventory, Node, Role};

/// HTTP port of the PXE server's static files (runbook 3.2: `http://<pxe>:8080/boot/...`).
pub const HTTP_PORT: u16 = 8080;
/// Profile the discovery image uses for machines that are not in the inventory.
pub const DISCOVERY_PROFILE: Role = Role::Worker;

/// A template failed to render: a bug, never the operator's fault.
#[derive(Debug, thiserror::Error)]
#[error("internal error: template {template} failed: {source}")]
pub struct TemplateError {
    pub template: &'static str,
    #[source]
    pub source: askama::Error,
}

fn template_err(template: &'static str) -> impl FnOnce(askama::Error) -> TemplateError {
    move |source| TemplateError { template, source }
}

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
pub fn netboot_script(inv: &Inventory, node: &Node) -> Result<String, TemplateError> {
    NodeIpxe {
        hostname: &node.hostname,
        mac: node.mac.as_str(),
        profile: node.role.as_str(),
        collector_url: &inv.cluster.collector_url,
        image_base: image_base(inv),
    }
    .render()
    .map(with_newline)
    .map_err(template_err("pxe/node.ipxe"))
}

/// Script for an installed node: boot the local disk.
pub fn local_boot_script(node: &Node) -> Result<String, TemplateError> {
    LocalIpxe {
        hostname: &node.hostname,
    }
    .render()
    .map(with_newline)
    .map_err(template_err("pxe/local.ipxe"))
}

/// Script for a MAC that is not in the inventory.
pub fn discovery_script(inv: &Inventory) -> Result<String, TemplateError> {
    DiscoveryIpxe {
        collector_url: &inv.cluster.collector_url,
        profile: DISCOVERY_PROFILE.as_str(),
        image_base: image_base(inv),
    }
    .render()
    .map(with_newline)
    .map_err(template_err("pxe/discovery.ipxe"))
}

fn with_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}
