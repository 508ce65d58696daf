//! QEMU machines on the lab's bridge: TCG (the iPXE ROM hung under nested KVM on these
//! machines), one virtio NIC on a tap device, one virtio disk with a known serial, the serial
//! console in a file under target/e2e/.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::err;
use crate::netns::{Daemon, Netns};
use crate::tools::Tools;
use crate::{Result, poll, tail};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS; the NIC's iPXE option ROM is the PXE client.
    Bios,
    /// OVMF with its own PXE client (the NIC has no option ROM): DHCP → TFTP ipxe.efi → iPXE.
    Uefi,
}

impl Firmware {
    pub fn as_str(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

#[derive(Debug, Clone)]
pub struct VmSpec {
    /// Names the serial log: `target/e2e/<name>.serial.log`.
    pub name: String,
    pub firmware: Firmware,
    pub mac: String,
    pub tap: String,
    pub disk_serial: String,
    pub disk_bytes: u64,
    pub disk: Disk,
    /// A reboot inside the guest resets the machine (no `-no-reboot`); otherwise QEMU exits,
    /// so a test sees the end of one boot.
    pub reboot: bool,
}

/// What the machine's disk holds.
#[derive(Debug, Clone)]
pub enum Disk {
    /// Zeroes: nothing bootable.
    Blank,
    /// [`local_disk_mbr`] as its first sector: a BIOS boot sector printing
    /// [`LOCAL_DISK_BOOTED`].
    Mbr,
    /// GPT with an EFI System Partition holding `\EFI\BOOT\BOOTX64.EFI`
    /// ([`crate::efi_disk`]), which prints [`crate::efi_disk::LOCAL_DISK_BOOTED_UEFI`].
    Esp,
}

/// Printed on COM1 by [`local_disk_mbr`]'s boot code.
pub const LOCAL_DISK_BOOTED: &str = "E2E-LOCAL-DISK-BOOTED";

/// A master boot record standing in for an installed system: its boot code writes
/// [`LOCAL_DISK_BOOTED`] to the first serial port and halts.
pub fn local_disk_mbr() -> [u8; 512] {
    #[rustfmt::skip]
    let code: [u8; 22] = [
        0x31, 0xc0,             // xor ax, ax
        0x8e, 0xd8,             // mov ds, ax
        0xbe, 0x16, 0x7c,       // mov si, 0x7c16 (the message, right after this code)
        0xba, 0xf8, 0x03,       // mov dx, 0x3f8 (COM1)
        0xac,                   // .next: lodsb
        0x84, 0xc0,             // test al, al
        0x74, 0x03,             // jz .halt
        0xee,                   // out dx, al
        0xeb, 0xf8,             // jmp .next
        0xfa,                   // .halt: cli
        0xf4,                   // hlt
        0xeb, 0xfc,             // jmp .halt
    ];
    let mut mbr = [0u8; 512];
    mbr[..code.len()].copy_from_slice(&code);
    let msg = format!("{LOCAL_DISK_BOOTED}\r\n");
    mbr[code.len()..code.len() + msg.len()].copy_from_slice(msg.as_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    mbr
}

pub struct Vm {
    pub spec: VmSpec,
    pub serial: PathBuf,
    pub started: Instant,
    qemu: Daemon,
}

impl Vm {
    /// Creates the machine's disk image (`work/<name>.img`, holding `spec.disk`) and, for UEFI,
    /// its variable store: once per machine, they persist across its boots.
    pub fn prepare(tools: &Tools, spec: &VmSpec, work: &Path) -> Result<()> {
        let disk = Vm::disk_path(spec, work);
        if let Disk::Esp = spec.disk {
            crate::efi_disk::build(tools, &disk, spec.disk_bytes)?;
        } else {
            let f = std::fs::File::create(&disk).map_err(|e| format!("{}: {e}", disk.display()))?;
            f.set_len(spec.disk_bytes).map_err(|e| e.to_string())?;
            if let Disk::Mbr = spec.disk {
                use std::io::Write;
                (&f).write_all(&local_disk_mbr())
                    .map_err(|e| format!("{}: {e}", disk.display()))?;
            }
        }
        if spec.firmware == Firmware::Uefi {
            let vars = work.join(format!("{}.vars.fd", spec.name));
            std::fs::copy(&tools.ovmf_vars, &vars)
                .map_err(|e| format!("copying {}: {e}", tools.ovmf_vars.display()))?;
        }
        Ok(())
    }

    pub fn disk_path(spec: &VmSpec, work: &Path) -> PathBuf {
        work.join(format!("{}.img", spec.name))
    }

    /// `target/e2e/<name>.serial.log` (under `diag`).
    pub fn serial_path(spec: &VmSpec, diag: &Path) -> PathBuf {
        diag.join(format!("{}.serial.log", spec.name))
    }

    /// The QEMU command line of the machine (inside `ns`), without starting it; the disk
    /// image and variable store must exist ([`Vm::prepare`]). The serial console is appended
    /// to [`Vm::serial_path`].
    pub fn command(ns: &Netns, tools: &Tools, spec: &VmSpec, work: &Path, diag: &Path) -> Command {
        let disk = Vm::disk_path(spec, work);
        let serial = Vm::serial_path(spec, diag);
        let mut cmd = ns.command(&tools.qemu);
        cmd.args(["-machine", "q35", "-accel", "tcg", "-m", "512", "-smp", "1"])
            .args(["-nographic", "-monitor", "none"]);
        if !spec.reboot {
            cmd.arg("-no-reboot");
        }
        cmd.arg("-chardev")
            .arg(format!(
                "file,id=serial0,path={},append=on",
                serial.display()
            ))
            .args(["-serial", "chardev:serial0"])
            .arg("-netdev")
            .arg(format!(
                "tap,id=n0,ifname={},script=no,downscript=no",
                spec.tap
            ));
        let nic = format!("virtio-net-pci,netdev=n0,mac={},bootindex=1", spec.mac);
        match spec.firmware {
            Firmware::Bios => {
                cmd.arg("-device").arg(nic);
            }
            Firmware::Uefi => {
                let vars = work.join(format!("{}.vars.fd", spec.name));
                cmd.arg("-drive")
                    .arg(format!(
                        "if=pflash,format=raw,unit=0,readonly=on,file={}",
                        tools.ovmf_code.display()
                    ))
                    .arg("-drive")
                    .arg(format!(
                        "if=pflash,format=raw,unit=1,file={}",
                        vars.display()
                    ))
                    // No option ROM: OVMF's own PXE client loads ipxe.efi over TFTP.
                    .arg("-device")
                    .arg(format!("{nic},romfile="))
                    // Debian's OVMF has an IPv6 network stack (upstream's default build has
                    // none); on it, Debian 12's iPXE (2019) hangs when it exits (`exit 1` of an
                    // installed node's local boot): removing its network interface never
                    // completes, so the firmware never tries the disk. iPXE fixed this in
                    // November 2020 (ipxe/ipxe#170, "Allow initialisation via SNP interface
                    // even while claimed"); NixOS's iPXE has the fix. No IPv6 stack here.
                    .args(["-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=no"]);
            }
        }
        cmd.arg("-drive")
            .arg(format!("file={},format=raw,if=none,id=d0", disk.display()))
            .arg("-device")
            .arg(format!(
                "virtio-blk-pci,drive=d0,serial={},bootindex=2",
                spec.disk_serial
            ))
            .args(["-device", "virtio-rng-pci"]);
        cmd
    }

    /// Starts the machine inside `ns` with a fresh disk and console log; `work` holds its disk
    /// image and UEFI variable store.
    pub fn start(ns: &Netns, tools: &Tools, spec: VmSpec, work: &Path, diag: &Path) -> Result<Vm> {
        Vm::prepare(tools, &spec, work)?;
        let serial = Vm::serial_path(&spec, diag);
        let _ = std::fs::remove_file(&serial);
        let cmd = Vm::command(ns, tools, &spec, work, diag);
        let log = diag.join(format!("{}.qemu.log", spec.name));
        let qemu = Daemon::spawn(&format!("qemu {}", spec.name), cmd, &log)?;
        Ok(Vm {
            spec,
            serial,
            started: Instant::now(),
            qemu,
        })
    }

    pub fn serial_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default()).into_owned()
    }

    /// Waits for `needle` on the serial console; the error carries the console's tail.
    pub fn wait_serial(&mut self, needle: &str, timeout: Duration) -> Result<Duration> {
        let found = poll(timeout, Duration::from_millis(200), || {
            if self.serial_text().contains(needle) {
                return Some(Ok(()));
            }
            self.qemu.check_alive().err().map(Err)
        });
        match found {
            Some(Ok(())) => Ok(self.started.elapsed()),
            Some(Err(e)) => Err(err!(
                "{e}\nwhile waiting for {needle:?} on the console of {}\n{}",
                self.spec.name,
                self.diagnose()
            )),
            None => Err(err!(
                "{} did not print {needle:?} within {timeout:?}\n{}",
                self.spec.name,
                self.diagnose()
            )),
        }
    }

    /// Waits for the machine to power off by itself.
    pub fn wait_poweroff(&mut self, timeout: Duration) -> Result<()> {
        match self.qemu.wait_exit(timeout) {
            Some(_) => Ok(()),
            None => Err(err!(
                "{} did not power off within {timeout:?}\n{}",
                self.spec.name,
                self.diagnose()
            )),
        }
    }

    /// Serial console and QEMU output tails, for failure messages.
    pub fn diagnose(&self) -> String {
        format!("{}\n{}", tail(&self.serial, 40), tail(&self.qemu.log, 10))
    }

    pub fn stop(&mut self) {
        self.qemu.stop();
    }
}
