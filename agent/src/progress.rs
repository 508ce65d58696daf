//! One call per phase change: log context, systemd STATUS= and the collector report.

use plasma_wire::{Phase, Report, ReportStatus};

use crate::logging::LogContext;
use crate::notify::Notifier;
use crate::report::Reporter;

pub struct Progress {
    pub log: LogContext,
    pub notify: Notifier,
    pub reporter: Option<Reporter>,
    pub node_id: String,
    pub service: String,
    pub installation: Option<String>,
}

impl Progress {
    pub async fn phase(&self, phase: Phase, status: ReportStatus, message: &str) {
        self.log.set_phase(phase.as_str());
        self.notify
            .status(&format!("{} {}: {message}", self.service, phase.as_str()));
        if let Some(r) = &self.reporter {
            r.send(Report {
                node_id: self.node_id.clone(),
                service: self.service.clone(),
                phase,
                status,
                message: message.to_owned(),
                at: now_rfc3339(),
                installation: self.installation.clone(),
            })
            .await;
        }
    }

    /// End of a run: tries a little longer to deliver spooled reports (see [`Reporter::drain`]).
    pub async fn drain(&self) {
        if let Some(r) = &self.reporter {
            r.drain(crate::report::DRAIN_BUDGET).await;
        }
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
