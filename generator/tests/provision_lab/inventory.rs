//! The lab's inventory: its nodes with their emulated BMCs, and founding members to make it
//! valid when a test has none.

use std::fs;

use super::{BMC_USER, COLLECTOR_IP, Lab};

impl Lab {
    /// With no founding member among the lab's nodes, three control-plane nodes without a BMC
    /// (never touched) found the cluster, so the inventory is valid.
    fn bmc_line(&self, n: &super::LabNode) -> String {
        match self.redfish.get(&n.hostname) {
            Some(r) => format!(
                "bmc = {{ protocol = \"redfish\", address = \"127.0.0.1:{}\", username = \"{BMC_USER}\", password_file = \"{}\", ca_file = \"{}\" }}",
                r.port,
                r.password_file.display(),
                r.ca.display()
            ),
            None => format!(
                "bmc = {{ address = \"127.0.0.1:{}\", username = \"{BMC_USER}\" }}",
                self.bmcs[&n.hostname].port
            ),
        }
    }

    pub(super) fn inventory(&self) -> String {
        let mut bootstrap: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.bootstrap)
            .map(|n| format!("\"{}\"", n.hostname))
            .collect();
        let stand_by = bootstrap.is_empty();
        if stand_by {
            bootstrap = (1..=3).map(|i| format!("\"cp{i}\"")).collect();
        }
        let mut text = format!(
            r#"[cluster]
name = "lab"
domain = "lab.example"
bootstrap = [{}]
ssh_authorized_keys = ["{}"]
state_version = "26.05"
collector_url = "https://{COLLECTOR_IP}:8443"

[networks.provisioning]
subnet = "10.0.100.0/24"
gateway = "10.0.100.1"
nameservers = ["10.0.100.1"]
dhcp_range = {{ start = "10.0.100.100", end = "10.0.100.200" }}
pxe_server = "{COLLECTOR_IP}"
interface = "lab0"

[networks.production]
subnet = "10.0.200.0/24"
gateway = "10.0.200.1"
nameservers = ["10.0.200.1"]
"#,
            bootstrap.join(", "),
            fs::read_to_string(self.key.with_extension("pub"))
                .unwrap()
                .trim()
        );
        for (i, n) in self.nodes.iter().enumerate() {
            let role = if n.bootstrap {
                "control-plane"
            } else {
                "worker"
            };
            text.push_str(&format!(
                r#"
[[nodes]]
hostname = "{h}"
role = "{role}"
mac = "52:54:00:aa:00:{i:02x}"
provisioning_ip = "{ip}"
production_ip = "{prod}"
production_macs = ["52:54:00:bb:00:{i:02x}"]
{bmc}
"#,
                h = n.hostname,
                ip = n.ip,
                prod = n.production_ip,
                bmc = self.bmc_line(n),
            ));
        }
        for i in (1..=3).filter(|_| stand_by) {
            text.push_str(&format!(
                r#"
[[nodes]]
hostname = "cp{i}"
role = "control-plane"
mac = "52:54:00:cc:00:{i:02x}"
provisioning_ip = "10.0.100.{}"
production_ip = "10.0.200.{}"
production_macs = ["52:54:00:dd:00:{i:02x}"]
"#,
                40 + i,
                60 + i
            ));
        }
        text
    }
}
