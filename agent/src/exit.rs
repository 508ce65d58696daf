//! Exit codes and the error type every command funnels into.
//!
//! Units use `Restart=on-failure`: 75 (EX_TEMPFAIL) is "try again later", 2 is "fix the
//! configuration first" — restarting will not help, but systemd restarts anyway and the log
//! says why.

use std::process::ExitCode;

/// Exit code: done (joined, bootstrapped, healthy, or already joined).
pub const EXIT_OK: u8 = 0;
/// Exit code: the configuration or the command line is invalid.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code: temporary failure (EX_TEMPFAIL); a later retry may succeed.
pub const EXIT_TEMPFAIL: u8 = 75;

/// What a command achieved when it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The marker existed: nothing was done.
    AlreadyJoined,
    /// This node founded the cluster together with its initial peers.
    Bootstrapped,
    /// This node was added to (or found in) an existing cluster.
    Joined,
    /// `wait-healthy`: the service answered as expected.
    Healthy,
    /// `discover`: the collector accepted the hardware report.
    Discovered,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Bad configuration: names the field or file that is wrong.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// Something that may work on a later attempt (service not up, cluster unreachable...).
    #[error("{0}")]
    Temporary(String),
}

impl AgentError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Config(_) => EXIT_CONFIG,
            AgentError::Temporary(_) => EXIT_TEMPFAIL,
        }
    }
}

/// Maps a command result to the process exit code.
pub fn exit_code(result: &Result<Outcome, AgentError>) -> ExitCode {
    match result {
        Ok(_) => ExitCode::from(EXIT_OK),
        Err(e) => ExitCode::from(e.exit_code()),
    }
}
