//! The PXE end-to-end lab (tests/tests/e2e_pxe.rs, docs/e2e.md): a network namespace with a
//! bridge and tap devices, the real DHCP, TFTP and HTTP servers and the collector inside it,
//! and QEMU machines that netboot through the generated configuration.
//!
//! Everything the lab starts runs in its own namespace, so no packet leaves it; everything it
//! creates is removed by `Drop` guards, also when a test panics. Serial consoles and server
//! logs are kept under `target/e2e/` to diagnose failures.

pub mod cpio;
pub mod dhcp;
pub mod efi_disk;
pub mod hook_vm;
pub mod initrd;
pub mod lab;
pub mod netns;
pub mod provision_lab;
pub mod tools;
pub mod vm;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors of the lab: what failed, with enough context (log tails, package names) to act on.
pub type Result<T> = std::result::Result<T, String>;

/// `target/` of the running test binary (`target/<profile>/deps/<test>`).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Where serial consoles and server logs of the lab are kept (`target/e2e/`).
pub fn diag_dir() -> PathBuf {
    target_dir().join("e2e")
}

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
        .map_err(|e| format!("copy {} -> {}: {e}", from.display(), to.display()))
}

/// Copies a directory tree.
pub(crate) fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for e in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let e = e.map_err(|e| e.to_string())?;
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
    std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))
}
