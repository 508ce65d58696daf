//! The provisioning lab (tests/tests/e2e_provision.rs, docs/e2e.md): the PXE lab of
//! [`super::lab`] serving the installer initrd ([`super::initrd::build_installer`]), three
//! QEMU machines on tap devices of its bridge, each behind an emulated IPMI BMC
//! (lab/bmc/fake_bmc.py) whose power-on runs the machine's start script
//! `vm-<node>.sh` ([`super::hook_vm`]), and the recording nixos-anywhere stand-in of the generator's provisioning
//! lab (generator/tests/provision_lab/nixos-anywhere) on `PATH` for `plasmagen provision`.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use tempfile::TempDir;

use super::hook_vm::{HookVm, quote};
use super::lab::{Binaries, Lab, LabConfig};
use super::netns::Daemon;
use super::tools::{Tools, which};
use super::vm::{Disk, Firmware, VmSpec};
use super::{Result, diag_dir, err, initrd, poll};
use plasma_lab::bmc::BmcSpec;

pub const BMC_USER: &str = "admin";
pub const BMC_PASSWORD: &str = "e2e-bmc-Pw 7";
const DISK_BYTES: u64 = 64 << 20;

/// One machine of the lab and its inventory entry.
#[derive(Debug, Clone)]
pub struct Node {
    pub hostname: String,
    pub mac: String,
    pub ip: String,
    pub production_ip: String,
    pub disk_serial: String,
    pub tap: String,
    pub bmc_port: u16,
}

/// node01..node03: BIOS control planes, all founding members.
pub fn nodes() -> Vec<Node> {
    (1..=3)
        .map(|i| Node {
            hostname: format!("node0{i}"),
            mac: format!("52:54:00:e2:00:0{i}"),
            ip: format!("10.0.100.{}", 49 + i),
            production_ip: format!("10.0.200.{}", 9 + i),
            disk_serial: format!("E2EPROV0{i}"),
            tap: format!("tap{}", i - 1),
            bmc_port: 6230 + i as u16,
        })
        .collect()
}

/// The inventory of `nodes`, root's SSH key `ssh_key` (`ssh-ed25519 AAAA…`).
pub fn inventory(nodes: &[Node], ssh_key: &str) -> String {
    let names: Vec<String> = nodes
        .iter()
        .map(|n| format!("\"{}\"", n.hostname))
        .collect();
    let mut text = format!(
        r#"[cluster]
name = "e2e"
domain = "e2e.test"
bootstrap = [{}]
ssh_authorized_keys = ["{}"]
state_version = "26.05"
collector_url = "https://10.0.100.10:8443"

[networks.provisioning]
subnet = "10.0.100.0/24"
gateway = "10.0.100.1"
nameservers = ["10.0.100.1"]
dhcp_range = {{ start = "10.0.100.100", end = "10.0.100.200" }}
pxe_server = "10.0.100.10"
interface = "br-prov"

[networks.production]
subnet = "10.0.200.0/24"
gateway = "10.0.200.1"
nameservers = ["10.0.200.1"]
"#,
        names.join(", "),
        ssh_key.trim()
    );
    for n in nodes {
        text.push_str(&format!(
            r#"
[[nodes]]
hostname = "{}"
role = "control-plane"
mac = "{}"
provisioning_ip = "{}"
production_ip = "{}"
disks = ["/dev/disk/by-id/virtio-{}"]
disk_layout = "single"
firmware = "bios"
bmc = {{ address = "127.0.0.1:{}", username = "{BMC_USER}" }}
"#,
            n.hostname, n.mac, n.ip, n.production_ip, n.disk_serial, n.bmc_port
        ));
    }
    text
}

pub struct ProvisionLab {
    // Dropped first: the BMCs (no new power-on), the machines, then the PXE lab.
    bmcs: Vec<Daemon>,
    pub vms: Vec<HookVm>,
    pub lab: Lab,
    /// The operator's SSH key, the stand-in's PATH directory and its records (`PLASMA_LAB`).
    pub home: TempDir,
    pub key: PathBuf,
    pub nodes: Vec<Node>,
}

impl ProvisionLab {
    /// The PXE lab with the installer initrd and a tap per node, the machines' start scripts
    /// and powered-off BMCs.
    pub fn start(tools: Tools, bins: Binaries) -> Result<ProvisionLab> {
        let python = std::env::var_os("PLASMA_BMC_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target/bmc-venv/bin/python"));
        if !python.is_file() {
            return Err(err!(
                "{}: the BMC emulators' venv is missing (scripts/test.sh creates it; or set \
                 PLASMA_BMC_PYTHON)",
                python.display()
            ));
        }
        for (tool, package) in [
            ("ssh", "openssh-client"),
            ("ssh-keygen", "openssh-client"),
            ("sshd", "openssh-server"),
            ("ipmitool", "ipmitool"),
            ("script", "bsdutils"),
            ("setsid", "util-linux"),
        ] {
            which(tool).ok_or_else(|| format!("{tool} is missing (Debian package {package})"))?;
        }
        let home = tempfile::Builder::new()
            .prefix("plasma-e2e-prov-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let key = home.path().join("id_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "e2e-operator", "-f"])
            .arg(&key)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("ssh-keygen: {e}"))?;
        if !out.status.success() {
            return Err(err!("ssh-keygen: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let public =
            std::fs::read_to_string(key.with_extension("pub")).map_err(|e| e.to_string())?;
        let bin = home.path().join("bin");
        std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
        let stand_in = workspace().join("generator/tests/provision_lab/nixos-anywhere");
        std::fs::copy(&stand_in, bin.join("nixos-anywhere"))
            .map_err(|e| format!("{}: {e}", stand_in.display()))?;
        chmod_x(&bin.join("nixos-anywhere"))?;

        let nodes = nodes();
        let config = LabConfig {
            inventory: inventory(&nodes, &public),
            initrd: initrd::Kind::Installer {
                authorized_key: public.trim().to_string(),
            },
            diag: diag_dir().join("provision"),
        };
        let lab = super::lab::start_with(tools, bins, config)?;
        let mut plab = ProvisionLab {
            bmcs: Vec::new(),
            vms: Vec::new(),
            lab,
            home,
            key,
            nodes: nodes.clone(),
        };
        for n in &nodes {
            if n.tap != super::lab::TAP {
                plab.lab.add_tap(&n.tap)?;
            }
            let vm = plab.machine(n)?;
            plab.vms.push(vm);
        }
        for (n, vm) in nodes.iter().zip(&plab.vms) {
            let bmc = plab.bmc(n, &python, &vm.script)?;
            plab.bmcs.push(bmc);
        }
        Ok(plab)
    }

    /// The machine's disk (created once, here) and its start script.
    fn machine(&self, n: &Node) -> Result<HookVm> {
        let spec = VmSpec {
            name: n.hostname.clone(),
            firmware: Firmware::Bios,
            mac: n.mac.clone(),
            tap: n.tap.clone(),
            disk_serial: n.disk_serial.clone(),
            disk_bytes: DISK_BYTES,
            disk: Disk::Blank,
            reboot: true,
        };
        HookVm::create(&self.lab, &spec)
    }

    /// fake_bmc.py on 127.0.0.1:<port> in the namespace; its power-on runs `hook`. It exits
    /// when the lab drops (its stdin closes).
    fn bmc(&self, n: &Node, python: &Path, hook: &Path) -> Result<Daemon> {
        let spec = BmcSpec {
            machine: n.hostname.clone(),
            address: "127.0.0.1".into(),
            port: n.bmc_port,
            user: BMC_USER.into(),
            password: BMC_PASSWORD.into(),
            on_boot: hook.to_path_buf(),
            detached: false,
        };
        let script = workspace().join("lab/bmc/fake_bmc.py");
        plasma_lab::bmc::start(&self.lab.ns, python, &script, &self.lab.diag, &spec)
    }

    /// fake_bmc.py's record of calls (JSON lines).
    pub fn bmc_log(&self, node: &str) -> PathBuf {
        plasma_lab::bmc::calls_log(&self.lab.diag, node)
    }

    /// Every call the node's BMC received, in order.
    pub fn bmc_calls(&self, node: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.bmc_log(node))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The calls that change the machine (anything but reading power state or boot device).
    pub fn bmc_actions(&self, node: &str) -> Vec<String> {
        self.bmc_calls(node)
            .iter()
            .map(|c| c["call"].as_str().unwrap_or("").to_string())
            .filter(|c| c != "get_power_state" && c != "get_boot_device")
            .collect()
    }

    /// The stand-in nixos-anywhere's calls: argv and what its stdin was.
    pub fn installs(&self) -> Vec<(Vec<String>, String)> {
        let dir = self.home.path().join("calls");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "argv"));
        names.sort();
        names
            .iter()
            .map(|p| {
                let argv = std::fs::read(p).unwrap_or_default();
                let argv = argv
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                let stdin = std::fs::read_to_string(p.with_extension("stdin")).unwrap_or_default();
                (argv, stdin.trim().to_string())
            })
            .collect()
    }

    /// `plasmagen provision OUT -i KEY ARGS…` as argv.
    pub fn provision_argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec![
            self.lab.bins.plasmagen.display().to_string(),
            "provision".into(),
            self.lab.dir().join("out").display().to_string(),
            "-i".into(),
            self.key.display().to_string(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }

    /// `env PATH=<stand-in>:… PLASMA_LAB=… IPMI_PASSWORD=… ARGV…` inside the namespace.
    pub fn command(&self, argv: &[String]) -> Command {
        let path = format!(
            "{}:{}",
            self.home.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = self.lab.ns.command("env");
        cmd.arg(format!("PATH={path}"))
            .arg(format!("PLASMA_LAB={}", self.home.path().display()))
            .arg(format!("IPMI_PASSWORD={BMC_PASSWORD}"))
            .args(argv);
        cmd
    }

    /// The same under `script`: plasmagen's stdin, stdout and stderr are a terminal.
    pub fn in_terminal(&self, argv: &[String]) -> Command {
        let line: Vec<String> = argv.iter().map(|a| quote(a)).collect();
        self.command(&[
            "script".into(),
            "-qefc".into(),
            line.join(" "),
            "/dev/null".into(),
        ])
    }
}

/// A finished command: exit status and output.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn text(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` (in a process group of its own), calling `tick` every 500 ms while it runs;
/// after `limit` its process group is killed and the error carries the output so far.
pub fn run_bounded(mut cmd: Command, limit: Duration, mut tick: impl FnMut()) -> Result<Run> {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = pipe.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let err = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let status = poll(limit, Duration::from_millis(500), || {
        tick();
        child.try_wait().ok().flatten()
    });
    let Some(status) = status else {
        if let Some(pid) = Pid::from_raw(child.id() as i32) {
            let _ = kill_process_group(pid, Signal::KILL);
        }
        let _ = child.kill();
        let _ = child.wait();
        return Err(err!(
            "{cmd:?} hung for {:?}, killed; output so far:\n{}\n{}",
            start.elapsed(),
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default()
        ));
    };
    Ok(Run {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn chmod_x(p: &Path) -> Result<()> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| err!("{}: {e}", p.display()))
}
