//! The PXE end-to-end lab (tests/tests/e2e_pxe.rs, docs/e2e.md): a network namespace with a
//! bridge and tap devices, the real DHCP, TFTP and HTTP servers and the collector inside it,
//! and QEMU machines that netboot through the generated configuration.
//!
//! Everything the lab starts runs in its own namespace, so no packet leaves it; everything it
//! creates is removed by `Drop` guards, also when a test panics. Serial consoles and server
//! logs are kept under `target/e2e/` to diagnose failures.

pub mod dhcp;
pub mod lab;
pub mod provision_lab;

// The lab itself is plasma-lab (lab/), shared with `plasmagen lab up`.
pub use plasma_lab::{
    LabError, Result, cpio, efi_disk, err, hook_vm, initrd, netns, poll, tail, tools, vm,
};

use std::path::{Path, PathBuf};

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
