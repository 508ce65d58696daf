//! Wire types shared by the generator, the agent, the collector and the test simulator.
//!
//! Everything here is plain data with serde derives. Changing a field is a protocol change:
//! update `docs/` and both sides together.

pub mod admin;
pub mod config;
pub mod discover;
pub mod report;

pub use config::{ClusterConfig, ServiceEndpoint, TlsPaths};
pub use report::{Phase, Report, ReportStatus};
