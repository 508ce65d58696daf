//! The provisioning server of the lab: inside one network namespace, a bridge carrying the
//! provisioning network's PXE server address, and on it ISC dhcpd with the generated
//! dhcpd.conf, dnsmasq as TFTP server (DHCP off) with Debian's iPXE binaries, busybox httpd
//! serving the generated iPXE directory and the boot artifacts, and `plasmagen collector`.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::netns::{Daemon, Netns};
use crate::tools::Tools;
use crate::vm::{Disk, Firmware, Vm, VmSpec};
use crate::{Result, copy, copy_dir, err, initrd, mkdir, poll, tail};

/// The first tap device on the bridge (the VM tests' single machine uses it).
pub const TAP: &str = "tap0";
/// busybox httpd serving the iPXE directory and the boot artifacts (the generated scripts'
/// `http://<pxe_server>:8080/boot/…`).
pub const HTTP_PORT: u16 = 8080;
/// The collector's plain-HTTP boot listener (`/boot/<mac>.ipxe`).
pub const BOOT_PORT: u16 = 8081;
pub const DISK_BYTES: u64 = 64 << 20;

/// Same shape as NixOS's netboot.ipxe (`system.build.netbootIpxeScript`): relative kernel
/// and initrd URLs, and the node script's `${cmdline}` at the end of the kernel line.
const NETBOOT_IPXE: &str = "#!ipxe\n\
kernel bzImage init=/init initrd=initrd console=ttyS0 panic=-1 loglevel=4 ${cmdline}\n\
initrd initrd\n\
boot\n";

/// The two programs the lab runs: `plasmagen` (the collector, the operator commands) and
/// `plasma-agent` (inside the netboot initrd).
#[derive(Debug, Clone)]
pub struct Binaries {
    pub plasmagen: PathBuf,
    pub agent: PathBuf,
}

/// The provisioning network as the inventory describes it.
#[derive(Debug, Clone)]
pub struct Network {
    /// The PXE server's interface: the bridge carries its name, so the generated dhcpd.conf
    /// binds to it unchanged.
    pub bridge: String,
    pub pxe_server: String,
    pub prefix_len: u8,
    /// The collector's TLS port (of the inventory's `collector_url`).
    pub collector_port: u16,
    /// More addresses for the namespace's loopback: the BMCs' (`bmc.address`).
    pub extra_addresses: Vec<String>,
}

/// Where the lab keeps its files: a temporary directory removed on drop (the tests), or a
/// directory that outlives the process (`plasmagen lab up`).
#[derive(Debug)]
pub enum Work {
    Temp(TempDir),
    Dir(PathBuf),
}

impl Work {
    pub fn path(&self) -> &Path {
        match self {
            Work::Temp(t) => t.path(),
            Work::Dir(d) => d,
        }
    }
}

/// Everything a lab is made from: the output of `plasmagen generate` (its `flake/pxe` and
/// secrets), the inventory the collector reads, the network and the initrd its machines boot.
#[derive(Debug)]
pub struct LabSpec {
    /// The network namespace's name (`/run/netns/<name>`).
    pub ns_name: String,
    pub work: Work,
    /// Server logs and serial consoles.
    pub diag: PathBuf,
    /// The generated `flake/pxe` directory.
    pub pxe: PathBuf,
    pub secrets: PathBuf,
    pub inventory: PathBuf,
    pub network: Network,
    pub initrd: initrd::Kind,
}

/// What dhcpd logs once it serves.
pub const DHCPD_READY: &str = "Server starting service";

/// ISC dhcpd with the generated dhcpd.conf as is; only host paths (leases, pid) are the lab's.
pub fn dhcpd_command(ns: &Netns, tools: &Tools, pxe: &Path, work: &Path, bridge: &str) -> Command {
    let mut dhcpd = ns.command(&tools.dhcpd);
    dhcpd
        .args(["-f", "-d", "-4", "-cf"])
        .arg(pxe.join("dhcpd.conf"))
        .arg("-lf")
        .arg(work.join("dhcpd.leases"))
        .arg("-pf")
        .arg(work.join("dhcpd.pid"))
        .arg(bridge);
    dhcpd
}

pub struct Lab {
    // Dropped first: servers, then the namespace, then the files.
    servers: Vec<Daemon>,
    pub ns: Netns,
    pub tools: Tools,
    pub bins: Binaries,
    pub diag: PathBuf,
    pub inventory: PathBuf,
    pub secrets: PathBuf,
    /// The generated `flake/pxe` directory.
    pub pxe: PathBuf,
    pub network: Network,
    work: Work,
}

/// What a detached lab left running, for `lab down`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Detached {
    pub netns: String,
    /// `(name, pid)` of each server.
    pub servers: Vec<(String, u32)>,
}

impl Lab {
    /// Creates the namespace, the bridge (with the PXE server's address and the first tap),
    /// the served artifacts and the servers; every one is removed again when the lab drops.
    pub fn start(tools: Tools, bins: Binaries, spec: LabSpec) -> Result<Lab> {
        mkdir(&spec.diag)?;
        mkdir(spec.work.path())?;
        let ns = Netns::create(&tools.ip, &spec.ns_name)?;
        let mut lab = Lab {
            servers: Vec::new(),
            ns,
            tools,
            bins,
            diag: spec.diag,
            inventory: spec.inventory,
            secrets: spec.secrets,
            pxe: spec.pxe,
            network: spec.network,
            work: spec.work,
        };
        lab.network()?;
        lab.artifacts(&spec.initrd)?;
        lab.servers()?;
        Ok(lab)
    }

    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    fn network(&self) -> Result<()> {
        let (ns, net) = (&self.ns, &self.network);
        ns.ip(&["link", "add", &net.bridge, "type", "bridge"])?;
        let address = format!("{}/{}", net.pxe_server, net.prefix_len);
        ns.ip(&["addr", "add", &address, "dev", &net.bridge])?;
        ns.ip(&["link", "set", &net.bridge, "up"])?;
        for a in &net.extra_addresses {
            ns.ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"])?;
        }
        self.add_tap(TAP)
    }

    /// Another tap device on the bridge, for one more machine.
    pub fn add_tap(&self, tap: &str) -> Result<()> {
        let ns = &self.ns;
        ns.ip(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
        ns.ip(&["link", "set", tap, "master", &self.network.bridge])?;
        ns.ip(&["link", "set", tap, "up"])
    }

    /// Leaves the servers and the namespace running past this process (`plasmagen lab up`):
    /// what is returned is what `lab down` stops.
    pub fn detach(self) -> Detached {
        let Lab {
            servers, ns, work, ..
        } = self;
        let servers = servers
            .into_iter()
            .map(|d| {
                let name = d.name.clone();
                (name, d.detach())
            })
            .collect();
        let netns = ns.keep();
        if let Work::Temp(t) = work {
            let _ = t.keep();
        }
        Detached { netns, servers }
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
        std::fs::write(self.dir().join("dhcpd.leases"), "").map_err(|e| err!("dhcpd.leases: {e}"))
    }

    fn start_dhcpd(&mut self) -> Result<()> {
        let cmd = dhcpd_command(
            &self.ns,
            &self.tools,
            &self.pxe,
            self.work.path(),
            &self.network.bridge,
        );
        let i = self.spawn("dhcpd", cmd)?;
        self.servers[i].wait_log(DHCPD_READY, Duration::from_secs(20))
    }

    /// Restarts dhcpd, which reads its configuration only at start: after `generate` wrote
    /// a new dhcpd.conf (an enlisted machine's reservation), as the PXE server's
    /// `nixos-rebuild switch` restarts it.
    pub fn restart_dhcpd(&mut self) -> Result<()> {
        if let Some(i) = self.servers.iter().position(|d| d.name == "dhcpd") {
            self.servers.remove(i).stop();
        }
        self.start_dhcpd()
    }

    fn spawn(&mut self, name: &str, cmd: Command) -> Result<usize> {
        let log = self.diag.join(format!("{name}.log"));
        self.servers.push(Daemon::spawn(name, cmd, &log)?);
        Ok(self.servers.len() - 1)
    }

    fn servers(&mut self) -> Result<()> {
        let w = self.dir().to_path_buf();
        let net = self.network.clone();
        let pxe_server = net.pxe_server.as_str();
        self.start_dhcpd()?;

        let mut tftp = self.ns.command(&self.tools.dnsmasq);
        tftp.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--enable-tftp",
        ])
        .arg(format!("--tftp-root={}", w.join("tftp").display()))
        .arg(format!("--interface={}", net.bridge))
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
                &format!("{pxe_server}:{HTTP_PORT}"),
                "-h",
            ])
            .arg(w.join("www"));
        self.spawn("httpd", httpd)?;

        let mut collector = self.ns.command(&self.bins.plasmagen);
        collector
            .args([
                "collector",
                "--listen",
                &format!("{pxe_server}:{}", net.collector_port),
            ])
            .args(["--boot-listen", &format!("{pxe_server}:{BOOT_PORT}")])
            .arg("--db")
            .arg(w.join("collector.db"))
            .arg("--inventory")
            .arg(&self.inventory)
            .arg("--secrets")
            .arg(&self.secrets)
            .env("RUST_LOG", "info");
        let i = self.spawn("collector", collector)?;
        self.servers[i].wait_log("boot listening", Duration::from_secs(30))?;

        for port in [HTTP_PORT, BOOT_PORT, net.collector_port] {
            let addr: SocketAddr = format!("{pxe_server}:{port}")
                .parse()
                .map_err(|e| err!("{pxe_server}:{port}: {e}"))?;
            let up = self.ns.enter(|| {
                poll(Duration::from_secs(10), Duration::from_millis(100), || {
                    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()
                })
                .is_some()
            })?;
            if !up {
                return Err(err!("nothing listens on {addr} in the lab namespace"));
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
        format!(
            "https://{}:{}",
            self.network.pxe_server, self.network.collector_port
        )
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
            return Err(err!(
                "plasmagen {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
