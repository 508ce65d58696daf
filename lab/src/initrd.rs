//! The netboot initrd the lab's machines boot: static busybox, `plasma-agent` with the shared
//! libraries `ldd` lists, the kernel modules for virtio NIC, disk and RNG, the collector's CA,
//! and an /init that brings the NIC up with DHCP, runs `plasma-agent discover` and powers off.
//! It stands in for NixOS's netboot image, which cannot be built here (no nixpkgs).
//!
//! The installer variant ([`build_installer`]) stays up after discovery and answers SSH as
//! the NixOS installer does: OpenSSH's sshd with the test's key for root, an os-release with
//! `VARIANT_ID=installer`, and the commands the nixos-anywhere stand-in
//! (generator/tests/provision_lab/nixos-anywhere) runs: `nixos-facter` and
//! `plasma-lab-install`, which writes [`local_disk_mbr`] to the disk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Result;
use crate::cpio::Archive;
use crate::err;
use crate::tools::{Tools, which};
use crate::vm::local_disk_mbr;

/// Modules the machine needs (dependencies are added from modules.dep).
const MODULES: &[&str] = &["virtio_pci", "virtio_net", "virtio_blk", "virtio_rng"];

/// Which initrd a lab's machines netboot.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Reports and powers off ([`build`]).
    Discover,
    /// Reports, then answers SSH as the NixOS installer, root with this public key
    /// ([`build_installer`]).
    Installer { authorized_key: String },
}

/// Printed by /init on the serial console; the test waits for these.
pub const MARK_DISCOVER_EXIT: &str = "E2E-INIT: discover exit=";
pub const MARK_LEASE: &str = "E2E-INIT: lease ";

/// The start of every /init: modules, DHCP, discovery; the discovery initrd then powers off,
/// the installer's starts sshd ([`INSTALLER`]). It creates what udev's persistent-storage rule
/// would for a virtio disk with a serial, by hand because the image has no udev:
/// `/dev/disk/by-id/virtio-<serial>`.
const BOOT: &str = r#"#!/bin/busybox sh
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
"#;

/// Printed by the installer's /init once sshd runs.
pub const MARK_SSHD: &str = "E2E-INIT: sshd started";
/// Printed on the console by the installer's `plasma-lab-install`.
pub const MARK_INSTALLED: &str = "E2E-INSTALLER: local-disk boot sector written";
/// Printed by the installer's /init when `reboot` signals it ([`INSTALLER`]).
pub const MARK_REBOOT: &str = "E2E-INSTALLER: rebooting";

/// The installer's /init after [`BOOT`]: a new host key (as NixOS's netboot image makes on
/// every boot), sshd in the foreground of a background job (its log on the console), then
/// PID 1 waits forever.
///
/// `reboot` (what `plasmagen provision` sends, through `sh -c`) is always busybox's applet:
/// Debian's busybox sh prefers its applets to files on PATH, so a /bin/reboot script would
/// never run. Without `-f` the applet signals init (SIGTERM to PID 1) instead of rebooting,
/// and a shell as PID 1 ignores signals it does not trap: this one traps SIGTERM and reboots
/// at once (`-f`: the reboot(2) system call) after a sync. `wait` returns for a trapped
/// signal, `sleep` would delay the trap.
const INSTALLER: &str = r#"export PATH=/bin:/usr/bin:/usr/sbin
trap 'echo "E2E-INSTALLER: rebooting"; sync; reboot -f' TERM
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
ssh-keygen -q -t ed25519 -N '' -C installer -f /etc/ssh/ssh_host_ed25519_key
/usr/sbin/sshd -D -e -f /etc/ssh/sshd_config &
sleep 1
if kill -0 $! 2>/dev/null; then echo "E2E-INIT: sshd started"; else echo "E2E-INIT: sshd failed"; fi
while true; do sleep 3600 & wait $!; done
"#;

const SSHD_CONFIG: &str = "\
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
PrintMotd no
PrintLastLog no
";

const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
sshd:x:100:65534:sshd privilege separation:/run/sshd:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
";

const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

const OS_RELEASE: &str = "\
NAME=NixOS
ID=nixos
VARIANT_ID=installer
PRETTY_NAME=\"NixOS (PlasmaCloud e2e installer initrd)\"
";

const NIXOS_FACTER: &str = r#"#!/bin/sh
echo '{"version": 1, "system": "x86_64-linux", "virtualisation": "qemu"}'
"#;

/// The stand-in installation: the boot sector standing in for the installed system.
const LAB_INSTALL: &str = r#"#!/bin/sh
set -e
dd if=/usr/share/e2e/local-disk.mbr of=/dev/vda bs=512 count=1 conv=notrunc 2>/dev/null
sync
echo "E2E-INSTALLER: local-disk boot sector written to /dev/vda" | tee /dev/console
"#;

/// coreutils' `nohup` (the reboot command runs under it), which Debian's busybox lacks.
const NOHUP: &str = r#"#!/bin/sh
trap '' HUP
exec "$@"
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
        None => std::fs::read(path).map_err(|e| err!("{name}: {e}")),
        Some(t) => {
            let out = Command::new(t)
                .args(["-dc"])
                .arg(path)
                .output()
                .map_err(|e| format!("{t} -dc {name}: {e} (install {t})"))?;
            if !out.status.success() {
                return Err(err!("{t} -dc {name} failed"));
            }
            Ok(out.stdout)
        }
    }
}

/// An initrd under construction: parents are added before their children, once.
struct Tree {
    archive: Archive,
    dirs: BTreeSet<String>,
    files: BTreeSet<String>,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            archive: Archive::new(),
            dirs: BTreeSet::new(),
            files: BTreeSet::new(),
        }
    }

    fn dir(&mut self, path: &str) {
        let mut cur = String::new();
        for part in path
            .trim_start_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
        {
            cur.push('/');
            cur.push_str(part);
            if self.dirs.insert(cur.clone()) {
                self.archive.dir(&cur);
            }
        }
    }

    /// Adds `path` (and its parent directories) unless it is already in the archive.
    fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        if !self.files.insert(path.to_string()) {
            return;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.archive.file(path, mode, data);
    }

    /// `bin` at `path`, with the shared libraries `ldd` lists for it.
    fn binary(&mut self, tools: &Tools, bin: &Path, path: &str) -> Result<()> {
        self.file(path, 0o755, &read(bin)?);
        for lib in shared_libs(&tools.ldd, bin)? {
            // ldd names the path the loader uses; store the file itself there, not a symlink.
            self.file(&lib.to_string_lossy(), 0o755, &read(&lib)?);
        }
        Ok(())
    }
}

fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| err!("{}: {e}", p.display()))
}

/// Builds a gzip-compressed initrd at `out` for `agent`, trusting `ca_pem`.
pub fn build(tools: &Tools, agent: &Path, ca_pem: &[u8], out: &Path) -> Result<()> {
    let t = base(tools, agent, ca_pem, &format!("{BOOT}poweroff -f\n"))?;
    write_gzip(tools, t, out)
}

/// The installer variant: [`build`]'s initrd whose /init then starts OpenSSH's sshd and stays
/// up; root logs in with `authorized_key`.
pub fn build_installer(
    tools: &Tools,
    agent: &Path,
    ca_pem: &[u8],
    authorized_key: &str,
    out: &Path,
) -> Result<()> {
    let mut t = base(tools, agent, ca_pem, &format!("{BOOT}{INSTALLER}"))?;
    let need = |name: &str| {
        which(name).ok_or_else(|| {
            format!("{name} is missing (Debian packages openssh-server, openssh-client)")
        })
    };
    t.binary(tools, &need("sshd")?, "/usr/sbin/sshd")?;
    t.binary(tools, &need("ssh-keygen")?, "/usr/bin/ssh-keygen")?;
    for d in ["/run/sshd", "/var/empty", "/root/.ssh", "/etc/ssh"] {
        t.dir(d);
    }
    t.file("/etc/ssh/sshd_config", 0o644, SSHD_CONFIG.as_bytes());
    t.file("/etc/passwd", 0o644, PASSWD.as_bytes());
    t.file("/etc/group", 0o644, GROUP.as_bytes());
    t.file(
        "/etc/nsswitch.conf",
        0o644,
        b"passwd: files\ngroup: files\nshadow: files\nhosts: files\n",
    );
    t.file("/etc/os-release", 0o644, OS_RELEASE.as_bytes());
    t.file(
        "/root/.ssh/authorized_keys",
        0o600,
        format!("{}\n", authorized_key.trim()).as_bytes(),
    );
    t.file("/usr/share/e2e/local-disk.mbr", 0o644, &local_disk_mbr());
    t.file("/bin/nixos-facter", 0o755, NIXOS_FACTER.as_bytes());
    t.file("/bin/plasma-lab-install", 0o755, LAB_INSTALL.as_bytes());
    t.file("/bin/nohup", 0o755, NOHUP.as_bytes());
    write_gzip(tools, t, out)
}

/// busybox, `plasma-agent`, the modules, the CA and `init` as /init.
fn base(tools: &Tools, agent: &Path, ca_pem: &[u8], init: &str) -> Result<Tree> {
    let mut t = Tree::new();
    for d in [
        "/bin",
        "/proc",
        "/sys",
        "/dev",
        "/tmp",
        "/etc/plasmacloud",
        "/lib/modules",
    ] {
        t.dir(d);
    }
    t.file("/bin/busybox", 0o755, &read(&tools.busybox)?);
    t.binary(tools, agent, "/bin/plasma-agent")?;
    t.file("/bin/udhcpc.script", 0o755, UDHCPC_SCRIPT.as_bytes());
    t.file("/init", 0o755, init.as_bytes());
    t.file("/etc/plasmacloud/ca.pem", 0o644, ca_pem);
    let order = module_order(&tools.modules)?;
    for (name, rel) in &order {
        t.file(
            &format!("/lib/modules/{name}.ko"),
            0o644,
            &module_bytes(&tools.modules.join(rel))?,
        );
    }
    let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
    t.file(
        "/lib/modules/order",
        0o644,
        format!("{}\n", names.join(" ")).as_bytes(),
    );
    Ok(t)
}

fn write_gzip(tools: &Tools, t: Tree, out: &Path) -> Result<()> {
    let mut raw = Vec::new();
    t.archive.finish(&mut raw).map_err(|e| e.to_string())?;
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
        return Err(err!("gzip failed ({status})"));
    }
    Ok(())
}
