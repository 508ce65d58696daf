//! `plasmagen lab up | down | status OUT_DIR`: the runbook rehearsed on one Linux machine
//! (plasma_lab::rehearsal, docs/lab.md). The lab is made from `generate`'s output: the
//! provisioning network of its inventory copy in a network namespace, the generated DHCP/TFTP/
//! iPXE artifacts and the collector served there, and one QEMU machine per node (its MAC,
//! firmware and by-id disk) behind an emulated IPMI BMC at the node's `bmc.address`.

use std::path::{Path, PathBuf};

use plasma_inventory::inventory::{BmcProtocol, Firmware as NodeFirmware, Inventory};
use plasma_lab::pxe::{Binaries, Network};
use plasma_lab::rehearsal::{self, Health, Machine, Plan};
use plasma_lab::tools::{self, Tools};
use plasma_lab::vm::Firmware;
use plasma_operator::bmc::ipmi::split_address;

use super::Outcome;
use super::fleet::{inventory_copy, load_fleet, operator_layout};
use crate::error::Error;

pub const HELP: &str = "\
`lab up OUT` needs root (network namespace, bridge, taps), QEMU, ISC dhcpd, dnsmasq, busybox,
iPXE, OVMF, a kernel under /boot, OpenSSH and a python with pyghmi (--bmc-python); it prints
what is missing with the Debian packages. It runs `generate`'s output as it is: run
`plasmagen generate INVENTORY --out OUT` first. Commands that must reach the lab (`plasmagen up`,
`provision`, `status`) run inside its namespace: `ip netns exec <namespace> plasmagen …`
(`lab status` prints the name). Nothing leaves the namespace: its bridge has no physical port.

The machines netboot the lab's installer (a host-kernel initrd with plasma-agent and sshd, as
NixOS's netboot image cannot be built here): discovery reports, then SSH as root with the
inventory's keys. BMC passwords: each node's bmc.password_file, else IPMI_PASSWORD.

Exit codes:
  0   done (status: a lab is up and everything in it runs)
  1   status: no lab, or a process of it has stopped
  2   bad input (no generated output, a Redfish BMC, missing programs); nothing was made";

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Create the namespace, serve the generated artifacts, start the machines and BMCs.
    Up(UpArgs),
    /// Stop every process of the lab, delete its namespace and OUT/lab/.
    Down(DirArgs),
    /// Each process and machine of the lab, and the namespace to run commands in.
    Status(DirArgs),
    /// After `generate`: restart the lab's dhcpd and make its collector re-read the inventory
    /// (what deploying the PXE server does). `plasmagen up` does this itself.
    Reload(DirArgs),
}

#[derive(Debug, clap::Args)]
pub struct DirArgs {
    /// `plasmagen generate`'s output directory.
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// `plasmagen generate`'s output directory.
    pub out: PathBuf,
    /// Generated secrets directory (default OUT/secrets).
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// The inventory file the collector reads, and the dashboard's enlist edits (default: the
    /// flake's copy).
    #[arg(long)]
    pub inventory: Option<PathBuf>,
    /// Also start this many machines nobody typed in (no BMC; powered on at once, they
    /// netboot into discovery).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub unknown: u8,
    #[arg(long, default_value = "bios", value_parser = ["bios", "uefi"])]
    pub unknown_firmware: String,
    /// A python with pyghmi for the BMC emulators.
    #[arg(long, env = "PLASMA_BMC_PYTHON", default_value = "python3")]
    pub bmc_python: PathBuf,
    /// plasma-agent for the netboot installer (default: next to plasmagen, else on PATH).
    #[arg(long)]
    pub agent: Option<PathBuf>,
    /// Size of each machine's blank disk (sparse; enlist wants at least 16 GiB).
    #[arg(long, default_value_t = 32768, value_name = "MIB")]
    pub disk_mib: u64,
}

pub fn run(args: &Args) -> Result<Outcome, Error> {
    match &args.action {
        Action::Up(a) => up(a),
        Action::Down(a) => down(&a.out),
        Action::Status(a) => status(&a.out),
        Action::Reload(a) => reload(&a.out),
    }
}

/// Whether `lab up` made a lab for `out` (`plasmagen up` then reloads it after enlisting).
pub fn has_lab(out: &Path) -> bool {
    rehearsal::read_state(out).ok().flatten().is_some()
}

/// `lab reload`, also run by `plasmagen up` when OUT has a lab.
pub fn reload(out: &Path) -> Result<Outcome, Error> {
    let tools = Tools::find().map_err(lab_err)?;
    for line in rehearsal::reload(&tools, out).map_err(lab_err)? {
        eprintln!("lab: {line}");
    }
    Ok(Outcome::Ok)
}

fn lab_err(e: plasma_lab::LabError) -> Error {
    Error::Usage(format!("lab: {e}"))
}

fn up(args: &UpArgs) -> Result<Outcome, Error> {
    let layout = operator_layout(&args.out, args.secrets.as_deref())?;
    let loaded = load_fleet(&layout.flake)?;
    let inv = &loaded.inventory;
    let pxe = layout.flake.join("pxe");
    if !pxe.join("dhcpd.conf").is_file() {
        return Err(Error::Usage(format!(
            "{}: no dhcpd.conf: run `plasmagen generate INVENTORY --out {}` first",
            pxe.display(),
            args.out.display()
        )));
    }
    let mut machines = machines(inv)?;
    for i in 1..=args.unknown {
        machines.push(Machine {
            name: format!("unknown{i}"),
            mac: format!("52:54:00:1a:b0:{i:02x}"),
            firmware: if args.unknown_firmware == "uefi" {
                Firmware::Uefi
            } else {
                Firmware::Bios
            },
            disk_serial: format!("LABUNKNOWN{i:02}"),
            bmc: None,
        });
    }
    let password = bmc_password(inv)?;
    let network = network(inv, &machines)?;
    tools::require_privileges().map_err(lab_err)?;
    let tools = Tools::find().map_err(lab_err)?;
    let plasmagen = std::env::current_exe().map_err(Error::io_at(Path::new("plasmagen")))?;
    let agent = match &args.agent {
        Some(a) => a.clone(),
        None => plasmagen
            .parent()
            .map(|d| d.join("plasma-agent"))
            .filter(|p| p.is_file())
            .or_else(|| tools::which("plasma-agent"))
            .ok_or_else(|| {
                Error::Usage("plasma-agent not found next to plasmagen or on PATH: --agent".into())
            })?,
    };
    let out = std::path::absolute(&args.out).map_err(Error::io_at(&args.out))?;
    let inventory = match &args.inventory {
        Some(p) => std::path::absolute(p).map_err(Error::io_at(p))?,
        None => {
            let copy = inventory_copy(&layout.flake).unwrap_or_default();
            std::path::absolute(&copy).map_err(Error::io_at(&copy))?
        }
    };
    let plan = Plan {
        pxe: std::path::absolute(&pxe).map_err(Error::io_at(&pxe))?,
        secrets: std::path::absolute(&layout.secrets).map_err(Error::io_at(&layout.secrets))?,
        out,
        inventory,
        network,
        machines,
        authorized_keys: inv.cluster.ssh_authorized_keys.join("\n"),
        bmc_user: inv
            .nodes
            .iter()
            .find_map(|n| n.bmc.as_ref().map(|b| b.username.clone()))
            .unwrap_or_else(|| "admin".into()),
        bmc_password: password,
        python: args.bmc_python.clone(),
        disk_bytes: args.disk_mib << 20,
    };
    let bins = Binaries { plasmagen, agent };
    let state =
        rehearsal::up(tools, bins, &plan, &mut |line| eprintln!("lab: {line}")).map_err(lab_err)?;
    eprintln!(
        "lab: up in namespace {ns}; collector {url}; serial consoles in {dir}\n\
         lab: next: ip netns exec {ns} plasmagen up {out} --inventory INVENTORY",
        ns = state.netns,
        url = state.collector_url,
        dir = rehearsal::lab_dir(&plan.out).display(),
        out = args.out.display()
    );
    Ok(Outcome::Ok)
}

/// One machine per node: its MAC, firmware, first disk's by-id serial, IPMI BMC.
fn machines(inv: &Inventory) -> Result<Vec<Machine>, Error> {
    inv.nodes
        .iter()
        .map(|n| {
            let bmc = match &n.bmc {
                None => None,
                Some(b) if b.protocol == BmcProtocol::Redfish => {
                    return Err(Error::Usage(format!(
                        "node {}: bmc.protocol is redfish; the lab emulates IPMI BMCs (use a \
                         copy of the inventory with protocol = \"ipmi\" for the rehearsal)",
                        n.hostname
                    )));
                }
                Some(b) => {
                    let (host, port) = split_address(&b.address);
                    Some((host, port.unwrap_or(623)))
                }
            };
            // `/dev/disk/by-id/virtio-<serial>` is what the machine's virtio disk appears as;
            // any other path gets a serial from the hostname.
            let serial = n
                .disks
                .first()
                .and_then(|d| d.strip_prefix("/dev/disk/by-id/virtio-"))
                .map(str::to_string)
                .unwrap_or_else(|| format!("LAB-{}", n.hostname.to_ascii_uppercase()));
            Ok(Machine {
                name: n.hostname.clone(),
                mac: n.mac.as_str().to_string(),
                firmware: match n.firmware {
                    NodeFirmware::Uefi => Firmware::Uefi,
                    NodeFirmware::Bios => Firmware::Bios,
                },
                disk_serial: serial,
                bmc,
            })
        })
        .collect()
}

/// The emulators' password: what `provision` will log in with (the first node's BMC; the lab's
/// BMCs share it).
fn bmc_password(inv: &Inventory) -> Result<String, Error> {
    match inv.nodes.iter().find_map(|n| n.bmc.as_ref()) {
        None => Ok(String::new()),
        Some(b) => plasma_operator::provision::plan::bmc_password(b)
            .map_err(|e| Error::Usage(format!("the emulated BMCs' password: {e}"))),
    }
}

fn network(inv: &Inventory, machines: &[Machine]) -> Result<Network, Error> {
    let p = &inv.provisioning;
    let collector_port = inv
        .cluster
        .collector_url
        .rsplit_once(':')
        .and_then(|(_, port)| port.trim_end_matches('/').parse().ok())
        .unwrap_or(8443);
    if p.interface.len() > 15 {
        return Err(Error::Usage(format!(
            "networks.provisioning.interface {:?} is longer than a Linux interface name",
            p.interface
        )));
    }
    let mut extra: Vec<String> = machines
        .iter()
        .filter_map(|m| m.bmc.as_ref().map(|(a, _)| a.clone()))
        .filter(|a| a != "127.0.0.1")
        .collect();
    extra.sort();
    extra.dedup();
    Ok(Network {
        bridge: p.interface.clone(),
        pxe_server: p.pxe_server.to_string(),
        prefix_len: p.subnet.prefix,
        collector_port,
        extra_addresses: extra,
    })
}

fn down(out: &Path) -> Result<Outcome, Error> {
    let ip = tools::which("ip").ok_or_else(|| Error::Usage("ip (iproute2) not found".into()))?;
    let done = rehearsal::down(&ip, out).map_err(lab_err)?;
    if done.is_empty() {
        eprintln!("lab: nothing to remove for {}", out.display());
    }
    for line in done {
        eprintln!("lab: {line}");
    }
    Ok(Outcome::Ok)
}

fn status(out: &Path) -> Result<Outcome, Error> {
    let Some((state, rows)) = rehearsal::status(out).map_err(lab_err)? else {
        println!("no lab is up for {}", out.display());
        return Ok(Outcome::Failed);
    };
    println!(
        "namespace {}  collector {}",
        state.netns, state.collector_url
    );
    let mut all = true;
    for (what, health) in &rows {
        all &= *health != Health::Stopped;
        println!("{:8} {what}", health.as_str());
    }
    println!(
        "run commands in it with: ip netns exec {} plasmagen …",
        state.netns
    );
    Ok(if all { Outcome::Ok } else { Outcome::Failed })
}
