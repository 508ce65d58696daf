//! The machines' emulated BMCs: lab/bmc/fake_bmc.py (pyghmi's IPMI 2.0 BMC server, the base of
//! virtualbmc, so the real `ipmitool -I lanplus` and `plasmagen provision` drive it) inside the
//! lab's namespace. Its power-on and reset run the machine's start script
//! ([`crate::hook_vm`]), so the BMC is the only way the machine powers on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::hook_vm::quote;
use crate::netns::{Daemon, Netns};
use crate::{Result, err};

/// The emulator's source, shipped inside `plasmagen` for `lab up` (written to `OUT/lab/`).
pub const FAKE_BMC_PY: &str = include_str!("../bmc/fake_bmc.py");

/// One BMC: where it listens, who may log in, what its power-on runs.
#[derive(Debug, Clone)]
pub struct BmcSpec {
    /// Names its log files: `bmc-<machine>.log` (output) and `bmc-<machine>.jsonl` (calls).
    pub machine: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Given to the emulator in its environment, never on a command line.
    pub password: String,
    /// The machine's start script ([`crate::hook_vm::HookVm::script`]).
    pub on_boot: PathBuf,
    /// Runs past this process (`lab up`); otherwise it exits when this process's end of its
    /// stdin closes (the tests).
    pub detached: bool,
}

/// Checks that `python` can import pyghmi; the error says how to get it.
pub fn check_python(python: &Path) -> Result<()> {
    let out = Command::new(python)
        .args(["-c", "import pyghmi.ipmi.bmc"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err!("{}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(err!(
            "{} cannot import pyghmi (the BMC emulator's library): create a venv with \
             `python3 -m venv V && V/bin/pip install pyghmi` and pass --bmc-python V/bin/python",
            python.display()
        ));
    }
    Ok(())
}

/// The calls log of `machine`'s BMC in `diag`.
pub fn calls_log(diag: &Path, machine: &str) -> PathBuf {
    diag.join(format!("bmc-{machine}.jsonl"))
}

/// Starts `script` (fake_bmc.py) with `python` in `ns` and waits until it listens.
pub fn start(
    ns: &Netns,
    python: &Path,
    script: &Path,
    diag: &Path,
    spec: &BmcSpec,
) -> Result<Daemon> {
    let calls = calls_log(diag, &spec.machine);
    let _ = std::fs::remove_file(&calls);
    let mut cmd = ns.command(python);
    cmd.arg(script)
        .arg(&calls)
        .env("FAKE_BMC_USER", &spec.user)
        .env("FAKE_BMC_PASSWORD", &spec.password)
        .env("FAKE_BMC_ADDRESS", &spec.address)
        .env("FAKE_BMC_PORT", spec.port.to_string())
        .env(
            "FAKE_BMC_ON_BOOT",
            quote(&spec.on_boot.display().to_string()),
        );
    if spec.detached {
        cmd.env("FAKE_BMC_DETACHED", "1").stdin(Stdio::null());
    } else {
        cmd.stdin(Stdio::piped());
    }
    let name = format!("bmc-{}", spec.machine);
    let mut d = Daemon::spawn(&name, cmd, &diag.join(format!("{name}.log")))?;
    d.wait_log(&format!("listening {}", spec.port), Duration::from_secs(20))?;
    Ok(d)
}
