//! `plasmagen mark-installed <NODE> --collector URL --secrets DIR`: Record that <NODE> is installed: its next PXE boot gets the local-disk script (runbook 2.4).
//! An operator action: authenticated with the operator client certificate.

use super::Outcome;
use super::status::node_action;
use crate::error::Error;

pub use super::status::NodeArgs as Args;

pub fn run(args: &Args) -> Result<Outcome, Error> {
    node_action(args, "installed")
}
