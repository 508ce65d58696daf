//! The collector as provisioning sees it, over the operator's mTLS client
//! (`plasma_collector::client`): is a node installed, mark it, ask for a reinstall, show a step.

use plasma_collector::client::{ClientError, OperatorClient};
use plasma_wire::report::ProvisionStep;

use crate::provision::Collector;

pub struct FleetCollector {
    client: OperatorClient,
    runtime: tokio::runtime::Runtime,
    /// A failed step report is said once, not for every step.
    report_failed: std::sync::atomic::AtomicBool,
}

impl FleetCollector {
    pub fn new(client: OperatorClient) -> Result<FleetCollector, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;
        Ok(FleetCollector {
            client,
            runtime,
            report_failed: false.into(),
        })
    }

    pub fn base(&self) -> &str {
        self.client.base()
    }

    /// The collector answers the operator (TLS, certificate, `GET /v1/nodes`).
    pub fn reachable(&self) -> Result<(), ClientError> {
        self.runtime.block_on(self.client.fleet()).map(|_| ())
    }
}

impl Collector for FleetCollector {
    fn installed(&self, node: &str) -> Result<bool, String> {
        let view = self
            .runtime
            .block_on(self.client.node(node))
            .map_err(|e| e.to_string())?;
        let member = view
            .services
            .iter()
            .any(|s| s.phase == "joined" || s.phase == "bootstrapped");
        Ok(view.installed || member)
    }

    fn reprovision(&self, node: &str) -> Result<(), String> {
        self.runtime
            .block_on(self.client.node_action(node, "reprovision"))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn mark_installed(&self, node: &str) -> Result<(), String> {
        self.runtime
            .block_on(self.client.node_action(node, "installed"))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn report(&self, node: &str, step: &str, ok: bool, message: &str) {
        let mut message = message.to_string();
        if message.len() > ProvisionStep::MAX_MESSAGE {
            let mut end = ProvisionStep::MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let step = ProvisionStep {
            step: step.to_string(),
            ok,
            message,
        };
        if let Err(e) = self
            .runtime
            .block_on(self.client.provision_step(node, &step))
            && !self
                .report_failed
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            tracing::warn!("the collector did not take a provisioning step (dashboard only): {e}");
        }
    }
}
