//! scripts/*.sh: the runbook's script names (5.4, 6.2-6.4, 7.4, 7.6) kept as thin wrappers
//! around the operator subcommands, which read the flake's inventory copy themselves.

use askama::Template;

use super::{RenderError, Rendered, askama_err};
use crate::inventory::Inventory;

/// The scripts, relative to the flake directory, and the subcommand each runs.
pub const SCRIPTS: [(&str, &str, &str); 4] = [
    (
        "scripts/provision.sh",
        "provision",
        "PXE boot through the BMCs and install with nixos-anywhere",
    ),
    (
        "scripts/verify-cluster.sh",
        "verify",
        "Raft membership, leaders, IAM and SSH host keys against the inventory",
    ),
    (
        "scripts/rolling-update.sh",
        "rollout",
        "build all, then test, gate and switch node by node",
    ),
    (
        "scripts/decommission.sh",
        "decommission",
        "out of the Raft groups at the leader, then power off",
    ),
];

#[derive(Template)]
#[template(path = "scripts/wrapper.sh", escape = "none")]
struct Wrapper<'a> {
    script: &'a str,
    name: String,
    subcommand: &'a str,
    what: &'a str,
}

pub fn render(inv: &Inventory, out: &mut Rendered) -> Result<(), RenderError> {
    // Comment text: one line whatever the name holds.
    let name = inv.cluster.name.replace(['\n', '\r'], " ");
    for (path, subcommand, what) in SCRIPTS {
        let script = path.trim_start_matches("scripts/");
        let text = Wrapper {
            script,
            name: name.clone(),
            subcommand,
            what,
        }
        .render()
        .map_err(askama_err(path))?;
        out.add_executable(path, text);
    }
    Ok(())
}
