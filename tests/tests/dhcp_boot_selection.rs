//! The three generated DHCP configurations (ISC dhcpd, Kea, dnsmasq) hand out the boot file of
//! runbook 3.2, checked by running each real server on the generated file and asking it with
//! busybox udhcpc the way PXE firmware and iPXE ask:
//!
//! - user class "iPXE" (what iPXE sends, with or without its client architecture) →
//!   `http://<pxe_server>:8080/boot/ipxe/boot.ipxe`;
//! - client architecture (option 93) 0 → `undionly.kpxe`, 7 or 9 → `ipxe.efi`, both with
//!   next-server = pxe_server, and so does a client without option 93 (the runbook's fallback);
//! - node01's MAC gets its reserved provisioning IP, an unknown MAC one from the dynamic range.
//!
//! Server and client live in two network namespaces this test creates, joined by a veth pair
//! whose server end is the inventory's provisioning interface. Needs root; fails (never skips)
//! without it or without a program, naming the Debian package.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use plasma_tests::e2e::dhcp::{self, Link, Need, Offer};
use plasma_tests::e2e::netns::Daemon;
use plasma_tests::e2e::tail;
use plasmagen::command::generate;

const PXE_SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 100, 10);
const SERVER_IF: &str = "prov0";
const CLIENT_IF: &str = "nic0";
const NODE01_MAC: &str = "52:54:00:12:34:56";
const NODE01_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 100, 50);
const UNKNOWN_MAC: &str = "52:54:00:d4:c9:01";
const RANGE: (Ipv4Addr, Ipv4Addr) = (
    Ipv4Addr::new(10, 0, 100, 100),
    Ipv4Addr::new(10, 0, 100, 200),
);
const BOOT_SCRIPT_URL: &str = "http://10.0.100.10:8080/boot/ipxe/boot.ipxe";
/// udhcpc gives up by itself after about 5 s (see [`dhcp::udhcpc`]).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// A server that answered none of this many clients is not answering: the rest are not
/// asked, so a broken configuration fails in seconds rather than minutes.
const GIVE_UP_AFTER: usize = 3;

/// node01 and the provisioning network on the test's veth interface.
const INVENTORY: &str = r#"
[cluster]
name = "dhcp"
domain = "dhcp.test"
bootstrap = ["node01"]
ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkd86f/K36q5Khr2jtCpqAhME6U6WYvfZ+SRxEj42Ve e2e@test"]
state_version = "26.05"
collector_url = "https://10.0.100.10:8443"

[networks.provisioning]
subnet = "10.0.100.0/24"
gateway = "10.0.100.1"
nameservers = ["10.0.100.1"]
dhcp_range = { start = "10.0.100.100", end = "10.0.100.200" }
pxe_server = "10.0.100.10"
interface = "prov0"

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
disks = ["/dev/disk/by-id/virtio-DHCP01"]
disk_layout = "single"
"#;

const USER_CLASS: u8 = 77;
const CLIENT_ARCH: u8 = 93;

/// One kind of DHCP client and what runbook 3.2 says it must be given.
struct Client {
    name: &'static str,
    options: &'static [(u8, &'static [u8])],
    boot_file: &'static str,
    /// Required next-server; `None` where the boot file is a URL and next-server unused.
    siaddr: Option<Ipv4Addr>,
}

const CLIENTS: &[Client] = &[
    Client {
        name: "arch0-bios",
        options: &[(CLIENT_ARCH, &[0, 0])],
        boot_file: "undionly.kpxe",
        siaddr: Some(PXE_SERVER),
    },
    Client {
        name: "arch7-uefi",
        options: &[(CLIENT_ARCH, &[0, 7])],
        boot_file: "ipxe.efi",
        siaddr: Some(PXE_SERVER),
    },
    Client {
        name: "arch9-uefi",
        options: &[(CLIENT_ARCH, &[0, 9])],
        boot_file: "ipxe.efi",
        siaddr: Some(PXE_SERVER),
    },
    // No client architecture at all: the runbook's fallback.
    Client {
        name: "no-arch",
        options: &[],
        boot_file: "ipxe.efi",
        siaddr: Some(PXE_SERVER),
    },
    // iPXE sends its user class as the bare string, not RFC 3004 length-prefixed.
    Client {
        name: "ipxe",
        options: &[(USER_CLASS, b"iPXE")],
        boot_file: BOOT_SCRIPT_URL,
        siaddr: None,
    },
    // What iPXE really sends: the user class and its own client architecture, which must
    // not pull it back to the TFTP binary (a boot loop).
    Client {
        name: "ipxe-arch0",
        options: &[(USER_CLASS, b"iPXE"), (CLIENT_ARCH, &[0, 0])],
        boot_file: BOOT_SCRIPT_URL,
        siaddr: None,
    },
    Client {
        name: "ipxe-arch7",
        options: &[(USER_CLASS, b"iPXE"), (CLIENT_ARCH, &[0, 7])],
        boot_file: BOOT_SCRIPT_URL,
        siaddr: None,
    },
];

#[derive(Clone, Copy, Debug)]
enum Server {
    Dhcpd,
    Kea,
    Dnsmasq,
}

impl Server {
    fn need(self) -> Need {
        match self {
            Server::Dhcpd => Need {
                program: "dhcpd",
                package: "isc-dhcp-server",
            },
            Server::Kea => Need {
                program: "kea-dhcp4",
                package: "kea-dhcp4-server",
            },
            Server::Dnsmasq => Need {
                program: "dnsmasq",
                package: "dnsmasq-base",
            },
        }
    }

    /// Short, distinct per server: the tests run concurrently and name their namespaces
    /// after it.
    fn tag(self) -> &'static str {
        match self {
            Server::Dhcpd => "isc",
            Server::Kea => "kea",
            Server::Dnsmasq => "dnsmasq",
        }
    }

    /// Starts the server in the link's server namespace on the generated configuration from
    /// `pxe`; only host paths (leases, pid, lock files, TFTP root) point into `work`.
    fn start(self, link: &Link, program: &Path, pxe: &Path, work: &Path) -> Result<Daemon, String> {
        let log = work.join(format!("{}.log", self.tag()));
        let mut cmd = link.server.command(program);
        let ready = match self {
            Server::Dhcpd => {
                let leases = work.join("dhcpd.leases");
                write(&leases, "")?;
                cmd.args(["-f", "-d", "-4", "-cf"])
                    .arg(pxe.join("dhcpd.conf"))
                    .arg("-lf")
                    .arg(leases)
                    .arg("-pf")
                    .arg(work.join("dhcpd.pid"))
                    .arg(SERVER_IF);
                "Server starting service"
            }
            Server::Kea => {
                let conf = work.join("kea-dhcp4.json");
                write(&conf, &kea_conf(&pxe.join("kea-dhcp4.json"), work)?)?;
                cmd.arg("-c")
                    .arg(conf)
                    .env("KEA_PIDFILE_DIR", work)
                    .env("KEA_LOCKFILE_DIR", work);
                "DHCP4_STARTED"
            }
            Server::Dnsmasq => {
                let conf = work.join("dnsmasq.conf");
                write(&conf, &dnsmasq_conf(&pxe.join("dnsmasq.conf"), work)?)?;
                cmd.arg("--no-daemon")
                    .arg("-C")
                    .arg(conf)
                    .arg(format!("--pid-file={}", work.join("dnsmasq.pid").display()))
                    .arg(format!(
                        "--dhcp-leasefile={}",
                        work.join("dnsmasq.leases").display()
                    ))
                    // Logs to stderr, and keeps root so the temp dir stays accessible.
                    .args(["--log-facility=-", "--log-dhcp", "--user=root"]);
                "DHCP, IP range"
            }
        };
        let mut daemon = Daemon::spawn(self.tag(), cmd, &log)?;
        daemon.wait_log(ready, Duration::from_secs(15))?;
        Ok(daemon)
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The generated Kea configuration with only its lease file moved into `work`.
fn kea_conf(generated: &Path, work: &Path) -> Result<String, String> {
    let mut conf: serde_json::Value = serde_json::from_str(&read(generated)?)
        .map_err(|e| format!("{}: {e}", generated.display()))?;
    let name = conf
        .pointer_mut("/Dhcp4/lease-database/name")
        .ok_or("kea-dhcp4.json has no Dhcp4.lease-database.name")?;
    *name = work.join("kea-leases.csv").display().to_string().into();
    serde_json::to_string_pretty(&conf).map_err(|e| e.to_string())
}

/// The generated dnsmasq configuration with only its TFTP root moved into `work`.
fn dnsmasq_conf(generated: &Path, work: &Path) -> Result<String, String> {
    let tftp = work.join("tftp");
    std::fs::create_dir_all(&tftp).map_err(|e| format!("{}: {e}", tftp.display()))?;
    let text = read(generated)?;
    let mut moved = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("tftp-root=") {
                moved += 1;
                format!("tftp-root={}", tftp.display())
            } else {
                l.to_string()
            }
        })
        .collect();
    if moved != 1 {
        return Err(format!(
            "dnsmasq.conf has {moved} tftp-root= lines, expected one"
        ));
    }
    Ok(lines.join("\n") + "\n")
}

/// `plasmagen generate <inventory> --out <work>/out --skip-certs` (the binary's code path,
/// called in process: no second cargo build); returns the generated `flake/pxe` directory.
fn generate(work: &Path) -> Result<PathBuf, String> {
    let inventory = work.join("inventory.toml");
    write(&inventory, INVENTORY)?;
    // The DHCP files do not depend on the PKI; no keys are made.
    let args = generate::Args::flake_only(inventory, work.join("out"));
    generate::run(&args).map_err(|e| format!("plasmagen generate: {e}"))?;
    Ok(work.join("out/flake/pxe"))
}

/// What runbook 3.2 requires of `offer` for `client` with `mac`; each violation as a line.
fn violations(client: &Client, mac: &str, offer: &Offer) -> Vec<String> {
    let mut v = Vec::new();
    if offer.boot_file.as_deref() != Some(client.boot_file) {
        v.push(format!(
            "boot file {:?}, want {:?}",
            offer.boot_file, client.boot_file
        ));
    }
    if let Some(want) = client.siaddr
        && offer.siaddr != Some(want)
    {
        v.push(format!("next-server {:?}, want {want}", offer.siaddr));
    }
    if offer.server_id != Some(PXE_SERVER) {
        v.push(format!(
            "server id {:?}, want {PXE_SERVER}",
            offer.server_id
        ));
    }
    if mac == NODE01_MAC {
        if offer.ip != NODE01_IP {
            v.push(format!(
                "address {}, want node01's reservation {NODE01_IP}",
                offer.ip
            ));
        }
    } else if !(RANGE.0..=RANGE.1).contains(&offer.ip) {
        v.push(format!(
            "address {}, want one in the dynamic range {}-{}",
            offer.ip, RANGE.0, RANGE.1
        ));
    }
    v
}

fn show(o: &Offer) -> String {
    format!(
        "ip {} next-server {} file {}",
        o.ip,
        o.siaddr.map_or("-".into(), |a| a.to_string()),
        o.boot_file.as_deref().unwrap_or("-")
    )
}

/// Runs every client with both MACs against `server`; panics listing every violation, with
/// the table of what was handed out and the server's log.
fn check(server: Server) {
    let started = Instant::now();
    let fail = |e: String| -> ! { panic!("{} boot selection: {e}", server.tag()) };
    dhcp::require_root().unwrap_or_else(|e| fail(e.into()));
    let need = server.need();
    let paths = dhcp::find(&[&dhcp::IP, &dhcp::BUSYBOX, &need]).unwrap_or_else(|e| fail(e.into()));
    let (ip, busybox, program) = (&paths[0], &paths[1], &paths[2]);

    // Declared first, dropped last: the namespaces (and their processes) go before the files.
    let work = tempfile::Builder::new()
        .prefix(&format!("plasma-dhcp-{}-", server.tag()))
        .tempdir()
        .unwrap_or_else(|e| fail(format!("temp dir: {e}")));
    let pxe = generate(work.path()).unwrap_or_else(|e| fail(e));
    let link = Link::create(
        ip,
        &format!("plasma-dhcp-{}", server.tag()),
        SERVER_IF,
        &format!("{PXE_SERVER}/24"),
        CLIENT_IF,
    )
    .unwrap_or_else(|e| fail(e.into()));
    let mut daemon = server
        .start(&link, program, &pxe, work.path())
        .unwrap_or_else(|e| fail(e));

    let ready = started.elapsed();

    let mut table = Vec::new();
    let mut wrong = Vec::new();
    let mut unanswered = 0;
    for (who, mac) in [("node01", NODE01_MAC), ("unknown", UNKNOWN_MAC)] {
        link.set_client_mac(mac).unwrap_or_else(|e| fail(e.into()));
        for client in CLIENTS {
            let label = format!("{who}-{}", client.name);
            if unanswered >= GIVE_UP_AFTER {
                table.push(format!("  {label:<20} not asked"));
                continue;
            }
            let asked = Instant::now();
            let offer = dhcp::udhcpc(
                &link,
                busybox,
                client.options,
                work.path(),
                &label,
                CLIENT_TIMEOUT,
            );
            match offer {
                Ok(o) => {
                    table.push(format!(
                        "  {label:<20} {} ({} ms)",
                        show(&o),
                        asked.elapsed().as_millis()
                    ));
                    for v in violations(client, mac, &o) {
                        wrong.push(format!("  {label}: {v}"));
                    }
                }
                Err(e) => {
                    unanswered += 1;
                    table.push(format!("  {label:<20} no lease"));
                    wrong.push(format!("  {label}: {e}"));
                    daemon.check_alive().unwrap_or_else(|e| fail(e.into()));
                }
            }
        }
    }
    daemon.check_alive().unwrap_or_else(|e| fail(e.into()));
    eprintln!(
        "{}: serving after {ready:?}, done after {:?}\n{}",
        server.tag(),
        started.elapsed(),
        table.join("\n")
    );
    assert!(
        wrong.is_empty(),
        "{} does not hand out what runbook 3.2 says with the generated configuration:\n{}\n\
         handed out:\n{}\n{}",
        server.tag(),
        wrong.join("\n"),
        table.join("\n"),
        tail(&daemon.log, 60)
    );
}

#[test]
fn isc_dhcpd_hands_out_the_runbook_boot_files() {
    check(Server::Dhcpd);
}

#[test]
fn kea_hands_out_the_runbook_boot_files() {
    check(Server::Kea);
}

#[test]
fn dnsmasq_hands_out_the_runbook_boot_files() {
    check(Server::Dnsmasq);
}
