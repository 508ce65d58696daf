//! A provisioning lab in a network namespace of the test's own: per node an emulated IPMI BMC
//! (pyghmi, lab/bmc/fake_bmc.py) whose power-on starts the "machine" —
//! a real OpenSSH sshd on the node's provisioning IP answering as the NixOS installer after a
//! network boot or as the installed system (with the node's generated host key) after a disk
//! boot (machine.sh, remote.sh) — the real collector (`plasmagen collector`, mTLS), and the
//! nixos-anywhere stand-in on PATH. plasmagen runs inside the namespace, as an operator would.
//! Needs root, sshd, ssh, ipmitool, curl and the BMC venv of scripts/test.sh.
// Shared by tests/provision.rs and tests/operate.rs; each uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{generate, repo_root};

mod cluster;
mod inventory;
mod process;
mod redfish;

use process::{bmc_python, copy_exec, ip_cmd, keygen, require_root_and_tools, spawn_announced};
pub use process::{lines, run_bounded, text};

pub const COLLECTOR_IP: &str = "10.0.100.10";
pub const BMC_USER: &str = "admin";
pub const BMC_PASSWORD: &str = "lab-bmc-Pw 9";
const HERE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/provision_lab");

pub struct LabNode {
    pub hostname: String,
    pub ip: String,
    pub production_ip: String,
    pub bootstrap: bool,
    /// Its BMC speaks Redfish (sushy-tools) instead of IPMI (pyghmi).
    pub redfish: bool,
}

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub ns: String,
    pub out: PathBuf,
    pub key: PathBuf,
    pub nodes: Vec<LabNode>,
    bmcs: BTreeMap<String, Bmc>,
    pub redfish: BTreeMap<String, redfish::RedfishBmc>,
    collector: Option<Child>,
    cluster: Option<(Child, ChildStdin)>,
}

struct Bmc {
    child: Child,
    _stdin: ChildStdin,
    port: u16,
    log: PathBuf,
}

impl Lab {
    /// Nodes `(hostname, bootstrap)`; all control-plane when bootstrap, else workers. Every
    /// machine starts powered off.
    pub fn new(nodes: &[(&str, bool)]) -> Lab {
        Lab::with_redfish(nodes, &[])
    }

    /// As [`Lab::new`], the nodes named in `redfish` with a Redfish BMC.
    pub fn with_redfish(nodes: &[(&str, bool)], redfish: &[&str]) -> Lab {
        require_root_and_tools();
        fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd (sshd's privilege separation)");
        let dir = tempfile::tempdir().expect("tempdir");
        let lab = dir.path();
        for script in ["machine.sh", "remote.sh"] {
            copy_exec(&Path::new(HERE).join(script), &lab.join(script));
        }
        fs::create_dir_all(lab.join("bin")).unwrap();
        for stand_in in ["nixos-anywhere", "nixos-rebuild", "nix"] {
            copy_exec(
                &Path::new(HERE).join(stand_in),
                &lab.join("bin").join(stand_in),
            );
        }
        fs::write(
            lab.join("os-release.installer"),
            "NAME=NixOS\nID=nixos\nVARIANT_ID=installer\nPRETTY_NAME=\"NixOS 26.05 (installer)\"\n",
        )
        .unwrap();
        fs::write(
            lab.join("os-release.installed"),
            "NAME=NixOS\nID=nixos\nPRETTY_NAME=\"NixOS 26.05 (Yarara)\"\n",
        )
        .unwrap();
        let key = lab.join("id_ed25519");
        keygen(&key);
        fs::copy(key.with_extension("pub"), lab.join("authorized_keys")).unwrap();

        static N: AtomicUsize = AtomicUsize::new(0);
        let ns = format!(
            "plprov-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        ip_cmd(&["netns", "add", &ns]);
        ip_cmd(&["-n", &ns, "link", "set", "lo", "up"]);
        let nodes: Vec<LabNode> = nodes
            .iter()
            .enumerate()
            .map(|(i, (h, bootstrap))| LabNode {
                hostname: h.to_string(),
                ip: format!("10.0.100.{}", 50 + i),
                production_ip: format!("10.0.200.{}", 10 + i),
                bootstrap: *bootstrap,
                redfish: redfish.contains(h),
            })
            .collect();
        let mut lab_ = Lab {
            dir,
            ns,
            out: PathBuf::new(),
            key,
            nodes: Vec::new(),
            bmcs: BTreeMap::new(),
            redfish: BTreeMap::new(),
            collector: None,
            cluster: None,
        };
        let addresses = nodes
            .iter()
            .flat_map(|n| [n.ip.as_str(), n.production_ip.as_str()]);
        for ip in std::iter::once(COLLECTOR_IP).chain(addresses) {
            ip_cmd(&[
                "-n",
                &lab_.ns,
                "addr",
                "add",
                &format!("{ip}/32"),
                "dev",
                "lo",
            ]);
        }
        for (i, n) in nodes.iter().enumerate() {
            if n.redfish {
                let port = 18000 + u16::try_from(i).unwrap();
                let bmc = lab_.start_redfish(n, port, &bmc_python());
                lab_.redfish.insert(n.hostname.clone(), bmc);
                continue;
            }
            let bmc = lab_.start_bmc(n);
            lab_.bmcs.insert(n.hostname.clone(), bmc);
        }
        lab_.nodes = nodes;
        let inventory = lab_.dir.path().join("inventory.toml");
        fs::write(&inventory, lab_.inventory()).unwrap();
        lab_.out = lab_.dir.path().join("out");
        generate(&inventory, &lab_.out);
        for n in &lab_.nodes {
            let machine = lab_.machine_dir(&n.hostname);
            fs::create_dir_all(&machine).unwrap();
            let host_key = lab_
                .out
                .join("secrets/nodes")
                .join(&n.hostname)
                .join("etc/ssh/ssh_host_ed25519_key");
            fs::write(
                machine.join("installed_host_key_path"),
                host_key.display().to_string(),
            )
            .unwrap();
            fs::write(machine.join("production_ip"), &n.production_ip).unwrap();
        }
        lab_.start_collector();
        lab_
    }

    fn start_bmc(&self, n: &LabNode) -> Bmc {
        let log = self.dir.path().join(format!("bmc-{}.jsonl", n.hostname));
        let hook = format!(
            "{}/machine.sh {} {} {}",
            self.dir.path().display(),
            self.dir.path().display(),
            n.hostname,
            n.ip
        );
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(bmc_python())
            .arg(repo_root().join("lab/bmc/fake_bmc.py"))
            .arg(&log)
            .env("FAKE_BMC_USER", BMC_USER)
            .env("FAKE_BMC_PASSWORD", BMC_PASSWORD)
            .env("FAKE_BMC_ON_BOOT", hook)
            .stderr(Stdio::null());
        let (child, stdin, line) = spawn_announced(cmd, "fake_bmc.py");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("fake_bmc.py did not start: {line:?}"));
        Bmc {
            child,
            _stdin: stdin,
            port,
            log,
        }
    }

    fn start_collector(&mut self) {
        let log = fs::File::create(self.dir.path().join("collector.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(env!("CARGO_BIN_EXE_plasmagen"))
            .arg("collector")
            .arg("--inventory")
            .arg(self.out.join("flake/inventory.toml"))
            .arg("--secrets")
            .arg(self.out.join("secrets"))
            .arg("--db")
            .arg(self.dir.path().join("collector.db"))
            .args(["--listen", &format!("{COLLECTOR_IP}:8443")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the collector");
        self.collector = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.curl("GET", "/health").is_none() {
            assert!(
                Instant::now() < deadline,
                "collector not answering:\n{}",
                fs::read_to_string(self.dir.path().join("collector.log")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// A request to the collector with the operator certificate (curl in the namespace).
    pub fn curl(&self, method: &str, path: &str) -> Option<Value> {
        let s = self.out.join("secrets");
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "curl",
                "-sf",
                "--max-time",
                "5",
                "-X",
                method,
            ])
            .arg("--cacert")
            .arg(s.join("ca/ca-cert.pem"))
            .arg("--cert")
            .arg(s.join("operator/operator-cert.pem"))
            .arg("--key")
            .arg(s.join("operator/operator-key.pem"))
            .arg(format!("https://{COLLECTOR_IP}:8443{path}"))
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| serde_json::from_slice(&o.stdout).ok())
            .flatten()
    }

    pub fn collector_node(&self, node: &str) -> Value {
        self.curl("GET", &format!("/v1/nodes/{node}"))
            .unwrap_or_else(|| panic!("GET /v1/nodes/{node} failed"))
    }

    pub fn machine_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join("machines").join(node)
    }

    /// Boot a machine now as its BMC would (`network` or `default`), without the BMC.
    pub fn boot(&self, node: &str, device: &str) {
        let n = self.node(node);
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(self.dir.path().join("machine.sh"))
            .arg(self.dir.path())
            .arg(node)
            .arg(&n.ip)
            .env("BOOT_DEVICE", device)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    pub fn node(&self, node: &str) -> &LabNode {
        self.nodes.iter().find(|n| n.hostname == node).unwrap()
    }

    /// Every call the node's BMC received, in order (fake_bmc.py's log).
    pub fn bmc_calls(&self, node: &str) -> Vec<Value> {
        fs::read_to_string(&self.bmcs[node].log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The BMC calls that change the machine (anything but reading the power state).
    pub fn bmc_actions(&self, node: &str) -> Vec<String> {
        self.bmc_calls(node)
            .iter()
            .map(|c| c["call"].as_str().unwrap_or("").to_string())
            .filter(|c| c != "get_power_state" && c != "get_boot_device")
            .collect()
    }

    /// The machine's boot events, once there are at least `count` (within 15 s).
    pub fn boots(&self, node: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let events = lines(&self.machine_dir(node).join("events"));
            if events.len() >= count || Instant::now() > deadline {
                return events;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The commands the machine's sshd ran, as `system: command`.
    pub fn remote_commands(&self, node: &str) -> Vec<String> {
        lines(&self.machine_dir(node).join("commands"))
    }

    /// The nixos-anywhere stand-in's calls: argv and what its stdin was.
    pub fn installs(&self) -> Vec<(Vec<String>, String)> {
        let dir = self.dir.path().join("calls");
        let mut names: Vec<PathBuf> = fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "argv"));
        names.sort();
        names
            .iter()
            .map(|p| {
                let argv = fs::read(p).unwrap();
                let argv = argv
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                let stdin = fs::read_to_string(p.with_extension("stdin")).unwrap_or_default();
                (argv, stdin.trim().to_string())
            })
            .collect()
    }

    /// `plasmagen provision OUT -i KEY ARGS…` in the namespace, stdin detached.
    pub fn provision(&self, args: &[&str]) -> Output {
        let mut cmd = self.in_ns();
        cmd.args(self.provision_argv(args)).stdin(Stdio::null());
        run_bounded(cmd, Duration::from_secs(120))
    }

    /// The same under `script`: plasmagen's stdin, stdout and stderr are a terminal.
    pub fn provision_in_terminal(&self, args: &[&str]) -> Output {
        let line: Vec<String> = self
            .provision_argv(args)
            .iter()
            .map(|a| plasma_operator::provision::shell_quote(a))
            .collect();
        let mut cmd = self.in_ns();
        cmd.args(["script", "-qefc", &line.join(" "), "/dev/null"])
            .stdin(Stdio::null());
        run_bounded(cmd, Duration::from_secs(120))
    }

    pub fn in_ns(&self) -> Command {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "env"])
            .arg(format!("PATH={path}"))
            .arg(format!("PLASMA_LAB={}", self.dir.path().display()))
            .arg(format!("IPMI_PASSWORD={BMC_PASSWORD}"));
        cmd
    }

    fn provision_argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec![
            env!("CARGO_BIN_EXE_plasmagen").to_string(),
            "provision".into(),
            self.out.display().to_string(),
            "-i".into(),
            self.key.display().to_string(),
            "--poll-interval".into(),
            "1".into(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some((c, _)) = &mut self.cluster {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(c) = &mut self.collector {
            let _ = c.kill();
            let _ = c.wait();
        }
        for bmc in self.bmcs.values_mut() {
            let _ = bmc.child.kill();
            let _ = bmc.child.wait();
        }
        if let Ok(o) = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
        {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}
