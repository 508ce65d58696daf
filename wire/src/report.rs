//! Progress reports: `POST <collector_url>/v1/reports`, sent by the agent, stored by the collector.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a node is in its life. Order matters: later phases compare greater, which the
/// collector uses to decide that a node is installed (`Booted` or later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// First report from the installed system.
    Booted,
    WaitingLocal,
    LocalHealthy,
    Joining,
    Joined,
    Bootstrapped,
    Failed,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Booted,
        Phase::WaitingLocal,
        Phase::LocalHealthy,
        Phase::Joining,
        Phase::Joined,
        Phase::Bootstrapped,
        Phase::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Booted => "booted",
            Phase::WaitingLocal => "waiting-local",
            Phase::LocalHealthy => "local-healthy",
            Phase::Joining => "joining",
            Phase::Joined => "joined",
            Phase::Bootstrapped => "bootstrapped",
            Phase::Failed => "failed",
        }
    }

    /// The node is a working member of the service's cluster.
    pub fn is_member(self) -> bool {
        matches!(self, Phase::Joined | Phase::Bootstrapped)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown phase {s:?}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportStatus {
    Ok,
    InProgress,
    Error,
}

impl ReportStatus {
    pub const ALL: [ReportStatus; 3] = [
        ReportStatus::Ok,
        ReportStatus::InProgress,
        ReportStatus::Error,
    ];

    /// The wire (and storage) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Ok => "ok",
            ReportStatus::InProgress => "in-progress",
            ReportStatus::Error => "error",
        }
    }
}

impl FromStr for ReportStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReportStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown status {s:?}"))
    }
}

/// One progress report. `at` is RFC 3339 UTC, set by the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub node_id: String,
    /// `chainfire`, `flaredb`, `iam` or `system`.
    pub service: String,
    pub phase: Phase,
    pub status: ReportStatus,
    pub message: String,
    pub at: String,
    /// Which installation of the node sent it: a keyed hash of the installed system's
    /// `/etc/machine-id` (never the id itself, machine-id(5)), 32 lowercase hex digits. After a
    /// reprovision the collector ignores reports of the installation being replaced. Absent in
    /// reports of older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<String>,
}

impl Report {
    /// Length of [`Report::installation`].
    pub const INSTALLATION_LEN: usize = 32;

    /// Whether `id` has the shape of an installation id.
    pub fn installation_ok(id: &str) -> bool {
        id.len() == Self::INSTALLATION_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

/// A provisioning step the operator's tools report for a node
/// (`POST /v1/nodes/{id}/provision`, operator certificate only): shown on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionStep {
    /// `guard`, `power`, `installer`, `install`, `mark-installed`, `reboot`, `unlock`, `done`.
    pub step: String,
    pub ok: bool,
    pub message: String,
}

impl ProvisionStep {
    pub const MAX_STEP: usize = 32;
    pub const MAX_MESSAGE: usize = 1024;
}
