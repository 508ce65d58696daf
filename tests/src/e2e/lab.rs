//! The provisioning server of the lab: inside one network namespace, a bridge carrying the
//! provisioning network's PXE server address, and on it ISC dhcpd with the generated
//! dhcpd.conf, dnsmasq as TFTP server (DHCP off) with Debian's iPXE binaries, busybox httpd
//! serving the generated iPXE directory and the boot artifacts, and `plasmagen collector`.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::netns::{Daemon, Netns};
use super::tools::Tools;
use super::vm::{Disk, Firmware, Vm, VmSpec};
use super::{Result, copy, copy_dir, diag_dir, initrd, mkdir, poll, tail};

pub const PXE_SERVER: &str = "10.0.100.10";
/// The provisioning interface the inventory names and the DHCP server binds to.
pub const BRIDGE: &str = "br-prov";
pub const TAP: &str = "tap0";
pub const NODE01_MAC: &str = "52:54:00:12:34:56";
pub const NODE01_IP: &str = "10.0.100.50";
pub const DISK_BYTES: u64 = 64 << 20;

/// One control-plane node; the provisioning network is the lab's bridge.
pub const INVENTORY: &str = r#"
[cluster]
name = "e2e"
domain = "e2e.test"
bootstrap = ["node01"]
ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkd86f/K36q5Khr2jtCpqAhME6U6WYvfZ+SRxEj42Ve e2e@test"]
state_version = "24.11"
collector_url = "https://10.0.100.10:8443"

[networks.provisioning]
subnet = "10.0.100.0/24"
gateway = "10.0.100.1"
nameservers = ["10.0.100.1"]
dhcp_range = { start = "10.0.100.100", end = "10.0.100.200" }
pxe_server = "10.0.100.10"
interface = "br-prov"

[networks.production]
subnet = "10.0.200.0/24"
gateway = "10.0.200.1"
nameservers = ["10.0.200.1"]

[[nodes]]
hostname = "node01"
role = "control-plane"
mac = "52:54:00:12:34:56"
provisioning_ip = "10.0.100.50"
production_ip = "10.0.200.10"
disks = ["/dev/disk/by-id/virtio-E2EBIOS01"]
disk_layout = "single"
"#;

/// Same shape as NixOS's netboot.ipxe (`system.build.netbootIpxeScript`): relative kernel
/// and initrd URLs, and the node script's `${cmdline}` at the end of the kernel line.
const NETBOOT_IPXE: &str = "#!ipxe\n\
kernel bzImage init=/init initrd=initrd console=ttyS0 panic=-1 loglevel=4 ${cmdline}\n\
initrd initrd\n\
boot\n";

/// `plasmagen` and `plasma-agent` as built for this test run.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub plasmagen: PathBuf,
    pub agent: PathBuf,
}

/// Builds (or finds up to date) the two binaries exactly as they ship: each package on its
/// own (`cargo build -p`, as nix/package.nix and bench/agent.sh do) and in the release profile,
/// in `target/shipped/`. Built together, Cargo's feature unification would give plasma-agent
/// plasmagen's reqwest features (a bundled TLS provider the shipped agent does not have):
/// the tested binary would not be the shipped one.
pub fn build_binaries() -> Result<Binaries> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("workspace root")?;
    let target = workspace.join("target/shipped");
    for package in ["plasmagen", "plasma-agent"] {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(workspace)
            .args([
                "build",
                "--quiet",
                "--release",
                "--locked",
                "-p",
                package,
                "--bin",
                package,
            ])
            .arg("--target-dir")
            .arg(&target);
        let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
        if !status.success() {
            return Err(format!("{cmd:?} failed ({status})"));
        }
    }
    let bins = Binaries {
        plasmagen: target.join("release/plasmagen"),
        agent: target.join("release/plasma-agent"),
    };
    for b in [&bins.plasmagen, &bins.agent] {
        if !b.is_file() {
            return Err(format!("{} missing after cargo build", b.display()));
        }
    }
    Ok(bins)
}

/// What a lab serves: the inventory it generates from, the initrd its machines netboot, and
/// where its logs go.
#[derive(Debug, Clone)]
pub struct LabConfig {
    pub inventory: String,
    pub initrd: initrd::Kind,
    pub diag: PathBuf,
}

impl LabConfig {
    /// The PXE test's lab: [`INVENTORY`], the discovery initrd, logs in `target/e2e/`.
    pub fn pxe() -> LabConfig {
        LabConfig {
            inventory: INVENTORY.to_string(),
            initrd: initrd::Kind::Discover,
            diag: diag_dir(),
        }
    }
}

pub struct Lab {
    // Dropped first: servers, then the namespace, then the files.
    servers: Vec<Daemon>,
    pub ns: Netns,
    pub tools: Tools,
    pub bins: Binaries,
    pub work: TempDir,
    pub diag: PathBuf,
    pub inventory: PathBuf,
    pub secrets: PathBuf,
    /// The generated `flake/pxe` directory.
    pub pxe: PathBuf,
}

impl Lab {
    pub fn start(tools: Tools, bins: Binaries) -> Result<Lab> {
        Lab::start_with(tools, bins, LabConfig::pxe())
    }

    pub fn start_with(tools: Tools, bins: Binaries, config: LabConfig) -> Result<Lab> {
        let diag = config.diag.clone();
        mkdir(&diag)?;
        let work = tempfile::Builder::new()
            .prefix("plasma-e2e-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let w = work.path().to_path_buf();
        let ns = Netns::create(&tools.ip, "plasma-e2e")?;
        let mut lab = Lab {
            servers: Vec::new(),
            ns,
            tools,
            bins,
            work,
            diag,
            inventory: w.join("inventory.toml"),
            secrets: w.join("out/secrets"),
            pxe: w.join("out/flake/pxe"),
        };
        lab.network()?;
        lab.generate(&config.inventory)?;
        lab.artifacts(&config.initrd)?;
        lab.servers()?;
        Ok(lab)
    }

    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    fn network(&self) -> Result<()> {
        let ns = &self.ns;
        ns.ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        ns.ip(&["addr", "add", &format!("{PXE_SERVER}/24"), "dev", BRIDGE])?;
        ns.ip(&["link", "set", BRIDGE, "up"])?;
        self.add_tap(TAP)
    }

    /// Another tap device on the bridge, for one more machine.
    pub fn add_tap(&self, tap: &str) -> Result<()> {
        let ns = &self.ns;
        ns.ip(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
        ns.ip(&["link", "set", tap, "master", BRIDGE])?;
        ns.ip(&["link", "set", tap, "up"])
    }

    fn generate(&self, inventory: &str) -> Result<()> {
        std::fs::write(&self.inventory, inventory).map_err(|e| e.to_string())?;
        let out = Command::new(&self.bins.plasmagen)
            .arg("generate")
            .arg(&self.inventory)
            .arg("--out")
            .arg(self.dir().join("out"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("plasmagen generate: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "plasmagen generate failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// www/boot/ipxe = the generated iPXE directory; www/boot/nixos/<profile>/ = kernel, the
    /// test initrd, netboot.ipxe; tftp/ = Debian's iPXE binaries.
    fn artifacts(&self, kind: &initrd::Kind) -> Result<()> {
        let www = self.dir().join("www/boot");
        copy_dir(&self.pxe, &www.join("ipxe"))?;
        let initrd = self.dir().join("initrd");
        let ca = std::fs::read(self.secrets.join("ca/ca-cert.pem")).map_err(|e| e.to_string())?;
        match kind {
            initrd::Kind::Discover => initrd::build(&self.tools, &self.bins.agent, &ca, &initrd)?,
            initrd::Kind::Installer { authorized_key } => initrd::build_installer(
                &self.tools,
                &self.bins.agent,
                &ca,
                authorized_key,
                &initrd,
            )?,
        }
        // node01 is a control plane; unknown machines boot the discovery (worker) profile.
        for profile in ["control-plane", "worker"] {
            let dir = www.join("nixos").join(profile);
            mkdir(&dir)?;
            copy(&self.tools.kernel, &dir.join("bzImage"))?;
            if std::fs::hard_link(&initrd, dir.join("initrd")).is_err() {
                copy(&initrd, &dir.join("initrd"))?;
            }
            std::fs::write(dir.join("netboot.ipxe"), NETBOOT_IPXE).map_err(|e| e.to_string())?;
        }
        let tftp = self.dir().join("tftp");
        mkdir(&tftp)?;
        copy(&self.tools.undionly, &tftp.join("undionly.kpxe"))?;
        copy(&self.tools.ipxe_efi, &tftp.join("ipxe.efi"))?;
        std::fs::write(self.dir().join("dhcpd.leases"), "").map_err(|e| e.to_string())
    }

    fn spawn(&mut self, name: &str, cmd: Command) -> Result<usize> {
        let log = self.diag.join(format!("{name}.log"));
        self.servers.push(Daemon::spawn(name, cmd, &log)?);
        Ok(self.servers.len() - 1)
    }

    fn servers(&mut self) -> Result<()> {
        let w = self.dir().to_path_buf();
        // The generated dhcpd.conf as is; only host paths (leases, pid) are the lab's.
        let mut dhcpd = self.ns.command(&self.tools.dhcpd);
        dhcpd
            .args(["-f", "-d", "-4", "-cf"])
            .arg(self.pxe.join("dhcpd.conf"))
            .arg("-lf")
            .arg(w.join("dhcpd.leases"))
            .arg("-pf")
            .arg(w.join("dhcpd.pid"))
            .arg(BRIDGE);
        let i = self.spawn("dhcpd", dhcpd)?;
        self.servers[i].wait_log("Server starting service", Duration::from_secs(20))?;

        let mut tftp = self.ns.command(&self.tools.dnsmasq);
        tftp.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--enable-tftp",
        ])
        .arg(format!("--tftp-root={}", w.join("tftp").display()))
        .arg(format!("--interface={BRIDGE}"))
        .args(["--bind-interfaces", "--log-facility=-", "--user=root"])
        .arg(format!("--pid-file={}", w.join("dnsmasq.pid").display()));
        let i = self.spawn("tftp-dnsmasq", tftp)?;
        self.servers[i].wait_log("TFTP root is", Duration::from_secs(20))?;

        let mut httpd = self.ns.command(&self.tools.busybox);
        httpd
            .args([
                "httpd",
                "-f",
                "-vv",
                "-p",
                &format!("{PXE_SERVER}:8080"),
                "-h",
            ])
            .arg(w.join("www"));
        self.spawn("httpd", httpd)?;

        let mut collector = self.ns.command(&self.bins.plasmagen);
        collector
            .args(["collector", "--listen", &format!("{PXE_SERVER}:8443")])
            .args(["--boot-listen", &format!("{PXE_SERVER}:8081")])
            .arg("--db")
            .arg(w.join("collector.db"))
            .arg("--inventory")
            .arg(&self.inventory)
            .arg("--secrets")
            .arg(&self.secrets)
            .env("RUST_LOG", "info");
        let i = self.spawn("collector", collector)?;
        self.servers[i].wait_log("boot listening", Duration::from_secs(30))?;

        for port in [8080u16, 8081, 8443] {
            let addr: SocketAddr = format!("{PXE_SERVER}:{port}").parse().expect("address");
            let up = self.ns.enter(|| {
                poll(Duration::from_secs(10), Duration::from_millis(100), || {
                    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()
                })
                .is_some()
            })?;
            if !up {
                return Err(format!("nothing listens on {addr} in the lab namespace"));
            }
        }
        self.check_servers()
    }

    /// `Err` naming the server that died, with its log.
    pub fn check_servers(&mut self) -> Result<()> {
        for s in &mut self.servers {
            s.check_alive()?;
        }
        Ok(())
    }

    pub fn log(&self, server: &str) -> String {
        let p = self.diag.join(format!("{server}.log"));
        String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
    }

    pub fn log_tail(&self, server: &str) -> String {
        tail(&self.diag.join(format!("{server}.log")), 30)
    }

    pub fn collector_url(&self) -> String {
        format!("https://{PXE_SERVER}:8443")
    }

    /// Powers on a machine with a blank disk on the lab's tap device.
    pub fn boot(&self, name: &str, firmware: Firmware, mac: &str, disk_serial: &str) -> Result<Vm> {
        self.boot_disk(name, firmware, mac, disk_serial, Disk::Blank)
    }

    /// Powers on a machine whose disk holds `disk`.
    pub fn boot_disk(
        &self,
        name: &str,
        firmware: Firmware,
        mac: &str,
        disk_serial: &str,
        disk: Disk,
    ) -> Result<Vm> {
        let spec = VmSpec {
            disk,
            name: format!("{name}-{}", firmware.as_str()),
            firmware,
            mac: mac.to_string(),
            tap: TAP.to_string(),
            disk_serial: disk_serial.to_string(),
            disk_bytes: DISK_BYTES,
            reboot: false,
        };
        Vm::start(&self.ns, &self.tools, spec, self.dir(), &self.diag)
    }

    /// Runs `plasmagen <args>` inside the namespace; stdout on success.
    pub fn plasmagen(&self, args: &[&str]) -> Result<String> {
        let out = self
            .ns
            .command(&self.bins.plasmagen)
            .args(args)
            .output()
            .map_err(|e| format!("plasmagen {args:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "plasmagen {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
