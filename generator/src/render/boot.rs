//! nodes/<fqdn>/boot.nix: bootloader, RAID monitoring and LUKS unlock, from the node's firmware
//! and disk layout (disko's own examples: systemd-boot on one ESP; GRUB with EF02 partitions
//! for BIOS and for mirrored disks).

use askama::Template;

use super::{RenderError, Rendered, askama_err, nix};
use crate::inventory::{DiskLayout, Firmware, Inventory, Node};

/// Port of the initrd SSH server (not 22: clients keep a different host key for it).
pub const INITRD_SSH_PORT: u16 = 2222;
/// The initrd SSH host key on the node, relative to the `--extra-files` root.
pub const INITRD_HOST_KEY: &str = "etc/secrets/initrd/ssh_host_ed25519_key";

/// NIC drivers the initrd carries so the provisioning NIC comes up for SSH: the common server
/// and virtual NICs of the mainline kernel.
const NIC_MODULES: &[&str] = &[
    "e1000",
    "e1000e",
    "igb",
    "ixgbe",
    "i40e",
    "ice",
    "bnxt_en",
    "bnx2x",
    "tg3",
    "mlx4_core",
    "mlx4_en",
    "mlx5_core",
    "r8169",
    "virtio_net",
];

#[derive(Template)]
#[template(path = "flake/boot.nix", escape = "none")]
struct BootNix {
    fqdn: String,
    hostname: String,
    firmware: &'static str,
    layout: &'static str,
    uefi: bool,
    systemd_boot: bool,
    raid: bool,
    unlock_ssh: bool,
    provisioning_ip: String,
    provisioning_mac: String,
    provisioning_address: String,
    ssh_port: u16,
    ssh_keys: String,
    host_key: String,
    nic_modules: String,
}

/// systemd-boot only for UEFI on a plain ESP: it cannot install onto an mdadm /boot (disko
/// tests/boot-raid1.nix) and does not exist for BIOS.
pub fn uses_systemd_boot(node: &Node) -> bool {
    node.firmware == Firmware::Uefi && node.disk_layout != DiskLayout::Raid1
}

pub fn render(
    inv: &Inventory,
    node: &Node,
    dir: &str,
    out: &mut Rendered,
) -> Result<(), RenderError> {
    let unlock_ssh = inv.unlocks_over_initrd_ssh(node);
    let text = BootNix {
        fqdn: inv.fqdn(node),
        hostname: node.hostname.clone(),
        firmware: node.firmware.as_str(),
        layout: node.disk_layout.as_str(),
        uefi: node.firmware == Firmware::Uefi,
        systemd_boot: uses_systemd_boot(node),
        raid: node.disk_layout == DiskLayout::Raid1,
        unlock_ssh,
        provisioning_ip: node.provisioning_ip.to_string(),
        provisioning_mac: nix::string(node.mac.as_str()),
        provisioning_address: nix::string(&inv.provisioning_address(node)),
        ssh_port: INITRD_SSH_PORT,
        ssh_keys: nix::string_list(&inv.cluster.ssh_authorized_keys),
        host_key: nix::string(&format!("/{INITRD_HOST_KEY}")),
        nic_modules: nix::string_list(NIC_MODULES),
    }
    .render()
    .map_err(askama_err("flake/boot.nix"))?;
    out.add_nix(format!("{dir}/boot.nix"), "flake/boot.nix", text)
}
