//! A QEMU machine that its BMC powers on: [`HookVm::create`] makes its disk once and writes
//! `vm-<name>.sh`, the command the emulated BMC runs on power-on or reset
//! (`FAKE_BMC_ON_BOOT` of lab/bmc/fake_bmc.py). The script starts QEMU in
//! a session of its own (it outlives the hook and the BMC's process group; QEMU writes its pid
//! to `vm-<name>.pid`), after killing the machine's previous QEMU, so a second power-on is a
//! cold boot of the same disk.

use std::path::{Path, PathBuf};

use rustix::process::{Pid, Signal, kill_process};

use crate::pxe::Lab;
use crate::vm::{Vm, VmSpec};
use crate::{Result, tail};

/// POSIX shell single quotes, always.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub struct HookVm {
    pub name: String,
    pub serial: PathBuf,
    pub script: PathBuf,
    pub pidfile: PathBuf,
    pub qemu_log: PathBuf,
    /// One line per run of the script: `<unix time> boot <BOOT_DEVICE>`.
    pub boots_log: PathBuf,
}

impl HookVm {
    /// The disk image and UEFI variables of `spec` (in the lab's directory) and the start
    /// script; nothing runs yet. Console, QEMU output and boots are logged in the lab's
    /// diagnostics directory.
    pub fn create(lab: &Lab, spec: &VmSpec) -> Result<HookVm> {
        Vm::prepare(&lab.tools, spec, lab.dir())?;
        let name = spec.name.clone();
        let vm = HookVm {
            serial: Vm::serial_path(spec, &lab.diag),
            script: lab.dir().join(format!("vm-{name}.sh")),
            pidfile: lab.dir().join(format!("vm-{name}.pid")),
            qemu_log: lab.diag.join(format!("{name}.qemu.log")),
            boots_log: lab.diag.join(format!("{name}.boots.log")),
            name,
        };
        for old in [&vm.serial, &vm.qemu_log, &vm.boots_log] {
            let _ = std::fs::remove_file(old);
        }
        let cmd = Vm::command(&lab.ns, &lab.tools, spec, lab.dir(), &lab.diag);
        let mut argv = vec![cmd.get_program().to_string_lossy().into_owned()];
        argv.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
        argv.push("-pidfile".into());
        argv.push(vm.pidfile.display().to_string());
        let argv: Vec<String> = argv.iter().map(|a| quote(a)).collect();
        let path = |p: &Path| quote(&p.display().to_string());
        let text = format!(
            "#!/bin/sh\n\
             # Powers on {name}: its emulated BMC runs this on power-on or reset, with\n\
             # BOOT_DEVICE set. The NIC is the machine's first boot device either way.\n\
             pidfile={pidfile}\n\
             echo \"$(date +%s.%N) boot ${{BOOT_DEVICE:-default}}\" >> {boots}\n\
             if [ -s \"$pidfile\" ]; then\n\
             \x20 old=$(cat \"$pidfile\")\n\
             \x20 kill -9 \"$old\" 2>/dev/null\n\
             \x20 while kill -0 \"$old\" 2>/dev/null; do sleep 0.1; done\n\
             \x20 rm -f \"$pidfile\"\n\
             fi\n\
             setsid -f nohup {argv} </dev/null >>{log} 2>&1\n",
            name = vm.name,
            pidfile = path(&vm.pidfile),
            boots = path(&vm.boots_log),
            argv = argv.join(" "),
            log = path(&vm.qemu_log),
        );
        std::fs::write(&vm.script, text).map_err(|e| format!("{}: {e}", vm.script.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&vm.script, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", vm.script.display()))?;
        Ok(vm)
    }

    pub fn serial_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default()).into_owned()
    }

    /// The script's runs: `boot <BOOT_DEVICE>` each.
    pub fn boots(&self) -> Vec<String> {
        std::fs::read_to_string(&self.boots_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(_, b)| b.to_string()))
            .collect()
    }

    fn pid(&self) -> Option<Pid> {
        let text = std::fs::read_to_string(&self.pidfile).ok()?;
        Pid::from_raw(text.trim().parse().ok()?)
    }

    /// Whether its QEMU runs.
    pub fn running(&self) -> bool {
        self.pid().is_some_and(|p| {
            Path::new("/proc")
                .join(p.as_raw_nonzero().to_string())
                .exists()
        })
    }

    /// Leaves the machine running past this process (`plasmagen lab up`).
    pub fn detach(self) {
        // Not dropped: the drop would kill its QEMU; `lab down` kills it by its pid file.
        std::mem::forget(self);
    }

    /// Powers the machine on without a BMC (what a person pressing its power button does):
    /// runs its start script.
    pub fn power_on(&self) -> Result<()> {
        let out = std::process::Command::new("sh")
            .arg(&self.script)
            .env("BOOT_DEVICE", "default")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| crate::err!("{}: {e}", self.script.display()))?;
        if !out.status.success() {
            return Err(crate::err!(
                "{} failed: {}",
                self.script.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    pub fn diagnose(&self) -> String {
        format!("{}\n{}", tail(&self.serial, 40), tail(&self.qemu_log, 10))
    }
}

impl Drop for HookVm {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = kill_process(pid, Signal::KILL);
        }
    }
}
