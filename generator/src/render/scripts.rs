//! scripts/*.sh: the operator's provisioning, verification, rolling-update and decommission
//! scripts (runbook 5.4, 6.2-6.4, 7.4, 7.6), with the inventory's node table baked in.
//!
//! Every inventory value reaches bash single-quoted by [`quote`]; validation already limits
//! them to safe characters, the quoting is what makes that irrelevant.

use askama::Template;

use super::{RenderError, Rendered, askama_err, node::LUKS_KEY_FILE};
use crate::inventory::{Inventory, Service};

/// The scripts, relative to the flake directory.
pub const SCRIPTS: [&str; 4] = [
    "scripts/provision.sh",
    "scripts/verify-cluster.sh",
    "scripts/rolling-update.sh",
    "scripts/decommission.sh",
];

/// One bash word holding exactly `s`.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What every script carries: cluster facts and the node table (templates/scripts/lib.sh).
struct Common {
    name: String,
    source: String,
    cluster: String,
    collector_url: String,
    chainfire_port: u16,
    flaredb_port: u16,
    iam_port: u16,
    luks_key_remote: String,
    nodes: Vec<NodeRow>,
}

/// One `node ...` line; every field a quoted bash word.
struct NodeRow {
    hostname: String,
    role: String,
    provisioning_ip: String,
    production_ip: String,
    layout: String,
    bmc_address: String,
    bmc_user: String,
    bmc_password_file: String,
    bootstrap: u8,
    services: String,
}

#[derive(Template)]
#[template(path = "scripts/provision.sh", escape = "none")]
struct Provision<'a> {
    c: &'a Common,
}

#[derive(Template)]
#[template(path = "scripts/verify-cluster.sh", escape = "none")]
struct VerifyCluster<'a> {
    c: &'a Common,
}

#[derive(Template)]
#[template(path = "scripts/rolling-update.sh", escape = "none")]
struct RollingUpdate<'a> {
    c: &'a Common,
}

#[derive(Template)]
#[template(path = "scripts/decommission.sh", escape = "none")]
struct Decommission<'a> {
    c: &'a Common,
}

fn common(inv: &Inventory) -> Common {
    let source = inv.source.file_name().map_or_else(
        || inv.source.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let nodes = inv
        .nodes
        .iter()
        .map(|n| {
            // The scripts speak IPMI only; a Redfish BMC is driven by plasmagen's own drivers.
            let bmc = n
                .bmc
                .as_ref()
                .filter(|b| b.protocol == crate::inventory::BmcProtocol::Ipmi);
            NodeRow {
                hostname: quote(&n.hostname),
                role: quote(n.role.as_str()),
                provisioning_ip: quote(&n.provisioning_ip.to_string()),
                production_ip: quote(&n.production_ip.to_string()),
                layout: quote(n.disk_layout.as_str()),
                bmc_address: quote(bmc.map_or("", |b| b.address.as_str())),
                bmc_user: quote(bmc.map_or("", |b| b.username.as_str())),
                bmc_password_file: quote(
                    bmc.and_then(|b| b.password_file.as_deref()).unwrap_or(""),
                ),
                bootstrap: u8::from(inv.is_bootstrap(n)),
                services: quote(
                    &n.role
                        .services()
                        .iter()
                        .map(|s| s.name())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            }
        })
        .collect();
    Common {
        // Comment text: one line whatever the names hold.
        name: inv.cluster.name.replace(['\n', '\r'], " "),
        source: source.replace(['\n', '\r'], " "),
        cluster: quote(&inv.cluster.name),
        collector_url: quote(&inv.cluster.collector_url),
        chainfire_port: Service::Chainfire.api_port(),
        flaredb_port: Service::Flaredb.api_port(),
        iam_port: Service::Iam.api_port(),
        luks_key_remote: quote(LUKS_KEY_FILE),
        nodes,
    }
}

pub fn render(inv: &Inventory, out: &mut Rendered) -> Result<(), RenderError> {
    let c = common(inv);
    let [provision, verify, rolling, decommission] = SCRIPTS;
    let texts = [
        (provision, Provision { c: &c }.render()),
        (verify, VerifyCluster { c: &c }.render()),
        (rolling, RollingUpdate { c: &c }.render()),
        (decommission, Decommission { c: &c }.render()),
    ];
    for (path, text) in texts {
        let template = path;
        out.add_executable(path, text.map_err(askama_err(template))?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quote_is_one_word() {
        assert_eq!(quote("node01"), "'node01'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a'b"), r"'a'\''b'");
    }
}
