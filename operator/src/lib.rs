//! What the operator's machine does to the fleet: provisioning ([`provision`]) over SSH
//! ([`ssh`]) and nixos-anywhere ([`install`]), powered through the BMC drivers ([`bmc`]),
//! one module per protocol behind one trait, with live progress ([`progress`]) and a journal
//! for `--resume` ([`journal`]).

pub mod bmc;
pub mod cluster;
pub mod collector;
pub mod decommission;
pub mod fleet;
pub mod install;
pub mod journal;
pub mod progress;
pub mod provision;
pub mod rollout;
pub mod ssh;
pub mod tools;
