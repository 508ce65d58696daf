//! `plasmagen lab up | down | status OUT_DIR`: the lab of the VM tests, left running so an
//! operator can rehearse the runbook on one Linux machine. Everything it makes is under
//! `OUT_DIR/lab/` (served files, disks, serial consoles, logs) or in its network namespace
//! (bridge, taps, BMC addresses); `OUT_DIR/lab/state.json` records every process, so `down`
//! stops exactly those and removes the namespace and the directory.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use rustix::process::{Pid, Signal, kill_process, kill_process_group};
use serde::{Deserialize, Serialize};

use crate::bmc::{self, BmcSpec};
use crate::hook_vm::HookVm;
use crate::netns::Netns;
use crate::pxe::{Binaries, Lab, LabSpec, Network, TAP, Work};
use crate::tools::Tools;
use crate::vm::{Disk, Firmware, VmSpec};
use crate::{Result, err, initrd};

/// One machine of the rack: an inventory node (with its BMC, if it has one) or a machine
/// nobody typed in (powered on at `up`, it netboots into discovery).
#[derive(Debug, Clone)]
pub struct Machine {
    pub name: String,
    pub mac: String,
    pub firmware: Firmware,
    /// The virtio disk's serial: `/dev/disk/by-id/virtio-<serial>` in the machine.
    pub disk_serial: String,
    /// `(address, UDP port)` of its emulated IPMI BMC.
    pub bmc: Option<(String, u16)>,
}

/// What `up` builds.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `plasmagen generate`'s output directory; the lab lives in its `lab/`.
    pub out: PathBuf,
    /// The generated `flake/pxe` directory and secrets directory.
    pub pxe: PathBuf,
    pub secrets: PathBuf,
    /// The inventory file the collector reads.
    pub inventory: PathBuf,
    pub network: Network,
    pub machines: Vec<Machine>,
    /// root's authorized_keys in the netboot installer (the inventory's keys).
    pub authorized_keys: String,
    pub bmc_user: String,
    pub bmc_password: String,
    /// A python with pyghmi, for the BMC emulators.
    pub python: PathBuf,
    pub disk_bytes: u64,
}

/// A running lab, as `OUT_DIR/lab/state.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub netns: String,
    pub collector_url: String,
    /// The served `flake/pxe` and the bridge, for restarting dhcpd ([`reload`]).
    pub pxe: PathBuf,
    pub bridge: String,
    /// `(name, pid)`: servers and BMC emulators, each the leader of its process group.
    pub processes: Vec<(String, u32)>,
    pub machines: Vec<MachineState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MachineState {
    pub name: String,
    pub mac: String,
    pub firmware: String,
    /// QEMU writes its pid here each time the machine powers on.
    pub pidfile: PathBuf,
    pub serial: PathBuf,
    /// `address:port` of its BMC, if it has one.
    pub bmc: Option<String>,
}

/// `OUT_DIR/lab`.
pub fn lab_dir(out: &Path) -> PathBuf {
    out.join("lab")
}

fn state_path(out: &Path) -> PathBuf {
    lab_dir(out).join("state.json")
}

/// `plasma-lab-<hash of OUT_DIR>`: one lab per output directory, short enough for `ip`.
pub fn netns_name(out: &Path) -> String {
    let canonical = out.canonicalize().unwrap_or_else(|_| out.to_path_buf());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    canonical.hash(&mut h);
    format!("plasma-lab-{:08x}", h.finish() as u32)
}

/// The recorded state, if a lab was brought up for `out`.
pub fn read_state(out: &Path) -> Result<Option<State>> {
    let p = state_path(out);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| err!("{}: {e}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err!("{}: {e}", p.display())),
    }
}

/// Brings the lab up; `say` gets one line per step. Refuses when a lab for `out` is up; a
/// half-made lab (a failed `up`) is removed first. On failure nothing is left behind.
pub fn up(tools: Tools, bins: Binaries, plan: &Plan, say: &mut dyn FnMut(&str)) -> Result<State> {
    let dir = lab_dir(&plan.out);
    if let Some(state) = read_state(&plan.out)?
        && Netns::exists(&state.netns)
    {
        return Err(err!(
            "a lab is already up for {} (namespace {}): `plasmagen lab status` shows it, \
             `plasmagen lab down` removes it",
            plan.out.display(),
            state.netns
        ));
    }
    if dir.exists() {
        say(&format!(
            "removing the leftovers of an earlier lab in {}",
            dir.display()
        ));
        down(&tools.ip, &plan.out)?;
    }
    let ip = tools.ip.clone();
    match build(tools, bins, plan, say) {
        Ok(state) => Ok(state),
        Err(e) => {
            // The guards already stopped every process; the files are ours too.
            let _ = down(&ip, &plan.out);
            Err(e)
        }
    }
}

fn build(tools: Tools, bins: Binaries, plan: &Plan, say: &mut dyn FnMut(&str)) -> Result<State> {
    let dir = lab_dir(&plan.out);
    crate::mkdir(&dir)?;
    let ns_name = netns_name(&plan.out);
    let python = plan.python.clone();
    let script = dir.join("fake_bmc.py");
    if plan.machines.iter().any(|m| m.bmc.is_some()) {
        bmc::check_python(&python)?;
        std::fs::write(&script, bmc::FAKE_BMC_PY).map_err(|e| err!("{}: {e}", script.display()))?;
    }
    say(&format!(
        "namespace {ns_name}: bridge {} with {}/{}, DHCP, TFTP, HTTP, collector; building the \
         netboot installer",
        plan.network.bridge, plan.network.pxe_server, plan.network.prefix_len
    ));
    let spec = LabSpec {
        ns_name,
        work: Work::Dir(dir.clone()),
        diag: dir.clone(),
        pxe: plan.pxe.clone(),
        secrets: plan.secrets.clone(),
        inventory: plan.inventory.clone(),
        network: plan.network.clone(),
        initrd: initrd::Kind::Installer {
            authorized_key: plan.authorized_keys.clone(),
        },
    };
    let lab = Lab::start(tools, bins, spec)?;
    let mut vms = Vec::new();
    let mut bmcs = Vec::new();
    let mut machines = Vec::new();
    for (i, m) in plan.machines.iter().enumerate() {
        let tap = if i == 0 {
            TAP.to_string()
        } else {
            format!("tap{i}")
        };
        if i > 0 {
            lab.add_tap(&tap)?;
        }
        let spec = VmSpec {
            name: m.name.clone(),
            firmware: m.firmware,
            mac: m.mac.clone(),
            tap,
            disk_serial: m.disk_serial.clone(),
            disk_bytes: plan.disk_bytes,
            disk: Disk::Blank,
            reboot: true,
        };
        let vm = HookVm::create(&lab, &spec)?;
        match &m.bmc {
            Some((address, port)) => {
                let spec = BmcSpec {
                    machine: m.name.clone(),
                    address: address.clone(),
                    port: *port,
                    user: plan.bmc_user.clone(),
                    password: plan.bmc_password.clone(),
                    on_boot: vm.script.clone(),
                    detached: true,
                };
                bmcs.push(bmc::start(&lab.ns, &python, &script, &dir, &spec)?);
                say(&format!(
                    "{} ({}, {}): powered off, BMC at {address}:{port}",
                    m.name,
                    m.mac,
                    m.firmware.as_str()
                ));
            }
            None => {
                vm.power_on()?;
                // QEMU writes its pid once it runs: `up` returns with the machine running.
                crate::poll(
                    std::time::Duration::from_secs(15),
                    std::time::Duration::from_millis(50),
                    || vm.running().then_some(()),
                )
                .ok_or_else(|| err!("{} did not start\n{}", m.name, vm.diagnose()))?;
                say(&format!(
                    "{} ({}, {}): no BMC, powered on (it netboots into discovery)",
                    m.name,
                    m.mac,
                    m.firmware.as_str()
                ));
            }
        }
        machines.push(MachineState {
            name: m.name.clone(),
            mac: m.mac.clone(),
            firmware: m.firmware.as_str().to_string(),
            pidfile: vm.pidfile.clone(),
            serial: vm.serial.clone(),
            bmc: m.bmc.as_ref().map(|(a, p)| format!("{a}:{p}")),
        });
        vms.push(vm);
    }
    let collector_url = lab.collector_url();
    let mut processes: Vec<(String, u32)> = bmcs
        .into_iter()
        .map(|d| (d.name.clone(), d.detach()))
        .collect();
    vms.into_iter().for_each(HookVm::detach);
    let detached = lab.detach();
    processes.extend(detached.servers);
    let state = State {
        netns: detached.netns,
        collector_url,
        pxe: plan.pxe.clone(),
        bridge: plan.network.bridge.clone(),
        processes,
        machines,
    };
    write_state(&plan.out, &state)?;
    Ok(state)
}

fn write_state(out: &Path, state: &State) -> Result<()> {
    let p = state_path(out);
    let text = serde_json::to_vec_pretty(state).map_err(|e| err!("{e}"))?;
    std::fs::write(&p, text).map_err(|e| err!("{}: {e}", p.display()))
}

/// After `generate` rewrote the served files: restarts dhcpd (it reads dhcpd.conf only at
/// start) and asks the collector to re-read its inventory (SIGHUP), as deploying the PXE
/// server does. What it did, one line each.
pub fn reload(tools: &Tools, out: &Path) -> Result<Vec<String>> {
    let mut state = read_state(out)?.ok_or_else(|| err!("no lab is up for {}", out.display()))?;
    let mut done = Vec::new();
    let ns = Netns::attach(&tools.ip, &state.netns);
    let dir = lab_dir(out);
    if let Some(entry) = state.processes.iter_mut().find(|(n, _)| n == "dhcpd") {
        if let Some(p) = Pid::from_raw(entry.1 as i32) {
            let _ = kill_process_group(p, Signal::KILL);
        }
        crate::poll(
            std::time::Duration::from_secs(5),
            std::time::Duration::from_millis(50),
            || (!alive(entry.1)).then_some(()),
        );
        let cmd = crate::pxe::dhcpd_command(&ns, tools, &state.pxe, &dir, &state.bridge);
        let mut d = crate::netns::Daemon::spawn("dhcpd", cmd, &dir.join("dhcpd.log"))?;
        d.wait_log(crate::pxe::DHCPD_READY, std::time::Duration::from_secs(20))?;
        entry.1 = d.detach();
        done.push(format!("restarted dhcpd (pid {})", entry.1));
    }
    if let Some((_, pid)) = state.processes.iter().find(|(n, _)| n == "collector")
        && let Some(p) = Pid::from_raw(*pid as i32)
    {
        kill_process(p, Signal::HUP).map_err(|e| err!("SIGHUP to the collector: {e}"))?;
        done.push(format!(
            "asked the collector (pid {pid}) to re-read its inventory"
        ));
    }
    write_state(out, &state)?;
    Ok(done)
}

fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

fn pid_in(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// How a part of the lab is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Running,
    /// A server, BMC or the namespace is gone: the lab is broken.
    Stopped,
    /// A machine is powered off (its BMC powers it on).
    Off,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Running => "running",
            Health::Stopped => "STOPPED",
            Health::Off => "off",
        }
    }
}

/// One part of the lab (`"dhcpd (pid 12)"`) and how it is doing.
pub type Row = (String, Health);

/// Each process and machine of the lab for `out`; `None` when no lab is up.
pub fn status(out: &Path) -> Result<Option<(State, Vec<Row>)>> {
    let Some(state) = read_state(out)? else {
        return Ok(None);
    };
    let up = |ok: bool| if ok { Health::Running } else { Health::Stopped };
    let mut rows: Vec<(String, Health)> = state
        .processes
        .iter()
        .map(|(name, pid)| (format!("{name} (pid {pid})"), up(alive(*pid))))
        .collect();
    for m in &state.machines {
        let row = match pid_in(&m.pidfile).filter(|p| alive(*p)) {
            Some(p) => (
                format!("machine {} (qemu pid {p})", m.name),
                Health::Running,
            ),
            None => (format!("machine {}", m.name), Health::Off),
        };
        rows.push(row);
    }
    rows.push((
        format!("namespace {}", state.netns),
        up(Netns::exists(&state.netns)),
    ));
    Ok(Some((state, rows)))
}

/// Stops every process of the lab for `out`, deletes its namespace (with the bridge and taps)
/// and `OUT_DIR/lab/`; what it stopped, one line each. Safe to run again.
pub fn down(ip: &Path, out: &Path) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let state = read_state(out).unwrap_or(None);
    let netns = state
        .as_ref()
        .map(|s| s.netns.clone())
        .unwrap_or_else(|| netns_name(out));
    if let Some(state) = &state {
        // BMCs first, so nothing powers a machine on again.
        for (name, pid) in &state.processes {
            if alive(*pid)
                && let Some(p) = Pid::from_raw(*pid as i32)
            {
                let _ = kill_process_group(p, Signal::KILL);
                done.push(format!("stopped {name} (pid {pid})"));
            }
        }
        for m in &state.machines {
            if let Some(pid) = pid_in(&m.pidfile).filter(|p| alive(*p))
                && let Some(p) = Pid::from_raw(pid as i32)
            {
                let _ = kill_process(p, Signal::KILL);
                done.push(format!("powered off {} (qemu pid {pid})", m.name));
            }
        }
    }
    if Netns::exists(&netns) {
        // Kills whatever else runs in it (it is the lab's alone), then deletes it.
        drop(Netns::open(ip, &netns));
        if Netns::exists(&netns) {
            return Err(err!(
                "namespace {netns} could not be deleted (ip netns del)"
            ));
        }
        done.push(format!(
            "deleted namespace {netns} (bridge, taps, addresses)"
        ));
    }
    let dir = lab_dir(out);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| err!("{}: {e}", dir.display()))?;
        done.push(format!("removed {}", dir.display()));
    }
    Ok(done)
}
