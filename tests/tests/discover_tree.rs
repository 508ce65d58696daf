//! `plasma-agent discover` against a fake /sys, /proc and /dev/disk/by-id tree.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use plasma_agent::discover::{self, DiscoverError};
use plasma_wire::discover::{Cpu, DiscoverReport, Disk, Nic};

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn link(root: &Path, rel: &str, target: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    symlink(target, path).unwrap();
}

/// A machine with two physical NICs, a bridge, loopback, a spinning disk, an NVMe disk and the
/// usual block devices that must never be offered as installation targets.
fn fake_machine(root: &Path) {
    // NICs: the device link is what marks an interface as physical.
    write(root, "sys/class/net/lo/address", "00:00:00:00:00:00\n");
    write(root, "sys/class/net/eno1/address", "52:54:00:12:34:56\n");
    write(root, "sys/class/net/eno1/speed", "10000\n");
    write(root, "sys/class/net/eno1/carrier", "1\n");
    link(
        root,
        "sys/class/net/eno1/device",
        "../../../devices/pci0000:00/0000:00:03.0",
    );
    // The driver link, relative to the device directory as sysfs writes it.
    link(
        root,
        "sys/devices/pci0000:00/0000:00:03.0/driver",
        "../../../bus/pci/drivers/ixgbe",
    );
    write(root, "sys/class/net/eno2/address", "52:54:00:12:34:57\n");
    write(root, "sys/class/net/eno2/speed", "-1\n");
    write(root, "sys/class/net/eno2/carrier", "0\n");
    fs::create_dir_all(root.join("sys/class/net/eno2/device")).unwrap();
    // Link down: reading speed fails in the kernel; a directory makes the read fail here too.
    write(root, "sys/class/net/enp5s0/address", "AA:BB:CC:00:11:22\n");
    fs::create_dir_all(root.join("sys/class/net/enp5s0/speed")).unwrap();
    fs::create_dir_all(root.join("sys/class/net/enp5s0/device")).unwrap();
    write(root, "sys/class/net/br0/address", "52:54:00:99:99:99\n");
    write(root, "sys/class/net/br0/speed", "10000\n");

    // Disks.
    write(root, "sys/block/sda/size", "1953525168\n");
    write(root, "sys/block/sda/queue/rotational", "1\n");
    write(root, "sys/block/sda/device/model", "ST1000DM003-1CH1\n");
    write(root, "sys/block/sda/removable", "0\n");
    write(root, "sys/block/nvme0n1/removable", "0\n");
    // A USB stick left in: removable, never a boot disk.
    write(root, "sys/block/sdb/size", "60062500\n");
    write(root, "sys/block/sdb/removable", "1\n");
    write(root, "sys/block/sdb/queue/rotational", "0\n");
    link(root, "dev/disk/by-id/usb-SanDisk_Ultra_4C53", "../../sdb");
    write(root, "sys/block/nvme0n1/size", "3907029168\n");
    write(root, "sys/block/nvme0n1/queue/rotational", "0\n");
    write(
        root,
        "sys/block/nvme0n1/device/model",
        "Samsung SSD 980 PRO 2TB                 \n",
    );
    for skipped in ["loop0", "ram0", "zram0", "dm-0"] {
        write(root, &format!("sys/block/{skipped}/size"), "2048\n");
    }
    write(root, "sys/block/sr0/size", "0\n");
    link(
        root,
        "dev/disk/by-id/ata-ST1000DM003-1CH1_Z1D5",
        "../../sda",
    );
    link(root, "dev/disk/by-id/wwn-0x5000c500a1b2c3d4", "../../sda");
    link(
        root,
        "dev/disk/by-id/ata-ST1000DM003-1CH1_Z1D5-part1",
        "../../sda1",
    );
    link(
        root,
        "dev/disk/by-id/nvme-Samsung_SSD_980_PRO_2TB_S69ENF0R",
        "../../nvme0n1",
    );
    link(root, "dev/disk/by-id/dm-name-vg-root", "../../dm-0");

    write(
        root,
        "proc/meminfo",
        "MemTotal:       65842560 kB\nMemFree:        60000000 kB\nMemAvailable:   61000000 kB\n",
    );
    let mut cpuinfo = String::new();
    for i in 0..4 {
        cpuinfo.push_str(&format!(
            "processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Silver 4214 CPU @ 2.20GHz\nflags\t\t: fpu vme\n\n"
        ));
    }
    write(root, "proc/cpuinfo", &cpuinfo);
    write(root, "proc/sys/kernel/hostname", "nixos\n");
}

fn expected_nics() -> Vec<Nic> {
    vec![
        Nic {
            name: "eno1".into(),
            mac: "52:54:00:12:34:56".into(),
            speed_mbps: Some(10000),
            carrier: Some(true),
            driver: Some("ixgbe".into()),
        },
        Nic {
            name: "eno2".into(),
            mac: "52:54:00:12:34:57".into(),
            speed_mbps: None,
            carrier: Some(false),
            driver: None,
        },
        Nic {
            name: "enp5s0".into(),
            mac: "aa:bb:cc:00:11:22".into(),
            speed_mbps: None,
            carrier: None,
            driver: None,
        },
    ]
}

#[test]
fn collects_the_fake_machine() {
    let dir = tempfile::tempdir().unwrap();
    fake_machine(dir.path());

    let report = discover::collect(dir.path(), None).unwrap();

    let expected = DiscoverReport {
        primary_mac: "52:54:00:12:34:56".into(),
        nics: expected_nics(),
        disks: vec![
            Disk {
                name: "nvme0n1".into(),
                size_bytes: 3907029168 * 512,
                by_id: vec!["/dev/disk/by-id/nvme-Samsung_SSD_980_PRO_2TB_S69ENF0R".into()],
                model: Some("Samsung SSD 980 PRO 2TB".into()),
                rotational: Some(false),
                removable: Some(false),
            },
            Disk {
                name: "sda".into(),
                size_bytes: 1953525168 * 512,
                by_id: vec![
                    "/dev/disk/by-id/ata-ST1000DM003-1CH1_Z1D5".into(),
                    "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4".into(),
                ],
                model: Some("ST1000DM003-1CH1".into()),
                rotational: Some(true),
                removable: Some(false),
            },
            Disk {
                name: "sdb".into(),
                size_bytes: 60062500 * 512,
                by_id: vec!["/dev/disk/by-id/usb-SanDisk_Ultra_4C53".into()],
                model: None,
                rotational: Some(false),
                removable: Some(true),
            },
        ],
        memory_bytes: 65842560 * 1024,
        cpu: Cpu {
            model: "Intel(R) Xeon(R) Silver 4214 CPU @ 2.20GHz".into(),
            logical_cpus: 4,
        },
        hostname: Some("nixos".into()),
        // No /sys/firmware/efi in the tree.
        firmware: Some("bios".into()),
        // Not the real root: the BMC is never asked.
        bmc: None,
    };
    assert_eq!(report, expected);
    fs::create_dir_all(dir.path().join("sys/firmware/efi")).unwrap();
    assert_eq!(
        discover::collect(dir.path(), None)
            .unwrap()
            .firmware
            .as_deref(),
        Some("uefi")
    );

    // The wire type round-trips through JSON with deny_unknown_fields on both sides.
    let json = serde_json::to_string(&report).unwrap();
    assert_eq!(
        serde_json::from_str::<DiscoverReport>(&json).unwrap(),
        report
    );
}

#[test]
fn boot_mac_from_cmdline_becomes_primary() {
    let dir = tempfile::tempdir().unwrap();
    fake_machine(dir.path());
    write(
        dir.path(),
        "proc/cmdline",
        "init=/nix/store/abc-nixos/init plasmacloud.collector=http://10.0.100.10:8081 plasmacloud.mac=52:54:00:12:34:57\n",
    );
    let cmdline = discover::read_cmdline(dir.path()).unwrap();
    assert_eq!(
        cmdline.collector.as_deref(),
        Some("http://10.0.100.10:8081")
    );
    let report = discover::collect(dir.path(), cmdline.mac.as_deref()).unwrap();
    assert_eq!(report.primary_mac, "52:54:00:12:34:57");
}

#[test]
fn disks_without_by_id_directory_have_no_stable_names() {
    let dir = tempfile::tempdir().unwrap();
    fake_machine(dir.path());
    fs::remove_dir_all(dir.path().join("dev")).unwrap();
    let disks = discover::read_disks(dir.path()).unwrap();
    assert_eq!(
        disks.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        ["nvme0n1", "sda", "sdb"]
    );
    assert!(disks.iter().all(|d| d.by_id.is_empty()));
}

/// A report of an agent from before firmware, drivers, removable and the BMC were reported.
#[test]
fn old_reports_stay_readable() {
    let old = r#"{"primary_mac":"52:54:00:12:34:56",
        "nics":[{"name":"eno1","mac":"52:54:00:12:34:56","speed_mbps":1000,"carrier":true}],
        "disks":[{"name":"sda","size_bytes":1000,"by_id":[],"model":null,"rotational":true}],
        "memory_bytes":1,"cpu":{"model":"x","logical_cpus":1},"hostname":null}"#;
    let r: DiscoverReport = serde_json::from_str(old).unwrap();
    assert_eq!((r.firmware.clone(), r.bmc.clone()), (None, None));
    assert_eq!(
        (r.nics[0].driver.clone(), r.disks[0].removable),
        (None, None)
    );
    // And a new report without them serializes without the new keys (older collectors).
    let json = serde_json::to_value(&r).unwrap();
    assert!(json.get("firmware").is_none() && json["nics"][0].get("driver").is_none());
}

#[test]
fn only_virtual_nics_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fake_machine(dir.path());
    for nic in ["eno1", "eno2", "enp5s0"] {
        fs::remove_dir_all(dir.path().join("sys/class/net").join(nic)).unwrap();
    }
    assert!(matches!(
        discover::collect(dir.path(), None),
        Err(DiscoverError::NoNics(_))
    ));
    // With the boot MAC known, the report can still be sent (with an empty NIC list).
    let report = discover::collect(dir.path(), Some("52-54-00-12-34-56")).unwrap();
    assert_eq!(report.primary_mac, "52:54:00:12:34:56");
    assert!(report.nics.is_empty());
}

#[test]
fn missing_meminfo_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    fake_machine(dir.path());
    fs::remove_file(dir.path().join("proc/meminfo")).unwrap();
    match discover::collect(dir.path(), None) {
        Err(DiscoverError::Read { path, .. }) => assert!(path.ends_with("proc/meminfo")),
        other => panic!("expected a read error, got {other:?}"),
    }
}

#[test]
fn malformed_size_is_a_parse_error() {
    let dir = tempfile::tempdir().unwrap();
    fake_machine(dir.path());
    write(dir.path(), "sys/block/sda/size", "lots\n");
    match discover::read_disks(dir.path()) {
        Err(DiscoverError::Parse { path, .. }) => assert!(path.ends_with("sys/block/sda/size")),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn cpuinfo_without_model_name_still_counts_cpus() {
    let dir = tempfile::tempdir().unwrap();
    fake_machine(dir.path());
    write(
        dir.path(),
        "proc/cpuinfo",
        "processor\t: 0\nBogoMIPS\t: 50.00\n\nprocessor\t: 1\nBogoMIPS\t: 50.00\n",
    );
    let cpu = discover::read_cpu(dir.path()).unwrap();
    assert_eq!(cpu.logical_cpus, 2);
    assert_eq!(cpu.model, "unknown");
}
