//! systemd notifications (`Type=notify` units): STATUS= per phase, EXTEND_TIMEOUT_USEC= while
//! waiting so that a slow but progressing start is not killed by `TimeoutStartSec`.

use std::time::Duration;

use sd_notify::NotifyState;

#[derive(Debug, Clone, Copy)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    /// Enabled when systemd passed `NOTIFY_SOCKET`; a no-op otherwise (tests, manual runs).
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    pub fn disabled() -> Notifier {
        Notifier { enabled: false }
    }

    pub fn status(&self, msg: &str) {
        self.send(&[NotifyState::Status(msg)]);
    }

    /// Asks systemd for `by` more time from now.
    pub fn extend_timeout(&self, by: Duration) {
        let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
        self.send(&[NotifyState::ExtendTimeoutUsec(usec)]);
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            tracing::debug!(error = %e, "sd_notify failed");
        }
    }
}
