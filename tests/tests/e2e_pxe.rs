//! End to end (issue 8): machines PXE-boot in QEMU through the generated DHCP configuration,
//! TFTP, iPXE scripts and HTTP, run `plasma-agent discover` from a netboot initrd and report to
//! the real collector, all inside a network namespace this test creates (docs/e2e.md).
//!
//! Needs root and /dev/net/tun, and fails (never skips) without them or without a tool, naming
//! the Debian package. Serial consoles and server logs: target/e2e/.

mod e2e_support;

use std::net::Ipv4Addr;
use std::process::Output;
use std::time::{Duration, Instant};

use plasma_tests::e2e::efi_disk::LOCAL_DISK_BOOTED_UEFI;
use plasma_tests::e2e::lab::{self, Lab, NODE01_IP, NODE01_MAC, PXE_SERVER};
use plasma_tests::e2e::tools::{self, Tools};
use plasma_tests::e2e::vm::{Disk, Firmware, LOCAL_DISK_BOOTED, Vm, VmSpec};
use plasma_tests::e2e::{initrd, poll};
use plasmagen::collector::view::{FleetView, NodeView};

use e2e_support::operator_get;

const UNKNOWN_MAC: &str = "52:54:00:e2:e2:03";
const UNKNOWN_DISK_SERIAL: &str = "E2EUNKNOWN3";
/// The unknown machine's disk (a sparse file) is a real system disk's size: `plasmagen
/// enlist` only installs on disks of at least 16 GiB (the lab's 64 MiB disk would be refused).
const UNKNOWN_DISK_BYTES: u64 = 32 << 30;
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// Plain GET on the collector's boot listener (what iPXE asks for).
fn boot_script(lab: &Lab, mac: &str) -> String {
    use std::io::{Read, Write};
    let path = format!("/boot/{}.ipxe", mac.replace(':', "-"));
    lab.ns
        .enter(move || {
            let mut s = std::net::TcpStream::connect((PXE_SERVER, 8081)).expect("boot listener");
            write!(s, "GET {path} HTTP/1.0\r\nHost: {PXE_SERVER}\r\n\r\n").unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            text
        })
        .expect("enter namespace")
}

/// `plasmagen <args>` inside the lab's namespace, whatever its exit status.
fn plasmagen_output(lab: &Lab, args: &[&str]) -> Output {
    lab.ns
        .command(&lab.bins.plasmagen)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("plasmagen {args:?}: {e}"))
}

fn show(o: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Host number of `ip` in the subnet starting at `network` (10.0.100.80 in 10.0.100.0/24: 80).
fn host_number(ip: Ipv4Addr, network: Ipv4Addr) -> u32 {
    u32::from(ip) - u32::from(network)
}

fn node01(lab: &Lab) -> NodeView {
    operator_get(lab, "/v1/nodes/node01").expect("GET /v1/nodes/node01")
}

/// How many discovery reports the collector holds for node01's MAC.
fn node01_reports(lab: &Lab) -> u64 {
    node01(lab).discovered.map_or(0, |d| d.count)
}

/// Boots node01 and waits for its discovery report; returns power-on → first report.
fn boot_node01(lab: &mut Lab, firmware: Firmware, disk_serial: &str) -> (Vm, Duration) {
    let before = node01_reports(lab);
    let mut vm = lab
        .boot("node01", firmware, NODE01_MAC, disk_serial)
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = poll(BOOT_TIMEOUT, Duration::from_millis(250), || {
        let n = node01(lab);
        n.discovered
            .filter(|d| d.count > before)
            .map(|_| vm.started.elapsed())
    });
    let Some(elapsed) = seen else {
        let servers = lab.check_servers().err().map(|e| e.0).unwrap_or_default();
        panic!(
            "{firmware:?}: node01 did not report within {BOOT_TIMEOUT:?}\n{}\n{servers}\n{}\n{}",
            vm.diagnose(),
            lab.log_tail("dhcpd"),
            lab.log_tail("httpd")
        );
    };
    vm.wait_serial(
        &format!("{}0", initrd::MARK_DISCOVER_EXIT),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    vm.wait_poweroff(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    (vm, elapsed)
}

/// The facts node01's last discovery report holds: this VM's NIC and disk.
fn assert_node01_facts(lab: &Lab, disk_serial: &str) {
    let n = node01(lab);
    let d = n.discovered.expect("node01 discovered");
    assert_eq!(d.mac, NODE01_MAC);
    assert_eq!(
        d.remote.as_deref(),
        Some(NODE01_IP),
        "reported from the reserved address"
    );
    let f = &d.facts;
    assert_eq!(f.primary_mac, NODE01_MAC);
    assert!(
        f.nics.iter().any(|nic| nic.mac == NODE01_MAC),
        "NIC with node01's MAC: {:?}",
        f.nics
    );
    let by_id = format!("/dev/disk/by-id/virtio-{disk_serial}");
    let disk = f
        .disks
        .iter()
        .find(|disk| disk.by_id.contains(&by_id))
        .unwrap_or_else(|| panic!("no disk with {by_id}: {:?}", f.disks));
    assert_eq!(disk.name, "vda");
    assert_eq!(disk.size_bytes, lab::DISK_BYTES);
    assert!(
        f.memory_bytes > 256 << 20 && f.memory_bytes <= 512 << 20,
        "{}",
        f.memory_bytes
    );
    assert_eq!(f.cpu.logical_cpus, 1);
}

/// dhcpd acknowledged node01's reservation at least `n` times.
fn assert_reservation_acks(lab: &Lab, n: usize) {
    let log = lab.log("dhcpd");
    let acks = log
        .matches(&format!(
            "DHCPACK on {NODE01_IP} to {NODE01_MAC} via {}",
            lab::BRIDGE
        ))
        .count();
    assert!(
        acks >= n,
        "expected {n}+ DHCPACKs of node01's reservation, dhcpd logged:\n{log}"
    );
}

/// After an installed node's local boot: no netboot image, kernel or new discovery report
/// followed. Waits a few seconds first: a wrong fallback to the installer would fetch the
/// kernel within seconds.
fn assert_not_reinstalled(lab: &Lab, vm: &Vm, reports: u64, kernels_served: usize) {
    std::thread::sleep(Duration::from_secs(5));
    let serial = vm.serial_text();
    assert!(
        !serial.contains("netboot.ipxe"),
        "an installed node chained the netboot image\n{}",
        vm.diagnose()
    );
    assert!(
        !serial.contains("Linux version"),
        "an installed node booted the netboot kernel\n{}",
        vm.diagnose()
    );
    assert_eq!(
        node01_reports(lab),
        reports,
        "an installed node reported discovery again"
    );
    assert_eq!(
        lab.log("httpd").matches("bzImage").count(),
        kernels_served,
        "kernel served again"
    );
}

#[test]
fn pxe_boot_reports_to_the_collector() {
    tools::require_privileges().unwrap_or_else(|e| panic!("{e}"));
    let tools = Tools::find().unwrap_or_else(|e| panic!("{e}"));
    let bins = lab::build_binaries().unwrap_or_else(|e| panic!("{e}"));
    let mut lab = lab::start(tools, bins).unwrap_or_else(|e| panic!("lab: {e}"));
    let mut timings = Vec::new();

    // 1. Legacy BIOS: the NIC's iPXE ROM gets node01's reservation and boot.ipxe over HTTP.
    let (vm, bios) = boot_node01(&mut lab, Firmware::Bios, "E2EBIOS01");
    assert_node01_facts(&lab, "E2EBIOS01");
    // iPXE (boot script) and the initrd's udhcpc each got the reservation.
    assert_reservation_acks(&lab, 2);
    let serial = vm.serial_text();
    assert!(
        serial.contains("/boot/52-54-00-12-34-56.ipxe... ok"),
        "collector boot script"
    );
    assert!(serial.contains("PlasmaCloud: netbooting node01 (control-plane)"));
    assert!(serial.contains(&format!("{}{NODE01_IP}", initrd::MARK_LEASE)));
    drop(vm);
    timings.push(("bios", bios));
    println!(
        "e2e: BIOS power-on -> first report: {:.1}s",
        bios.as_secs_f64()
    );

    // 2. UEFI: OVMF's PXE client gets ipxe.efi over TFTP, then the same chain.
    let (vm, uefi) = boot_node01(&mut lab, Firmware::Uefi, "E2EUEFI01");
    assert_node01_facts(&lab, "E2EUEFI01");
    assert_eq!(node01_reports(&lab), 2);
    let tftp = lab.log("tftp-dnsmasq");
    assert!(
        tftp.contains("sent") && tftp.contains("ipxe.efi to 10.0.100.50"),
        "TFTP log:\n{tftp}"
    );
    assert!(
        vm.serial_text().contains("UEFI PXEv4"),
        "OVMF's PXE client booted"
    );
    drop(vm);
    timings.push(("uefi", uefi));
    println!(
        "e2e: UEFI power-on -> first report: {:.1}s",
        uefi.as_secs_f64()
    );
    assert_reservation_acks(&lab, 4);

    if std::env::var_os("PLASMA_E2E_BENCH_ONLY").is_some() {
        return;
    }

    // 3. Installed: the collector serves the local-boot script and the machine does not
    //    netboot the installer again.
    assert!(boot_script(&lab, NODE01_MAC).contains("netbooting node01"));
    let secrets = lab.secrets.display().to_string();
    let marked = lab
        .plasmagen(&[
            "mark-installed",
            "node01",
            "--collector",
            &lab.collector_url(),
            "--secrets",
            &secrets,
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(marked.contains("installed=true"), "{marked}");
    let script = boot_script(&lab, NODE01_MAC);
    assert!(
        script.contains("is installed, booting from local disk") && script.contains("sanboot"),
        "{script}"
    );
    let reports = node01_reports(&lab);
    let kernels_served = lab.log("httpd").matches("bzImage").count();
    // The disk holds a boot sector standing in for the installed system.
    let mut vm = lab
        .boot_disk(
            "node01-installed",
            Firmware::Bios,
            NODE01_MAC,
            "E2EBIOS01",
            Disk::Mbr,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    vm.wait_serial("node01 is installed, booting from local disk", BOOT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let local = vm
        .wait_serial(LOCAL_DISK_BOOTED, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "e2e: installed node01 booted its local disk {:.1}s after power-on",
        local.as_secs_f64()
    );
    assert_not_reinstalled(&lab, &vm, reports, kernels_served);
    drop(vm);

    // 3b. Installed, but the local disk does not boot (blank, or a broken bootloader): the
    //     machine is handed back to the firmware instead of falling through to the installer.
    let mut vm = lab
        .boot_disk(
            "node01-blank",
            Firmware::Bios,
            NODE01_MAC,
            "E2EBLANK01",
            Disk::Blank,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    vm.wait_serial("node01 is installed, booting from local disk", BOOT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    vm.wait_serial(
        "handing node01 back to the firmware's next boot device",
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_secs(5));
    let serial = vm.serial_text();
    assert!(
        !serial.contains("netboot.ipxe") && !serial.contains("Linux version"),
        "a failed local boot fell through to the installer:\n{serial}"
    );
    // boot.ipxe passes the hand-back on instead of reporting a failed chain.
    assert!(
        !serial.contains("installed machine, not reinstalling"),
        "{serial}"
    );
    assert_eq!(node01_reports(&lab), reports, "no new discovery report");
    drop(vm);

    // 3c. Installed, UEFI: iPXE cannot boot a disk itself, so the local-boot script exits
    //     (and boot.ipxe after it) back to OVMF, which goes on down its boot order to the disk
    //     (bootindex 2): GPT, an EFI System Partition with \EFI\BOOT\BOOTX64.EFI standing in
    //     for the installed system. OVMF tries the NIC's UEFI HTTP boot entry first, which
    //     waits about a minute for a DHCP offer naming an HTTP URI.
    let mut vm = lab
        .boot_disk(
            "node01-installed",
            Firmware::Uefi,
            NODE01_MAC,
            "E2EUEFI01",
            Disk::Esp,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    vm.wait_serial("node01 is installed, booting from local disk", BOOT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let handed_back = vm
        .wait_serial(
            "handing node01 back to the firmware's next boot device (the local disk)",
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let local = vm
        .wait_serial(LOCAL_DISK_BOOTED_UEFI, Duration::from_secs(150))
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "e2e: installed node01 (UEFI) handed back to the firmware {:.1}s, booted its local disk \
         {:.1}s after power-on",
        handed_back.as_secs_f64(),
        local.as_secs_f64()
    );
    let serial = vm.serial_text();
    // In this order: the local-boot script exits (boot.ipxe passes that on without falling
    // back to the installer or reporting a failure), OVMF starts the disk's boot entry ("UEFI Misc Device" is its name for the
    // virtio disk), the disk's EFI program runs.
    let steps = [
        "back to the firmware's next boot device (the local disk)",
        "BdsDxe: starting Boot",
        "\"UEFI Misc Device\" from",
        LOCAL_DISK_BOOTED_UEFI,
    ];
    let at: Vec<Option<usize>> = steps.iter().map(|s| serial.rfind(s)).collect();
    assert!(
        at.iter().all(Option::is_some) && at.is_sorted(),
        "expected {steps:?} in this order on the console:\n{serial}"
    );
    assert!(
        !serial.contains("installed machine, not reinstalling"),
        "a deliberate hand-back reported as a failed boot:\n{serial}"
    );
    assert_not_reinstalled(&lab, &vm, reports, kernels_served);
    drop(vm);

    // 4. An unknown MAC boots the discovery script and shows up in `plasmagen discovered`.
    let unknown = VmSpec {
        name: "unknown-bios".into(),
        firmware: Firmware::Bios,
        mac: UNKNOWN_MAC.into(),
        tap: lab::TAP.into(),
        disk_serial: UNKNOWN_DISK_SERIAL.into(),
        disk_bytes: UNKNOWN_DISK_BYTES,
        disk: Disk::Blank,
        reboot: false,
    };
    let mut vm = Vm::start(&lab.ns, &lab.tools, unknown.clone(), lab.dir(), &lab.diag)
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let seen = poll(BOOT_TIMEOUT, Duration::from_millis(250), || {
        let fleet: FleetView = operator_get(&lab, "/v1/nodes").ok()?;
        fleet
            .unknown_discovered
            .iter()
            .any(|d| d.mac == UNKNOWN_MAC)
            .then(|| started.elapsed())
    });
    assert!(
        seen.is_some(),
        "unknown machine did not report\n{}",
        vm.diagnose()
    );
    assert!(
        vm.serial_text()
            .contains("unknown machine 52:54:00:e2:e2:03, booting the discovery image")
    );
    vm.wait_poweroff(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(vm);
    // It got an address from the dynamic range, not a reservation.
    let dhcpd = lab.log("dhcpd");
    assert!(
        dhcpd.contains(&format!("to {UNKNOWN_MAC} via"))
            && !dhcpd.contains(&format!("DHCPACK on {NODE01_IP} to {UNKNOWN_MAC}")),
        "unknown MAC lease:\n{dhcpd}"
    );

    let url = lab.collector_url();
    let toml_text = lab
        .plasmagen(&[
            "discovered",
            "--collector",
            &url,
            "--secrets",
            &secrets,
            "--format",
            "toml",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    let doc: toml::Table =
        toml::from_str(&toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    let nodes = doc["nodes"].as_array().expect("[[nodes]]");
    assert_eq!(
        nodes.len(),
        1,
        "only the unknown machine, not node01:\n{toml_text}"
    );
    let n = nodes[0].as_table().unwrap();
    assert_eq!(n["mac"].as_str(), Some(UNKNOWN_MAC));
    assert_eq!(
        n["disks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect::<Vec<_>>(),
        ["/dev/disk/by-id/virtio-E2EUNKNOWN3"]
    );
    assert!(toml_text.contains("# TODO"), "{toml_text}");
    let json_text = lab
        .plasmagen(&[
            "discovered",
            "--collector",
            &url,
            "--secrets",
            &secrets,
            "--format",
            "json",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    let json: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(json[0]["mac"], UNKNOWN_MAC);
    assert_eq!(json[0]["disks"][0], "/dev/disk/by-id/virtio-E2EUNKNOWN3");

    // 5. Zero-touch enlistment: the operator's one command turns the discovered machine into
    //    an inventory entry from its report (firmware, disk, addresses from the pools).
    let unknown_report = seen.expect("reported");
    let inventory = lab.inventory.display().to_string();
    let before = std::fs::read_to_string(&lab.inventory).expect("lab inventory");
    let old_nodes = plasmagen::inventory::load(&lab.inventory)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .inventory
        .nodes
        .len();
    // `plasmagen enlist <inventory> <which> --role worker` as the operator runs it.
    let enlist = |which: &str| {
        plasmagen_output(
            &lab,
            &[
                "enlist",
                &inventory,
                which,
                "--role",
                "worker",
                "--collector",
                &url,
                "--secrets",
                &secrets,
            ],
        )
    };
    let enlist_start = Instant::now();
    let o = enlist("--all");
    let enlisted = enlist_start.elapsed();
    assert_eq!(o.status.code(), Some(0), "enlist: {}", show(&o));
    let after = std::fs::read_to_string(&lab.inventory).expect("lab inventory");
    // Every byte of the inventory stays; one [[nodes]] block is appended.
    assert!(
        after.starts_with(&before),
        "enlist changed the existing text:\n--- before\n{before}\n--- after\n{after}"
    );
    let added = &after[before.len()..];
    assert_eq!(added.matches("[[nodes]]").count(), 1, "{added}");
    println!("e2e: enlisted entry:\n{}", added.trim());
    let doc: toml::Table = toml::from_str(&after).unwrap_or_else(|e| panic!("{e}\n{after}"));
    let nodes = doc["nodes"].as_array().expect("[[nodes]]");
    assert_eq!(nodes.len(), old_nodes + 1, "{after}");
    let new: Vec<&toml::Table> = nodes
        .iter()
        .filter_map(|n| n.as_table())
        .filter(|n| n["mac"].as_str() == Some(UNKNOWN_MAC))
        .collect();
    assert_eq!(new.len(), 1, "one entry for the unknown MAC:\n{after}");
    let new = new[0];
    let field = |k: &str| {
        new.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no {k} in the entry:\n{added}"))
    };
    // The machine booted SeaBIOS: no /sys/firmware/efi in the netboot initrd.
    assert_eq!(field("firmware"), Firmware::Bios.as_str(), "{added}");
    assert_eq!(
        new["disks"]
            .as_array()
            .map(|d| d.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>()),
        Some(vec![
            format!("/dev/disk/by-id/virtio-{UNKNOWN_DISK_SERIAL}").as_str()
        ]),
        "{added}"
    );
    assert_eq!(field("role"), "worker");
    assert_eq!(field("disk_layout"), "single");
    // The next number of node01's pattern.
    assert_eq!(field("hostname"), "node02");
    let loaded = plasmagen::inventory::load(&lab.inventory)
        .unwrap_or_else(|e| panic!("enlisted inventory invalid: {e:?}\n{after}"))
        .inventory;
    let node = loaded
        .nodes
        .iter()
        .find(|n| n.mac.as_str() == UNKNOWN_MAC)
        .expect("enlisted node");
    let prov = host_number(node.provisioning_ip, loaded.provisioning.subnet.network);
    let prod = host_number(node.production_ip, loaded.production.subnet.network);
    assert!(
        loaded.allocation.worker_provisioning.contains(&prov)
            && loaded.allocation.worker_production.contains(&prod),
        "addresses outside the worker pools ({:?}, {:?}):\n{added}",
        loaded.allocation.worker_provisioning,
        loaded.allocation.worker_production
    );
    // The lab's inventory leaves the pools' first hosts free (node01 holds .50 and .10).
    assert_eq!(node.provisioning_ip.to_string(), "10.0.100.80");
    assert_eq!(node.production_ip.to_string(), "10.0.200.20");
    println!(
        "e2e: unknown machine power-on -> report {:.1}s, plasmagen enlist {:.2}s",
        unknown_report.as_secs_f64(),
        enlisted.as_secs_f64()
    );

    // The edited inventory generates: the node's configuration and its DHCP reservation.
    let out = lab.dir().join("enlisted");
    let out_arg = out.display().to_string();
    lab.plasmagen(&["generate", &inventory, "--out", &out_arg])
        .unwrap_or_else(|e| panic!("{e}"));
    let config = out.join(format!(
        "flake/nodes/{}.{}/configuration.nix",
        node.hostname, loaded.cluster.domain
    ));
    assert!(config.is_file(), "{} not generated", config.display());
    let dhcpd_conf = std::fs::read_to_string(out.join("flake/pxe/dhcpd.conf")).expect("dhcpd.conf");
    let reservation = format!(
        "host {} {{\n  hardware ethernet {UNKNOWN_MAC};\n  fixed-address {};\n",
        node.hostname, node.provisioning_ip
    );
    assert!(
        dhcpd_conf.contains(&reservation),
        "no reservation {reservation:?} in:\n{dhcpd_conf}"
    );
    let lab_dhcpd_conf = std::fs::read_to_string(lab.pxe.join("dhcpd.conf")).expect("dhcpd.conf");
    assert!(!lab_dhcpd_conf.contains(UNKNOWN_MAC), "{lab_dhcpd_conf}");

    // Again, by MAC: already enlisted, the file is untouched.
    let bytes = std::fs::read(&lab.inventory).expect("lab inventory");
    let o = enlist(UNKNOWN_MAC);
    assert_eq!(o.status.code(), Some(0), "second enlist: {}", show(&o));
    assert!(
        show(&o).contains(&format!("already enlisted as {}", node.hostname)),
        "{}",
        show(&o)
    );
    assert_eq!(
        std::fs::read(&lab.inventory).expect("lab inventory"),
        bytes,
        "a second enlist changed the inventory"
    );
    // --all again, the collector still running with its start-up inventory (it lists the
    // machine as unknown): the file decides, nothing is written, exit 0.
    let o = enlist("--all");
    assert!(o.status.success(), "{}", show(&o));
    assert!(show(&o).contains("nothing to enlist"), "{}", show(&o));
    assert_eq!(
        std::fs::read(&lab.inventory).expect("lab inventory"),
        bytes,
        "enlist --all again changed the inventory: {}",
        show(&o)
    );

    // 6. The PXE server deployed with the new dhcpd.conf (dhcpd restarted, as the server's
    //    `nixos-rebuild switch` restarts it): the enlisted machine's next boot leases its
    //    reserved address instead of one from the dynamic range.
    std::fs::copy(out.join("flake/pxe/dhcpd.conf"), lab.pxe.join("dhcpd.conf"))
        .expect("deploy dhcpd.conf");
    lab.restart_dhcpd().unwrap_or_else(|e| panic!("{e}"));
    let next_boot = VmSpec {
        name: "unknown-bios-enlisted".into(),
        ..unknown
    };
    let mut vm = Vm::start(&lab.ns, &lab.tools, next_boot, lab.dir(), &lab.diag)
        .unwrap_or_else(|e| panic!("{e}"));
    vm.wait_serial(
        &format!("{}{} on", initrd::MARK_LEASE, node.provisioning_ip),
        BOOT_TIMEOUT,
    )
    .unwrap_or_else(|e| {
        panic!(
            "the enlisted machine's next boot: {e}\n{}",
            lab.log_tail("dhcpd")
        )
    });
    drop(vm);

    lab.check_servers().unwrap_or_else(|e| panic!("{e}"));
    for (fw, t) in timings {
        println!("e2e: {fw} power-on -> first report {:.1}s", t.as_secs_f64());
    }
}
