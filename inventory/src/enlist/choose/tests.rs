use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use plasma_wire::discover::{Disk, Nic};
use rand::{Rng, SeedableRng};

use super::*;
use crate::inventory::{Cidr, DiskLayout};

fn disk(name: &str, gib: u64, rotational: bool, removable: bool, by_id: &[&str]) -> Disk {
    Disk {
        name: name.into(),
        size_bytes: gib << 30,
        by_id: by_id
            .iter()
            .map(|s| format!("/dev/disk/by-id/{s}"))
            .collect(),
        model: None,
        rotational: Some(rotational),
        removable: Some(removable),
    }
}

/// NVMe + SATA SSD + spinning disk + a USB stick, as a discovery report lists them.
fn mixed() -> Vec<Disk> {
    vec![
        disk(
            "nvme0n1",
            960,
            false,
            false,
            &["nvme-SAMSUNG_MZ1L2960_S6", "nvme-eui.0025"],
        ),
        disk(
            "sda",
            480,
            false,
            false,
            &["ata-INTEL_SSDSC2KB480G8_PHYF", "wwn-0x55cd"],
        ),
        disk(
            "sdb",
            4000,
            true,
            false,
            &["ata-ST4000NM0035_ZC1", "ata-ST4000NM0035_ZC1-part1"],
        ),
        disk("sdc", 32, false, true, &["usb-SanDisk_Ultra_4C53"]),
    ]
}

#[test]
fn single_takes_the_smallest_ssd_never_the_usb_stick() {
    assert_eq!(
        boot_disks(&mixed(), DiskLayout::Single).unwrap(),
        ["/dev/disk/by-id/ata-INTEL_SSDSC2KB480G8_PHYF"]
    );
    // Without SSDs: the spinning disk, by its serial name (not a partition).
    let hdd = vec![mixed()[2].clone(), mixed()[3].clone()];
    assert_eq!(
        boot_disks(&hdd, DiskLayout::Single).unwrap(),
        ["/dev/disk/by-id/ata-ST4000NM0035_ZC1"]
    );
    // Only the USB stick, or a disk without by-id name: nothing.
    assert!(boot_disks(&[mixed()[3].clone()], DiskLayout::Single).is_err());
    let mut no_id = mixed()[0].clone();
    no_id.by_id.clear();
    assert!(boot_disks(&[no_id], DiskLayout::Single).is_err());
}

#[test]
fn raid1_takes_two_disks_of_equal_size() {
    let mut disks = mixed();
    disks.push(disk("sdd", 4000, true, false, &["ata-ST4000NM0035_ZC2"]));
    assert_eq!(
        boot_disks(&disks, DiskLayout::Raid1).unwrap(),
        [
            "/dev/disk/by-id/ata-ST4000NM0035_ZC1",
            "/dev/disk/by-id/ata-ST4000NM0035_ZC2"
        ]
    );
    assert!(boot_disks(&mixed(), DiskLayout::Raid1).is_err());
}

#[test]
fn fastest_nics_but_the_pxe_one_become_production() {
    let nic = |name: &str, mac: &str, speed: Option<u64>| Nic {
        name: name.into(),
        mac: mac.into(),
        speed_mbps: speed,
        carrier: None,
        driver: None,
    };
    let nics = vec![
        nic("eno1", "52:54:00:00:00:01", Some(1000)),
        nic("ens2f1", "52:54:00:00:00:03", Some(25000)),
        nic("ens2f0", "52:54:00:00:00:02", Some(25000)),
        nic("eno2", "52:54:00:00:00:04", None),
    ];
    assert_eq!(
        production_nics(&nics, "52:54:00:00:00:01"),
        ["52:54:00:00:00:02", "52:54:00:00:00:03"]
    );
    assert_eq!(
        production_nics(&nics[..1], "52:54:00:00:00:01"),
        Vec::<String>::new()
    );
}

#[test]
fn hostnames_follow_the_existing_names() {
    let taken: BTreeSet<String> = ["node01", "node02", "node04", "db1"]
        .map(String::from)
        .into();
    assert_eq!(hostname(None, &taken).unwrap(), "node03");
    assert_eq!(hostname(Some("worker###"), &taken).unwrap(), "worker001");
    assert!(hostname(Some("worker"), &taken).is_err());
    assert_eq!(hostname(None, &BTreeSet::new()).unwrap(), "node01");
}

/// Random subnets, pools and taken sets: an allocated address is always in the subnet, in the
/// pool, not taken, and the lowest such; a full pool is an error, never a collision.
#[test]
fn allocation_never_collides_and_respects_every_exclusion() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    for _ in 0..2000 {
        let prefix = rng.random_range(20..=30u8);
        let network = u32::from(Ipv4Addr::new(10, rng.random(), rng.random(), 0))
            & (u32::MAX << (32 - prefix));
        let subnet = Cidr {
            network: Ipv4Addr::from(network),
            prefix,
        };
        let hosts = (1u32 << (32 - prefix)) - 2;
        let start = rng.random_range(1..=hosts.min(300));
        let pool = start..=start + rng.random_range(0..40);
        let mut taken = BTreeSet::new();
        for _ in 0..rng.random_range(0..60) {
            taken.insert(Ipv4Addr::from(
                network + rng.random_range(0..=hosts.min(400)),
            ));
        }
        let mut given = BTreeSet::new();
        loop {
            let all_taken: BTreeSet<Ipv4Addr> = taken.union(&given).copied().collect();
            match address(subnet, &pool, &all_taken) {
                Ok(ip) => {
                    let host = u32::from(ip) - network;
                    assert!(
                        pool.contains(&host) && host >= 1 && host <= hosts,
                        "{ip} {subnet}"
                    );
                    assert!(subnet.contains(ip));
                    assert!(!all_taken.contains(&ip));
                    let lower_free = (*pool.start()..host)
                        .map(|h| Ipv4Addr::from(network + h))
                        .any(|a| !all_taken.contains(&a));
                    assert!(!lower_free, "{ip} is not the lowest free address");
                    assert!(given.insert(ip));
                }
                Err(_) => {
                    let free = pool
                        .clone()
                        .filter(|h| *h <= hosts)
                        .map(|h| Ipv4Addr::from(network + h))
                        .any(|a| !all_taken.contains(&a));
                    assert!(!free, "pool reported full with a free address");
                    break;
                }
            }
        }
    }
}
