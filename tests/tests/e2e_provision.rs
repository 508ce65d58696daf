//! End to end: `plasmagen provision OUT --bootstrap` on three QEMU machines whose BMCs are IPMI
//! emulators (docs/e2e.md). Preflight, one power-on each through the real `ipmitool` into PXE,
//! the real PXE chain (dhcpd, TFTP, iPXE, the collector's boot scripts), discovery reports,
//! each machine's netboot initrd answering SSH as the NixOS installer, the nixos-anywhere
//! stand-in "installing" (a boot sector onto the machine's disk), marked installed in the
//! collector, a reboot over SSH, PXE again, the collector's local-disk script, and the disk's
//! boot sector on the console. Then a second run changes nothing.
//!
//! Needs root, /dev/net/tun and the BMC venv of scripts/test.sh; fails (never skips) without
//! them. Serial consoles and server logs: target/e2e/provision/.

mod e2e_support;

use std::time::{Duration, Instant};

use plasma_tests::e2e::initrd::{MARK_INSTALLED, MARK_REBOOT, MARK_SSHD};
use plasma_tests::e2e::lab::{self, Lab};
use plasma_tests::e2e::provision_lab::{ProvisionLab, run_bounded};
use plasma_tests::e2e::tools::{self, Tools};
use plasma_tests::e2e::vm::LOCAL_DISK_BOOTED;
use plasma_tests::e2e::{poll, tail};
use plasmagen::collector::view::NodeView;

use e2e_support::operator_get;

/// Bound of the provisioning run: three TCG machines booting at once on two cores.
const PROVISION_LIMIT: Duration = Duration::from_secs(900);
const DISK_BOOT_TIMEOUT: Duration = Duration::from_secs(300);

fn node(lab: &Lab, hostname: &str) -> NodeView {
    operator_get(lab, &format!("/v1/nodes/{hostname}"))
        .unwrap_or_else(|e| panic!("GET /v1/nodes/{hostname}: {e}"))
}

/// When each step of a node was first seen, from the start of the provisioning run.
#[derive(Debug, Default, Clone)]
struct Milestones {
    /// The BMC logged `power_on`.
    power_on: Option<Duration>,
    /// sshd runs in the installer initrd.
    installer: Option<Duration>,
    /// `plasma-lab-install` wrote the boot sector.
    installed: Option<Duration>,
    /// The collector says installed.
    marked: Option<Duration>,
    /// The disk's boot sector printed its marker after the reboot.
    disk: Option<Duration>,
}

fn track(plab: &ProvisionLab, start: Instant, all: &mut [Milestones]) {
    for ((n, vm), m) in plab.nodes.iter().zip(&plab.vms).zip(all.iter_mut()) {
        let now = start.elapsed();
        let h = &n.hostname;
        if m.power_on.is_none() && plab.bmc_actions(h).iter().any(|c| c == "power_on") {
            m.power_on = Some(now);
        }
        let serial = vm.serial_text();
        let seen = |s: &str| serial.contains(s).then_some(now);
        m.installer = m.installer.or_else(|| seen(MARK_SSHD));
        m.installed = m.installed.or_else(|| seen(MARK_INSTALLED));
        m.disk = m.disk.or_else(|| seen(LOCAL_DISK_BOOTED));
        if m.marked.is_none()
            && m.installed.is_some()
            && operator_get::<NodeView>(&plab.lab, &format!("/v1/nodes/{h}"))
                .is_ok_and(|n| n.installed)
        {
            m.marked = Some(now);
        }
    }
}

fn diagnose(plab: &ProvisionLab) -> String {
    let mut text = String::new();
    for (n, vm) in plab.nodes.iter().zip(&plab.vms) {
        text.push_str(&vm.diagnose());
        text.push('\n');
        text.push_str(&tail(&plab.bmc_log(&n.hostname), 10));
        text.push('\n');
    }
    for server in ["dhcpd", "httpd", "collector"] {
        text.push_str(&plab.lab.log_tail(server));
        text.push('\n');
    }
    let logs = plab.lab.dir().join("out/logs");
    for n in &plab.nodes {
        for log in ["provision.log", "nixos-anywhere.log"] {
            text.push_str(&tail(&logs.join(&n.hostname).join(log), 15));
            text.push('\n');
        }
    }
    text
}

fn value_after<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
    argv.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.1}s", d.as_secs_f64()))
}

fn between(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.1}s", b.saturating_sub(a).as_secs_f64()),
        _ => "-".into(),
    }
}

#[test]
fn provision_bootstrap_installs_three_machines() {
    let test_start = Instant::now();
    tools::require_privileges().unwrap_or_else(|e| panic!("{e}"));
    let tools = Tools::find().unwrap_or_else(|e| panic!("{e}"));
    let bins = lab::build_binaries().unwrap_or_else(|e| panic!("{e}"));
    let mut plab = ProvisionLab::start(tools, bins).unwrap_or_else(|e| panic!("lab: {e}"));

    // 1. The run, from a terminal: power on, installer, install, mark installed, reboot.
    let argv = plab.provision_argv(&[
        "--bootstrap",
        "--poll-interval",
        "2",
        "--installer-timeout",
        "600",
    ]);
    let start = Instant::now();
    let mut ms = vec![Milestones::default(); plab.vms.len()];
    let run = run_bounded(plab.in_terminal(&argv), PROVISION_LIMIT, || {
        track(&plab, start, &mut ms)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose(&plab)));
    let provisioned = start.elapsed();
    assert!(
        run.status.success(),
        "plasmagen provision failed\n{}\n{}",
        run.text(),
        diagnose(&plab)
    );
    // `script` puts the terminal's output (plasmagen's progress and summary) on stdout.
    for n in &plab.nodes {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.contains(&n.hostname) && l.contains("ok") && l.contains("installed")),
            "no summary line for {}:\n{}",
            n.hostname,
            run.stdout
        );
    }

    // 2. Each machine reboots, PXE-boots, gets the local-disk script and boots its disk.
    let booted = poll(DISK_BOOT_TIMEOUT, Duration::from_millis(500), || {
        track(&plab, start, &mut ms);
        ms.iter().all(|m| m.disk.is_some()).then_some(())
    });
    assert!(
        booted.is_some(),
        "not every machine booted its disk within {DISK_BOOT_TIMEOUT:?}\n{}",
        diagnose(&plab)
    );
    let total = start.elapsed();

    // 3. What happened, per machine.
    let installs = plab.installs();
    assert_eq!(installs.len(), 3, "{installs:?}");
    for ((n, vm), m) in plab.nodes.iter().zip(&plab.vms).zip(&ms) {
        let h = n.hostname.as_str();
        // The BMC: one-shot legacy PXE, one power-on, the machine started from the network.
        let calls = plab.bmc_calls(h);
        assert_eq!(
            plab.bmc_actions(h),
            ["boot_flags", "set_boot_device", "power_on", "boot"],
            "{h}: {calls:?}"
        );
        let call = |name: &str| calls.iter().find(|c| c["call"] == name).unwrap();
        assert_eq!(call("set_boot_device")["device"], "network", "{calls:?}");
        assert_eq!(call("boot")["device"], "network", "{calls:?}");
        assert_eq!(call("boot_flags")["uefi"], false, "{calls:?}");
        assert_eq!(call("boot_flags")["persistent"], false, "{calls:?}");
        // The machine started once (the reboot is a reset inside the same QEMU) and runs.
        assert_eq!(vm.boots(), ["boot network"], "{h}");
        assert!(vm.running(), "{h}: QEMU is not running\n{}", vm.diagnose());

        // The stand-in nixos-anywhere: once per machine, without the terminal.
        let (argv, stdin) = installs
            .iter()
            .find(|(a, _)| value_after(a, "--target-host") == [format!("root@{}", n.ip)])
            .unwrap_or_else(|| panic!("no install of {h}: {installs:?}"));
        assert_eq!(
            stdin, "not-a-tty",
            "nixos-anywhere must not get the terminal"
        );
        assert_eq!(value_after(argv, "--phases"), ["kexec,disko,install"]);

        // The collector: installed, and the discovery report of the installer's boot.
        let view = node(&plab.lab, h);
        assert!(
            view.installed,
            "{h} not installed in the collector: {view:?}"
        );
        let d = view
            .discovered
            .unwrap_or_else(|| panic!("{h}: no discovery report"));
        assert_eq!(
            d.count, 1,
            "{h}: one report, from the installer's boot only"
        );
        assert_eq!(d.mac, n.mac);
        assert_eq!(d.remote.as_deref(), Some(n.ip.as_str()));
        let by_id = format!("/dev/disk/by-id/virtio-{}", n.disk_serial);
        assert!(
            d.facts.disks.iter().any(|disk| disk.by_id.contains(&by_id)),
            "{h}: no disk {by_id}: {:?}",
            d.facts.disks
        );

        // The console, in this order: installer up, installed, reboot, PXE again with the
        // local-disk script, the disk's boot sector. The installer's image was fetched once only.
        let serial = vm.serial_text();
        let steps = [
            MARK_SSHD,
            MARK_INSTALLED,
            MARK_REBOOT,
            &format!("{h} is installed, booting from local disk"),
            LOCAL_DISK_BOOTED,
        ];
        let at: Vec<Option<usize>> = steps.iter().map(|s| serial.find(*s)).collect();
        assert!(
            at.iter().all(Option::is_some) && at.is_sorted(),
            "{h}: expected {steps:?} in this order on the console\n{}",
            vm.diagnose()
        );
        for fetched in ["netboot.ipxe... ok", "bzImage... ok"] {
            assert_eq!(
                serial.matches(fetched).count(),
                1,
                "{h}: the installer booted again\n{}",
                vm.diagnose()
            );
        }
        eprintln!(
            "e2e-provision: {h}: power-on at {}, -> installer {}, -> installed {} (marked {}), \
             -> disk booted {}",
            secs(m.power_on),
            between(m.power_on, m.installer),
            between(m.power_on, m.installed),
            between(m.power_on, m.marked),
            between(m.power_on, m.disk),
        );
    }
    eprintln!(
        "e2e-provision: plasmagen provision --bootstrap {:.1}s, all disks booted {:.1}s after \
         its start",
        provisioned.as_secs_f64(),
        total.as_secs_f64()
    );

    // 4. Again: every node is installed, nothing is powered or installed.
    let before: Vec<Vec<String>> = plab
        .nodes
        .iter()
        .map(|n| plab.bmc_actions(&n.hostname))
        .collect();
    let again = run_bounded(
        plab.command(&plab.provision_argv(&["--bootstrap"])),
        Duration::from_secs(120),
        || {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.status.success(), "{}", again.text());
    for n in &plab.nodes {
        assert!(
            again
                .stderr
                .lines()
                .any(|l| l.contains(&n.hostname) && l.contains("already installed")),
            "{}: {}",
            n.hostname,
            again.text()
        );
    }
    let after: Vec<Vec<String>> = plab
        .nodes
        .iter()
        .map(|n| plab.bmc_actions(&n.hostname))
        .collect();
    assert_eq!(before, after, "the second run called a BMC");
    assert_eq!(plab.installs().len(), 3, "the second run installed");
    plab.lab.check_servers().unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "e2e-provision: test total {:.1}s",
        test_start.elapsed().as_secs_f64()
    );
}
