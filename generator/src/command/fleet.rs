//! What the operator commands (provision, rollout, decommission, verify) share: the generated
//! flake's inventory copy, the node selection, the collector client.

use std::io::{BufRead, IsTerminal, Write};

use std::path::Path;

use plasma_collector::client::{ClientTls, OperatorClient};
use plasma_operator::provision::plan::Layout;

use crate::diag::did_you_mean;
use crate::error::Error;
use crate::inventory::{self, Inventory, Loaded, Node};

/// The output layout of `generate` (secrets refused inside the flake, as generate refuses
/// them), with the operator commands' logs next to the flake.
pub fn operator_layout(out: &Path, secrets: Option<&Path>) -> Result<Layout, Error> {
    let l = super::generate::layout(out, secrets)?;
    Ok(Layout {
        flake: l.flake,
        secrets: l.secrets,
        logs: out.join("logs"),
    })
}

/// Where `generate` wrote the inventory copy into the flake.
pub fn inventory_copy(flake: &Path) -> Option<std::path::PathBuf> {
    ["inventory.toml", "inventory.json"]
        .iter()
        .map(|name| flake.join(name))
        .find(|p| p.is_file())
}

/// The inventory copy `generate` wrote into the flake (what the flake was built from).
pub fn load_fleet(flake: &Path) -> Result<Loaded, Error> {
    let path = inventory_copy(flake).ok_or_else(|| {
            Error::Usage(format!(
                "{}: no inventory.toml or inventory.json: run `plasmagen generate INVENTORY --out DIR` first",
            flake.display()
        ))
    })?;
    Ok(inventory::load(&path)?)
}

/// The named nodes (each known, none twice), the founding members, or all (founders first).
pub fn pick_nodes<'a>(
    inv: &'a Inventory,
    names: &[String],
    bootstrap: bool,
    all: bool,
) -> Result<Vec<&'a Node>, Error> {
    if bootstrap {
        return Ok(inv.bootstrap_nodes());
    }
    if all {
        let mut nodes: Vec<&Node> = inv.bootstrap_nodes();
        nodes.extend(inv.nodes.iter().filter(|n| !inv.is_bootstrap(n)));
        return Ok(nodes);
    }
    if names.is_empty() {
        return Err(Error::Usage(
            "name the nodes, or pass --bootstrap or --all".into(),
        ));
    }
    let known: Vec<&str> = inv.nodes.iter().map(|n| n.hostname.as_str()).collect();
    let mut nodes: Vec<&Node> = Vec::new();
    for name in names {
        let Some(node) = inv.node(name) else {
            let hint = did_you_mean(name, &known)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(Error::Usage(format!(
                "unknown node `{name}` (not in the inventory){hint}"
            )));
        };
        if nodes.iter().any(|n| n.hostname == node.hostname) {
            return Err(Error::Usage(format!("node `{name}` named twice")));
        }
        nodes.push(node);
    }
    Ok(nodes)
}

/// The operator's collector client: cluster CA and operator certificate from the secrets.
pub fn collector_client(url: &str, secrets: &Path) -> Result<OperatorClient, Error> {
    let tls = ClientTls {
        secrets: Some(secrets.to_path_buf()),
        ..ClientTls::default()
    };
    OperatorClient::new(url, &tls).map_err(|e| Error::Usage(e.to_string()))
}

/// A destructive step goes ahead only when the operator, on a terminal, types `expected`
/// (words separated by spaces) after `prompt`; without a terminal `--yes` is the only way.
pub fn confirm(prompt: &str, expected: &[String], without_terminal: &str) -> Result<(), Error> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::Usage(without_terminal.to_string()));
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(Error::io_at(Path::new("<stdin>")))?;
    if !line
        .split_whitespace()
        .eq(expected.iter().map(String::as_str))
    {
        return Err(Error::Usage("not confirmed: nothing was done".into()));
    }
    Ok(())
}
