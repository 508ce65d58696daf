//! The rehearsal lab (docs/lab.md, docs/e2e.md): a network namespace with a bridge and tap
//! devices, the real DHCP, TFTP and HTTP servers and the collector inside it, and QEMU machines
//! that netboot through the generated configuration, each optionally behind an emulated BMC.
//!
//! Everything the lab starts runs in its own namespace, so no packet leaves it. Two owners use
//! the same code: the VM tests, whose `Drop` guards remove everything also when a test panics,
//! and `plasmagen lab up | down | status` ([`rehearsal`]), which detaches the processes and
//! records them in `OUT/lab/state.json` so `lab down` removes exactly what `lab up` made.

pub mod bmc;
pub mod cpio;
pub mod efi_disk;
pub mod hook_vm;
pub mod initrd;
pub mod netns;
pub mod pxe;
pub mod rehearsal;
pub mod tools;
pub mod vm;

use std::path::Path;
use std::time::{Duration, Instant};

/// What failed, with enough context (log tails, package names) to act on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LabError(pub String);

impl From<String> for LabError {
    fn from(s: String) -> LabError {
        LabError(s)
    }
}

impl From<LabError> for String {
    fn from(e: LabError) -> String {
        e.0
    }
}

impl From<&str> for LabError {
    fn from(s: &str) -> LabError {
        LabError(s.to_string())
    }
}

/// `Err(err!("…", args))`: a [`LabError`] from a format string.
#[macro_export]
macro_rules! err {
    ($($t:tt)*) => { $crate::LabError(format!($($t)*)) };
}

pub type Result<T> = std::result::Result<T, LabError>;

/// The last `lines` lines of a log file, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned());
    match text {
        Ok(t) => {
            let all: Vec<&str> = t.lines().collect();
            let start = all.len().saturating_sub(lines);
            format!(
                "--- last lines of {} ---\n{}",
                path.display(),
                all[start..].join("\n")
            )
        }
        Err(e) => format!("--- {}: {e} ---", path.display()),
    }
}

/// Polls `f` every `every` until it returns `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Copies a file; the error names both paths.
pub(crate) fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| err!("copy {} -> {}: {e}", from.display(), to.display()))
}

/// Copies a directory tree.
pub(crate) fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| err!("{}: {e}", to.display()))?;
    for e in std::fs::read_dir(from).map_err(|e| err!("{}: {e}", from.display()))? {
        let e = e.map_err(|e| err!("{e}"))?;
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            copy(&e.path(), &target)?;
        }
    }
    Ok(())
}

/// `mkdir -p`.
pub(crate) fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| err!("{}: {e}", p.display()))
}
