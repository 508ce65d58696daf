//! The netboot initrd the lab's machines boot: static busybox, `plasma-agent` with the shared
//! libraries `ldd` lists, the kernel modules for virtio NIC, disk and RNG, the collector's CA,
//! and an /init that brings the NIC up with DHCP, runs `plasma-agent discover` and powers off.
//! It stands in for NixOS's netboot image, which cannot be built here (no nixpkgs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Result;
use super::cpio::Archive;
use super::tools::Tools;

/// Modules the machine needs (dependencies are added from modules.dep).
const MODULES: &[&str] = &["virtio_pci", "virtio_net", "virtio_blk", "virtio_rng"];

/// Printed by /init on the serial console; the test waits for these.
pub const MARK_DISCOVER_EXIT: &str = "E2E-INIT: discover exit=";
pub const MARK_LEASE: &str = "E2E-INIT: lease ";

/// What udev's persistent-storage rule would create for a virtio disk with a serial, done by
/// hand because the image has no udev: `/dev/disk/by-id/virtio-<serial>`.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko || echo "E2E-INIT: insmod $m failed"; done
mkdir -p /dev/disk/by-id
for b in /sys/block/vd*; do
  s=$(cat $b/serial 2>/dev/null)
  [ -n "$s" ] && ln -s ../../${b##*/} /dev/disk/by-id/virtio-$s
done
ip link set lo up
nic=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
ip link set "$nic" up
udhcpc -i "$nic" -n -q -t 20 -T 1 -s /bin/udhcpc.script
plasma-agent discover --collector-from-cmdline --ca /etc/plasmacloud/ca.pem --timeout 120
echo "E2E-INIT: discover exit=$?"
poweroff -f
"#;

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
bound|renew)
  ifconfig "$interface" "$ip" netmask "$subnet" up
  echo "E2E-INIT: lease $ip on $interface"
  ;;
esac
"#;

/// Shared libraries of `bin` as `ldd` lists them (absolute paths).
fn shared_libs(ldd: &Path, bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new(ldd)
        .arg(bin)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("ldd {}: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// `MODULES` and their dependencies from modules.dep, dependencies first, as
/// (name, path relative to the modules directory).
fn module_order(modules_dir: &Path) -> Result<Vec<(String, String)>> {
    let dep_path = modules_dir.join("modules.dep");
    let text =
        std::fs::read_to_string(&dep_path).map_err(|e| format!("{}: {e}", dep_path.display()))?;
    let name_of = |rel: &str| -> String {
        let file = rel.rsplit('/').next().unwrap_or(rel);
        file.split(".ko").next().unwrap_or(file).replace('-', "_")
    };
    let deps: std::collections::HashMap<String, (String, Vec<String>)> = text
        .lines()
        .filter_map(|l| {
            let (m, d) = l.split_once(':')?;
            Some((
                name_of(m),
                (
                    m.to_string(),
                    d.split_whitespace().map(str::to_string).collect(),
                ),
            ))
        })
        .collect();
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        name: &str,
        deps: &std::collections::HashMap<String, (String, Vec<String>)>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<(String, String)>,
        name_of: &dyn Fn(&str) -> String,
    ) -> Result<()> {
        if !seen.insert(name.to_string()) {
            return Ok(());
        }
        let (path, ds) = deps
            .get(name)
            .ok_or_else(|| format!("kernel module {name} is not in modules.dep"))?;
        for d in ds {
            visit(&name_of(d), deps, seen, order, name_of)?;
        }
        order.push((name.to_string(), path.clone()));
        Ok(())
    }
    for m in MODULES {
        visit(m, &deps, &mut seen, &mut order, &name_of)?;
    }
    Ok(order)
}

/// A module's bytes, decompressed when the distribution ships `.ko.xz` / `.ko.zst`
/// (busybox insmod loads plain ELF only).
fn module_bytes(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some("xz")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else {
        None
    };
    match tool {
        None => std::fs::read(path).map_err(|e| format!("{name}: {e}")),
        Some(t) => {
            let out = Command::new(t)
                .args(["-dc"])
                .arg(path)
                .output()
                .map_err(|e| format!("{t} -dc {name}: {e} (install {t})"))?;
            if !out.status.success() {
                return Err(format!("{t} -dc {name} failed"));
            }
            Ok(out.stdout)
        }
    }
}

/// Builds a gzip-compressed initrd at `out` for `agent`, trusting `ca_pem`.
pub fn build(tools: &Tools, agent: &Path, ca_pem: &[u8], out: &Path) -> Result<()> {
    let mut a = Archive::new();
    let mut dirs = BTreeSet::new();
    let mut mkdirs = |a: &mut Archive, path: &str| {
        let mut cur = String::new();
        for part in path
            .trim_start_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
        {
            cur.push('/');
            cur.push_str(part);
            if dirs.insert(cur.clone()) {
                a.dir(&cur);
            }
        }
    };
    for d in [
        "/bin",
        "/proc",
        "/sys",
        "/dev",
        "/tmp",
        "/etc/plasmacloud",
        "/lib/modules",
    ] {
        mkdirs(&mut a, d);
    }
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    a.file("/bin/busybox", 0o755, &read(&tools.busybox)?);
    a.file("/bin/plasma-agent", 0o755, &read(agent)?);
    a.file("/bin/udhcpc.script", 0o755, UDHCPC_SCRIPT.as_bytes());
    a.file("/init", 0o755, INIT.as_bytes());
    a.file("/etc/plasmacloud/ca.pem", 0o644, ca_pem);
    for lib in shared_libs(&tools.ldd, agent)? {
        let parent = lib
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        mkdirs(&mut a, &parent);
        // ldd names the path the loader uses; store the file itself there, not a symlink.
        a.file(&lib.to_string_lossy(), 0o755, &read(&lib)?);
    }
    let order = module_order(&tools.modules)?;
    for (name, rel) in &order {
        a.file(
            &format!("/lib/modules/{name}.ko"),
            0o644,
            &module_bytes(&tools.modules.join(rel))?,
        );
    }
    let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
    a.file(
        "/lib/modules/order",
        0o644,
        format!("{}\n", names.join(" ")).as_bytes(),
    );

    let mut raw = Vec::new();
    a.finish(&mut raw).map_err(|e| e.to_string())?;
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut gz = Command::new(&tools.gzip)
        .args(["-1", "-c"])
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .map_err(|e| format!("gzip: {e}"))?;
    {
        use std::io::Write;
        let mut stdin = gz.stdin.take().expect("piped stdin");
        stdin.write_all(&raw).map_err(|e| format!("gzip: {e}"))?;
    }
    let status = gz.wait().map_err(|e| format!("gzip: {e}"))?;
    if !status.success() {
        return Err(format!("gzip failed ({status})"));
    }
    Ok(())
}
