//! `plasma-agent`: the first-boot agent of an installed PlasmaCloud node.
//!
//! It waits for the local Chainfire / FlareDB service, bootstraps or joins its cluster through
//! the admin API (docs/admin-api.md), reports every phase to the provisioning collector and
//! leaves a marker so that re-running it is always safe.
//!
//! Everything is a library so that tests can drive it in-process under tokio's paused clock;
//! `main.rs` only parses arguments, installs logging and maps the outcome to an exit code.

pub mod backoff;
pub mod command;
pub mod config;
pub mod discover;
pub mod exit;
pub mod health;
pub mod http;
pub mod installation;
pub mod join;
pub mod logging;
pub mod marker;
pub mod members;
pub mod notify;
pub mod progress;
pub mod report;

pub use exit::{AgentError, Outcome};
