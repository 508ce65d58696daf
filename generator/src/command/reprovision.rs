//! `plasmagen reprovision <NODE> --collector URL --secrets DIR`: Clear <NODE>'s installed state: its next PXE boot reinstalls it (runbook 9.2).
//! An operator action: authenticated with the operator client certificate.

use super::Outcome;
use super::status::node_action;
use crate::error::Error;

pub use super::status::NodeArgs as Args;

pub fn run(args: &Args) -> Result<Outcome, Error> {
    node_action(args, "reprovision")
}
