//! Targets from the generated flake's inventory copy and the secrets directory: every file a
//! node's installation needs is found here, before anything is powered, and every problem is
//! reported at once.

use std::env;
use std::fs;
use std::io::Write;
use std::path::PathBuf;

use plasma_inventory::inventory::{BmcProtocol, DiskLayout, Firmware, Inventory, Node};

use super::Target;
use crate::bmc::ipmi::Ipmi;
use crate::bmc::manual::Manual;
use crate::bmc::redfish::Redfish;
use crate::bmc::{Bmc, BootMode, Credentials, Password, Tls};
use crate::install::Install;

/// The generated output: `OUT/flake`, the secrets directory, `OUT/logs` (built by the
/// command line, which checks the secrets are not inside the flake).
#[derive(Debug, Clone)]
pub struct Layout {
    pub flake: PathBuf,
    pub secrets: PathBuf,
    pub logs: PathBuf,
}

impl Layout {
    pub fn known_hosts(&self) -> PathBuf {
        self.secrets.join("known_hosts")
    }

    pub fn host_key_pub(&self, hostname: &str) -> PathBuf {
        self.secrets
            .join("nodes")
            .join(hostname)
            .join("etc/ssh/ssh_host_ed25519_key.pub")
    }
}

/// Where the operator's own values come from (CLI flags).
pub struct Settings<'a> {
    pub extra_args: &'a [String],
    /// Write nixos-facter's report into the flake (`nodes/<fqdn>/facter.json`).
    pub hardware_report: bool,
    /// Where the manual driver's instructions go.
    pub manual_out: &'a (dyn Fn() -> Box<dyn Write + Send> + Sync),
}

/// The targets for `nodes`, or every problem found (file, node, what to do).
pub fn targets(
    inv: &Inventory,
    layout: &Layout,
    nodes: &[&Node],
    settings: &Settings<'_>,
) -> Result<Vec<Target>, Vec<String>> {
    let mut problems = Vec::new();
    let mut targets = Vec::new();
    for node in nodes {
        match target(inv, layout, node, settings) {
            Ok(t) => targets.push(t),
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(targets)
    } else {
        Err(problems)
    }
}

fn target(
    inv: &Inventory,
    layout: &Layout,
    node: &Node,
    settings: &Settings<'_>,
) -> Result<Target, Vec<String>> {
    let h = &node.hostname;
    let mut problems = Vec::new();
    let extra_files = layout.secrets.join("nodes").join(h);
    if !extra_files.is_dir() {
        problems.push(format!(
            "{h}: {} is missing (run plasmagen generate with the same --secrets)",
            extra_files.display()
        ));
    }
    let host_key = fs::read_to_string(layout.host_key_pub(h)).ok();
    if host_key.is_none() {
        problems.push(format!(
            "{h}: {} is missing: the node would come up with an unknown host key",
            layout.host_key_pub(h).display()
        ));
    }
    let luks_key = (node.disk_layout == DiskLayout::LuksLvm)
        .then(|| layout.secrets.join("luks").join(format!("{h}.key")));
    if let Some(key) = &luks_key
        && !key.is_file()
    {
        problems.push(format!(
            "{h}: {} is missing: the LUKS passphrase of a luks-lvm node",
            key.display()
        ));
    }
    let bmc = match bmc(node, settings) {
        Ok(b) => Some(b),
        Err(e) => {
            problems.push(format!("{h}: {e}"));
            None
        }
    };
    let (Some(bmc), true) = (bmc, problems.is_empty()) else {
        return Err(problems);
    };
    let fqdn = inv.fqdn(node);
    Ok(Target {
        hostname: h.clone(),
        address: node.provisioning_ip.to_string(),
        bootstrap: inv.is_bootstrap(node),
        boot_mode: match node.firmware {
            Firmware::Uefi => BootMode::Uefi,
            Firmware::Bios => BootMode::Legacy,
        },
        bmc,
        needs_ipmitool: node
            .bmc
            .as_ref()
            .is_some_and(|b| b.protocol == BmcProtocol::Ipmi),
        install: Install {
            flake_ref: format!("{}#{h}", layout.flake.display()),
            address: node.provisioning_ip.to_string(),
            extra_files,
            luks_key,
            facter_report: settings
                .hardware_report
                .then(|| layout.flake.join("nodes").join(&fqdn).join("facter.json")),
            extra_args: settings.extra_args.to_vec(),
        },
        installed_host_key: host_key.map(|k| k.trim().to_string()),
        unlock: inv.unlocks_over_initrd_ssh(node),
    })
}

/// A BMC's password: `password_file`, else the environment (`IPMITOOL_PASSWORD`/`IPMI_PASSWORD`
/// for IPMI as ipmitool -E reads them, `REDFISH_PASSWORD` for Redfish). Also what
/// `plasmagen lab up` gives its emulated BMCs, so provision logs in with the same.
pub fn bmc_password(b: &plasma_inventory::inventory::Bmc) -> Result<String, String> {
    let env_names: &[&str] = match b.protocol {
        BmcProtocol::Ipmi => &["IPMITOOL_PASSWORD", "IPMI_PASSWORD"],
        BmcProtocol::Redfish => &["REDFISH_PASSWORD"],
    };
    match &b.password_file {
        Some(file) => fs::read_to_string(file)
            .map(|p| p.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| format!("bmc.password_file {file}: {e}")),
        None => env_names
            .iter()
            .find_map(|n| env::var(n).ok())
            .ok_or_else(|| {
                format!(
                    "no BMC password: set bmc.password_file or {}",
                    env_names.join(" / ")
                )
            }),
    }
}

/// The node's BMC driver; the password from `password_file`, else the environment
/// (`IPMITOOL_PASSWORD`/`IPMI_PASSWORD` for IPMI as ipmitool -E reads them,
/// `REDFISH_PASSWORD` for Redfish). No BMC: the manual driver.
fn bmc(node: &Node, settings: &Settings<'_>) -> Result<Box<dyn Bmc>, String> {
    let Some(b) = &node.bmc else {
        return Ok(Box::new(Manual::new(
            node.hostname.clone(),
            (settings.manual_out)(),
        )));
    };
    let password = bmc_password(b)?;
    let credentials = Credentials {
        username: b.username.clone(),
        password: Password::new(password),
    };
    Ok(match b.protocol {
        BmcProtocol::Ipmi => Box::new(Ipmi::new(&b.address, credentials)),
        BmcProtocol::Redfish => {
            let url = if b.address.starts_with("https://") || b.address.starts_with("http://") {
                b.address.clone()
            } else {
                format!("https://{}", b.address)
            };
            let tls = if b.insecure {
                Tls::Insecure
            } else {
                Tls::Verify {
                    ca_file: b.ca_file.as_ref().map(PathBuf::from),
                }
            };
            Box::new(
                Redfish::new(&url, Some(credentials), b.system.clone(), tls)
                    .map_err(|e| e.to_string())?,
            )
        }
    })
}
