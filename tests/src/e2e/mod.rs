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
pub mod initrd;
pub mod lab;
pub mod netns;
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
