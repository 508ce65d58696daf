//! The machine's hardware from sysfs, procfs and /dev/disk/by-id, relative to a root
//! directory (tests build a fake tree; in production the root is `/`).

use std::fs;
use std::path::Path;

use plasma_wire::discover::{Cpu, DiscoverReport, Disk, Nic};

use super::{DiscoverError, normalize_mac};

/// Block devices that are never installation targets.
const SKIPPED_DISK_PREFIXES: [&str; 4] = ["loop", "ram", "zram", "dm-"];

/// Collects the whole report. `boot_mac` (from the kernel command line) becomes the primary
/// MAC when given; otherwise the first NIC by name is used.
pub fn collect(root: &Path, boot_mac: Option<&str>) -> Result<DiscoverReport, DiscoverError> {
    let nics = read_nics(root)?;
    let primary_mac = match boot_mac {
        Some(mac) => normalize_mac(mac),
        None => nics
            .first()
            .map(|n| n.mac.clone())
            .ok_or_else(|| DiscoverError::NoNics(root.join("sys/class/net")))?,
    };
    Ok(DiscoverReport {
        primary_mac,
        nics,
        disks: read_disks(root)?,
        memory_bytes: read_memory_bytes(root)?,
        cpu: read_cpu(root)?,
        hostname: read_hostname(root),
        firmware: Some(read_firmware(root).to_string()),
        bmc: super::bmc::read(root),
    })
}

/// Physical NICs from `/sys/class/net`, sorted by name. Interfaces without a `device` link
/// (loopback, bridges, bonds, veth, tun/tap) are virtual and skipped.
pub fn read_nics(root: &Path) -> Result<Vec<Nic>, DiscoverError> {
    let dir = root.join("sys/class/net");
    let mut nics = Vec::new();
    for name in dir_names(&dir)? {
        let iface = dir.join(&name);
        if name == "lo" || fs::symlink_metadata(iface.join("device")).is_err() {
            continue;
        }
        let mac = normalize_mac(&read(&iface.join("address"))?);
        if mac.is_empty() || mac == "00:00:00:00:00:00" {
            continue;
        }
        // The kernel answers EINVAL for speed/carrier while the link is down: unknown, not an error.
        let speed_mbps = read_optional(&iface.join("speed"))
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0);
        let carrier = read_optional(&iface.join("carrier")).and_then(|c| match c.as_str() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        });
        // The driver's directory name, e.g. `virtio_net`, `ixgbe`.
        let driver = fs::read_link(iface.join("device/driver"))
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()));
        nics.push(Nic {
            name,
            mac,
            speed_mbps,
            carrier,
            driver,
        });
    }
    Ok(nics)
}

/// Whole disks from `/sys/block`, sorted by kernel name, with their `/dev/disk/by-id` names.
/// Disks reporting size 0 (empty card readers, ejected media) are skipped.
pub fn read_disks(root: &Path) -> Result<Vec<Disk>, DiscoverError> {
    let dir = root.join("sys/block");
    let by_id = read_by_id(root)?;
    let mut disks = Vec::new();
    for name in dir_names(&dir)? {
        if SKIPPED_DISK_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let dev = dir.join(&name);
        let size_path = dev.join("size");
        let sectors: u64 = parse(&size_path, &read(&size_path)?)?;
        if sectors == 0 {
            continue;
        }
        let rotational =
            read_optional(&dev.join("queue/rotational")).and_then(|r| match r.as_str() {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            });
        let model = read_optional(&dev.join("device/model")).filter(|m| !m.is_empty());
        let removable = read_optional(&dev.join("removable")).and_then(|r| match r.as_str() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        });
        let ids = by_id
            .iter()
            .filter(|(_, target)| *target == name)
            .map(|(link, _)| format!("/dev/disk/by-id/{link}"))
            .collect();
        disks.push(Disk {
            // /sys/block's size is always in 512-byte sectors, whatever the logical block size.
            size_bytes: sectors.saturating_mul(512),
            name,
            by_id: ids,
            model,
            rotational,
            removable,
        });
    }
    Ok(disks)
}

/// `(link name, kernel name)` for every symlink in `/dev/disk/by-id`, sorted by link name.
/// A missing directory (no udev yet, or a machine without disks) yields no names.
fn read_by_id(root: &Path) -> Result<Vec<(String, String)>, DiscoverError> {
    let dir = root.join("dev/disk/by-id");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for link in dir_names(&dir)? {
        let path = dir.join(&link);
        let Ok(target) = fs::read_link(&path) else {
            continue;
        };
        // udev writes relative links (`../../sda`); only the final component names the device.
        if let Some(kernel) = target.file_name().and_then(|n| n.to_str()) {
            out.push((link, kernel.to_owned()));
        }
    }
    Ok(out)
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn read_memory_bytes(root: &Path) -> Result<u64, DiscoverError> {
    let path = root.join("proc/meminfo");
    let text = read(&path)?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .ok_or_else(|| parse_error(&path, "no MemTotal line"))?;
    let mut words = line.split_whitespace();
    let value: u64 = parse(&path, words.next().unwrap_or(""))?;
    let multiplier = match words.next() {
        Some("kB") | None => 1024,
        Some(unit) => return Err(parse_error(&path, &format!("unknown unit {unit:?}"))),
    };
    Ok(value.saturating_mul(multiplier))
}

/// The first `model name` and the number of `processor` entries in `/proc/cpuinfo`.
pub fn read_cpu(root: &Path) -> Result<Cpu, DiscoverError> {
    let path = root.join("proc/cpuinfo");
    let text = read(&path)?;
    let mut model = None;
    let mut logical_cpus = 0u32;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "processor" => logical_cpus += 1,
            "model name" if model.is_none() => model = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    if logical_cpus == 0 {
        return Err(parse_error(&path, "no processor entries"));
    }
    Ok(Cpu {
        // Some architectures (arm64) have no "model name"; the collector still wants a string.
        model: model.unwrap_or_else(|| "unknown".to_owned()),
        logical_cpus,
    })
}

/// `uefi` when the kernel was started by UEFI firmware (it then exposes `/sys/firmware/efi`),
/// else `bios`.
pub fn read_firmware(root: &Path) -> &'static str {
    if root.join("sys/firmware/efi").is_dir() {
        "uefi"
    } else {
        "bios"
    }
}

/// The running kernel's hostname, if any.
pub fn read_hostname(root: &Path) -> Option<String> {
    read_optional(&root.join("proc/sys/kernel/hostname")).filter(|h| !h.is_empty())
}

pub(super) fn dir_names(dir: &Path) -> Result<Vec<String>, DiscoverError> {
    let entries = fs::read_dir(dir).map_err(|source| DiscoverError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DiscoverError::Read {
            path: dir.to_owned(),
            source,
        })?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

pub(super) fn read(path: &Path) -> Result<String, DiscoverError> {
    fs::read_to_string(path).map_err(|source| DiscoverError::Read {
        path: path.to_owned(),
        source,
    })
}

pub(super) fn read_optional(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

pub(super) fn parse<T: std::str::FromStr>(path: &Path, text: &str) -> Result<T, DiscoverError>
where
    T::Err: std::fmt::Display,
{
    text.trim()
        .parse()
        .map_err(|e: T::Err| parse_error(path, &format!("{text:?}: {e}")))
}

pub(super) fn parse_error(path: &Path, reason: &str) -> DiscoverError {
    DiscoverError::Parse {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}
