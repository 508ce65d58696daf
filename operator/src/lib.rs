//! What the operator's machine does to the fleet's hardware: today the BMC drivers
//! ([`bmc`]), one module per protocol behind one trait; the provisioning, rollout and
//! decommission commands build on them.

pub mod bmc;
