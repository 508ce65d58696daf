//! `plasmagen mark-installed <NODE> --collector URL --secrets DIR`: Record that <NODE> is installed: its next PXE boot gets the local-disk script (runbook 2.4).
//! An operator action: authenticated with the operator client certificate.

use super::Outcome;
use super::status::{CollectorArgs, block_on, client_err};
use crate::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Inventory hostname of the node.
    pub node: String,
    #[command(flatten)]
    pub conn: CollectorArgs,
}

pub fn run(args: &Args) -> Result<Outcome, Error> {
    let client = args.conn.client()?;
    let node = block_on(client.node_action(&args.node, "installed"))?.map_err(client_err)?;
    println!(
        "{}: installed={} ({})",
        node.hostname,
        node.installed,
        node.last_message.as_deref().unwrap_or("")
    );
    Ok(Outcome::Ok)
}
