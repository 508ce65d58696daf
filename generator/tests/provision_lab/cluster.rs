//! The running fleet of the lab: machines booted from their disks through their BMCs, the
//! admin APIs of cluster_sim.py on the production IPs, and the operator commands that act on
//! them (verify, rollout, decommission).

use std::fs;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::process::spawn_announced;
use super::{BMC_PASSWORD, BMC_USER, HERE, Lab, lines, run_bounded};

impl Lab {
    /// Every node installed and powered on through its BMC (the real ipmitool), so it boots
    /// its disk: the installed system's sshd answers on both addresses.
    pub fn installed_and_running(&self) {
        for n in &self.nodes {
            fs::write(self.machine_dir(&n.hostname).join("installed"), "").unwrap();
            self.ipmitool(&n.hostname, &["chassis", "power", "on"]);
            assert_eq!(self.boots(&n.hostname, 1), ["boot default"]);
        }
        for n in &self.nodes {
            self.wait_for_ssh(&n.production_ip);
        }
    }

    fn wait_for_ssh(&self, ip: &str) {
        for _ in 0..100 {
            let o = self
                .in_ns()
                .args(["bash", "-c", &format!("exec 3<>/dev/tcp/{ip}/22")])
                .output()
                .unwrap();
            if o.status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no sshd on {ip}");
    }

    pub fn ipmitool(&self, node: &str, args: &[&str]) {
        let port = self.bmcs[node].port;
        let o = self
            .in_ns()
            .args(["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .args(["-U", BMC_USER, "-E"])
            .args(args)
            .env("IPMI_PASSWORD", BMC_PASSWORD)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// cluster_sim.py with every lab node a healthy member of its role's groups;
    /// `leaders`: (chainfire, flaredb).
    pub fn start_cluster(&mut self, leaders: (&str, &str)) {
        let mut nodes = serde_json::Map::new();
        let (mut chainfire, mut flaredb) = (Vec::new(), Vec::new());
        for n in &self.nodes {
            let services: Vec<&str> = if n.bootstrap {
                chainfire.push(n.hostname.clone());
                flaredb.push(n.hostname.clone());
                vec!["chainfire", "flaredb", "iam"]
            } else {
                chainfire.push(n.hostname.clone());
                vec!["chainfire"]
            };
            nodes.insert(
                n.hostname.clone(),
                json!({"address": n.production_ip, "services": services}),
            );
        }
        let state = json!({
            "nodes": nodes,
            "members": {"chainfire": chainfire, "flaredb": flaredb},
            "leader": {"chainfire": leaders.0, "flaredb": leaders.1},
        });
        self.set_cluster(&state);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "python3"])
            .arg(std::path::Path::new(HERE).join("cluster_sim.py"))
            .arg(self.dir.path())
            .arg(self.out.join("secrets"))
            .stderr(Stdio::inherit());
        let (child, stdin, line) = spawn_announced(cmd, "python3 cluster_sim.py");
        assert_eq!(line.trim(), "ready", "cluster_sim.py did not start");
        self.cluster = Some((child, stdin));
    }

    pub fn cluster_state(&self) -> Value {
        serde_json::from_slice(&fs::read(self.dir.path().join("cluster.json")).unwrap()).unwrap()
    }

    pub fn set_cluster(&self, state: &Value) {
        fs::write(
            self.dir.path().join("cluster.json"),
            serde_json::to_vec(state).unwrap(),
        )
        .unwrap();
    }

    /// A lab file (marker) the machines and stand-ins look at: `broken-node02`, `fail-build`…
    pub fn touch(&self, name: &str) {
        fs::write(self.dir.path().join(name), "").unwrap();
    }

    /// `plasmagen SUBCOMMAND OUT -i KEY ARGS…` in the namespace, stdin detached.
    pub fn operate(&self, subcommand: &str, args: &[&str]) -> Output {
        let mut cmd = self.in_ns();
        cmd.arg(env!("CARGO_BIN_EXE_plasmagen"))
            .arg(subcommand)
            .arg(&self.out)
            .args(args)
            .stdin(Stdio::null());
        run_bounded(cmd, Duration::from_secs(120))
    }

    /// nixos-rebuild stand-in calls as `action root@ip`.
    pub fn rebuilds(&self) -> Vec<String> {
        lines(&self.dir.path().join("nixos-rebuild.calls"))
    }

    pub fn nix_builds(&self) -> Vec<Vec<String>> {
        fs::read(self.dir.path().join("nix.calls"))
            .unwrap_or_default()
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                l.split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .collect()
    }

    pub fn activations(&self, node: &str) -> Vec<String> {
        lines(&self.machine_dir(node).join("activations"))
    }

    /// The admin API requests cluster_sim.py answered.
    pub fn admin_requests(&self) -> Vec<Value> {
        lines(&self.dir.path().join("admin-requests.jsonl"))
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}
