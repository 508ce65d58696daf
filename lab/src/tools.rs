//! The system programs and firmware the lab drives, each with the Debian package providing it,
//! so a missing one fails with an actionable message.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::err;

/// Paths of everything the lab runs or serves.
#[derive(Debug, Clone)]
pub struct Tools {
    pub ip: PathBuf,
    pub qemu: PathBuf,
    pub dhcpd: PathBuf,
    pub dnsmasq: PathBuf,
    pub busybox: PathBuf,
    pub gzip: PathBuf,
    pub ldd: PathBuf,
    /// Legacy BIOS iPXE, served over TFTP.
    pub undionly: PathBuf,
    /// UEFI iPXE, served over TFTP.
    pub ipxe_efi: PathBuf,
    pub ovmf_code: PathBuf,
    pub ovmf_vars: PathBuf,
    /// A packaged kernel and its modules directory.
    pub kernel: PathBuf,
    pub modules: PathBuf,
    /// GPT and FAT tools for the UEFI installed-system disk (efi_disk.rs).
    pub sgdisk: PathBuf,
    pub mformat: PathBuf,
    pub mmd: PathBuf,
    pub mcopy: PathBuf,
}

/// The Debian packages the lab needs (for docs and messages).
pub const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "ipxe",
    "ipxe-qemu",
    "ovmf",
    "isc-dhcp-server",
    "dnsmasq-base",
    "busybox-static",
    "linux-image-amd64",
    "iproute2",
    "gdisk",
    "mtools",
];

/// `name` on `PATH`, or in the system directories a non-root `PATH` may lack.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn file(path: &str) -> Option<PathBuf> {
    Path::new(path).is_file().then(|| PathBuf::from(path))
}

/// The newest `/boot/vmlinuz-<v>` that has `/lib/modules/<v>/modules.dep`.
fn kernel() -> Option<(PathBuf, PathBuf)> {
    let mut found: Vec<(String, PathBuf, PathBuf)> = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix("vmlinuz-")?.to_string();
            let modules = PathBuf::from("/lib/modules").join(&version);
            modules
                .join("modules.dep")
                .is_file()
                .then(|| (version, e.path(), modules))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, k, m)| (k, m))
}

impl Tools {
    /// Finds every tool; the error lists each missing one with its package.
    pub fn find() -> Result<Tools> {
        let mut missing: Vec<String> = Vec::new();
        let mut need = |what: &str, package: &str, found: Option<PathBuf>| -> PathBuf {
            found.unwrap_or_else(|| {
                missing.push(format!("{what} (Debian package {package})"));
                PathBuf::new()
            })
        };
        let ip = need("ip", "iproute2", which("ip"));
        let qemu = need(
            "qemu-system-x86_64",
            "qemu-system-x86",
            which("qemu-system-x86_64"),
        );
        let dhcpd = need("dhcpd", "isc-dhcp-server", which("dhcpd"));
        let dnsmasq = need("dnsmasq (TFTP server)", "dnsmasq-base", which("dnsmasq"));
        let busybox = need(
            "/bin/busybox, statically linked",
            "busybox-static",
            file("/bin/busybox").or_else(|| file("/usr/bin/busybox")),
        );
        let gzip = need("gzip", "gzip", which("gzip"));
        let ldd = need("ldd", "libc-bin", which("ldd"));
        let undionly = need(
            "/usr/lib/ipxe/undionly.kpxe",
            "ipxe",
            file("/usr/lib/ipxe/undionly.kpxe"),
        );
        let ipxe_efi = need(
            "/usr/lib/ipxe/ipxe.efi",
            "ipxe",
            file("/usr/lib/ipxe/ipxe.efi"),
        );
        let ovmf_code = need(
            "/usr/share/OVMF/OVMF_CODE.fd",
            "ovmf",
            file("/usr/share/OVMF/OVMF_CODE.fd"),
        );
        let ovmf_vars = need(
            "/usr/share/OVMF/OVMF_VARS.fd",
            "ovmf",
            file("/usr/share/OVMF/OVMF_VARS.fd"),
        );
        let sgdisk = need("sgdisk", "gdisk", which("sgdisk"));
        let mformat = need("mformat", "mtools", which("mformat"));
        let mmd = need("mmd", "mtools", which("mmd"));
        let mcopy = need("mcopy", "mtools", which("mcopy"));
        // QEMU's NIC option ROMs (the iPXE the BIOS machine's NIC boots).
        need(
            "/usr/lib/ipxe/qemu/efi-virtio.rom",
            "ipxe-qemu",
            file("/usr/lib/ipxe/qemu/efi-virtio.rom"),
        );
        let (kernel, modules) = match kernel() {
            Some((k, m)) => (k, m),
            None => {
                missing.push(
                    "/boot/vmlinuz-* with /lib/modules/<version> (Debian package linux-image-amd64)"
                        .into(),
                );
                (PathBuf::new(), PathBuf::new())
            }
        };
        if !missing.is_empty() {
            return Err(err!(
                "the lab needs programs that are not installed:\n  {}\n\
                 install them with: apt-get install -y {}",
                missing.join("\n  "),
                PACKAGES.join(" ")
            ));
        }
        if let Ok(meta) = std::fs::metadata(&busybox)
            && meta.len() < 500_000
        {
            return Err(err!(
                "{} is not the static busybox (Debian package busybox-static)",
                busybox.display()
            ));
        }
        Ok(Tools {
            ip,
            qemu,
            dhcpd,
            dnsmasq,
            busybox,
            gzip,
            ldd,
            undionly,
            ipxe_efi,
            ovmf_code,
            ovmf_vars,
            kernel,
            modules,
            sgdisk,
            mformat,
            mmd,
            mcopy,
        })
    }
}

/// Root (network namespaces, bridges, taps) and /dev/net/tun are required: the test fails,
/// rather than skips, without them, because CI runs it as root.
pub fn require_privileges() -> Result<()> {
    let euid = rustix::process::geteuid();
    if !euid.is_root() {
        return Err(err!(
            "the lab must run as root (it creates network namespaces, a bridge and \
             tap devices); effective uid is {}. Run the test suite as root (CI does).",
            euid.as_raw()
        ));
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err("the lab needs /dev/net/tun for QEMU's tap device \
                    (load the tun module or give the container the device)"
            .into());
    }
    Ok(())
}
