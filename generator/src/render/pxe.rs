//! iPXE scripts: the boot menu, plus the per-node netboot, local-disk boot (install-loop
//! avoidance) and discovery scripts, which live in [`plasma_inventory::ipxe`] because the
//! collector serves the same scripts at `GET /boot/<mac>.ipxe` depending on install state.

use askama::Template;
pub use plasma_inventory::ipxe::{
    DISCOVERY_PROFILE, HTTP_PORT, discovery_script, image_base, local_boot_script, netboot_script,
};

use super::{RenderError, askama_err};
use crate::inventory::Inventory;

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
