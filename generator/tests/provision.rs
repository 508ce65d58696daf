//! `plasmagen provision` in a lab of real parts (provision_lab/mod.rs): emulated IPMI BMCs
//! driven by the real ipmitool, machines whose SSH is a real sshd, the real collector over
//! mTLS, and a recording nixos-anywhere stand-in. Needs root.

mod common;
mod provision_lab;

use std::fs;
use std::time::Duration;

use provision_lab::{Lab, lines, text};

fn founders() -> Lab {
    Lab::new(&[("node01", true), ("node02", true), ("node03", true)])
}

fn value_after<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
    argv.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

#[test]
fn bootstrap_from_a_terminal_installs_every_founder_once() {
    let lab = founders();
    let o = lab.provision_in_terminal(&["--bootstrap", "--installer-timeout", "60"]);
    assert!(o.status.success(), "{}", text(&o));
    let screen = String::from_utf8_lossy(&o.stdout);
    assert!(
        screen.contains("node01") && screen.contains("ok"),
        "no summary on the terminal:\n{screen}"
    );

    let installs = lab.installs();
    assert_eq!(installs.len(), 3, "{installs:?}");
    for n in &lab.nodes {
        let h = n.hostname.as_str();
        // One-shot UEFI network boot, then power on (the machine was off), through ipmitool.
        let calls = lab.bmc_calls(h);
        let flags: Vec<_> = calls.iter().filter(|c| c["call"] == "boot_flags").collect();
        assert_eq!(flags.len(), 1, "{calls:?}");
        assert_eq!(flags[0]["uefi"], true);
        assert_eq!(flags[0]["persistent"], false);
        assert_eq!(
            lab.bmc_actions(h),
            ["boot_flags", "set_boot_device", "power_on", "boot"],
            "{h}"
        );
        assert_eq!(
            lab.boots(h, 2),
            ["boot network", "boot default"],
            "{h}: installer first, then its own disk after the reboot"
        );

        let (argv, stdin) = installs
            .iter()
            .find(|(a, _)| value_after(a, "--target-host") == [format!("root@{}", n.ip)])
            .unwrap_or_else(|| panic!("no install of {h}: {installs:?}"));
        assert_eq!(
            stdin, "not-a-tty",
            "nixos-anywhere must not get the terminal"
        );
        let flake = format!("{}#{h}", lab.out.join("flake").display());
        assert_eq!(value_after(argv, "--flake"), [flake.as_str()]);
        assert_eq!(value_after(argv, "--phases"), ["kexec,disko,install"]);
        assert_eq!(value_after(argv, "-i"), [lab.key.display().to_string()]);
        let extra = lab.out.join("secrets/nodes").join(h);
        assert_eq!(
            value_after(argv, "--extra-files"),
            [extra.display().to_string()]
        );
        assert!(!argv.iter().any(|a| a == "--disk-encryption-keys"));
        // The probe's options reached nixos-anywhere too (and worked: the stand-in used them).
        let opts = value_after(argv, "--ssh-option");
        assert!(opts.contains(&"BatchMode=yes"), "{opts:?}");

        // The machine saw: looks, the report, the install, the reboot, then only looks until it
        // went away (the reboot runs in the background: its exit status proves nothing).
        let commands = lab.remote_commands(h);
        let installer: Vec<&str> = commands
            .iter()
            .filter_map(|c| c.strip_prefix("installer: "))
            .collect();
        let reboot = "nohup sh -c 'sleep 2; reboot' >/dev/null 2>&1 &";
        let at = installer
            .iter()
            .position(|c| *c == reboot)
            .expect("rebooted");
        assert_eq!(
            installer[at - 3..at],
            ["cat /etc/os-release", "nixos-facter", "plasma-lab-install"],
            "{commands:?}"
        );
        assert!(
            installer[at + 1..]
                .iter()
                .all(|c| *c == "cat /etc/os-release"),
            "{commands:?}"
        );
        let report = lab
            .out
            .join("flake/nodes")
            .join(format!("{h}.lab.example"))
            .join("facter.json");
        assert!(fs::read_to_string(&report).unwrap().contains("\"version\""));

        // Marked installed before the reboot, every step on the collector's record.
        let node = lab.collector_node(h);
        assert_eq!(node["installed"], true, "{node}");
        let mut history = node["history"].as_array().unwrap().clone();
        history.sort_by_key(|e| e["id"].as_i64());
        let steps: Vec<String> = history
            .iter()
            .filter(|e| e["kind"] == "provision" || e["kind"] == "mark-installed")
            .map(|e| {
                e["phase"]
                    .as_str()
                    .unwrap_or(e["kind"].as_str().unwrap())
                    .to_string()
            })
            .collect();
        let at = |s: &str| steps.iter().position(|x| x == s);
        assert!(
            at("mark-installed") < at("reboot") && at("install") < at("mark-installed"),
            "{steps:?}"
        );
    }

    // `plasmagen status` (and the dashboard, from the same document) shows where each node is.
    let mut status = lab.in_ns();
    status
        .arg(env!("CARGO_BIN_EXE_plasmagen"))
        .args(["status", "--collector"])
        .arg(format!("https://{}:8443", provision_lab::COLLECTOR_IP))
        .arg("--secrets")
        .arg(lab.out.join("secrets"));
    let o = provision_lab::run_bounded(status, Duration::from_secs(30));
    let table = String::from_utf8_lossy(&o.stdout);
    for n in &lab.nodes {
        assert!(
            table.lines().any(|l| l.contains(&n.hostname)
                && l.contains("provision done: installed by plasmagen provision")),
            "{table}"
        );
    }

    // The second run changes nothing: no power, no install.
    let before: Vec<_> = lab
        .nodes
        .iter()
        .map(|n| lab.bmc_actions(&n.hostname))
        .collect();
    let again = lab.provision(&["--bootstrap"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already installed"));
    let after: Vec<_> = lab
        .nodes
        .iter()
        .map(|n| lab.bmc_actions(&n.hostname))
        .collect();
    assert_eq!(before, after);
    assert_eq!(lab.installs().len(), 3);
}

#[test]
fn a_live_node_is_never_powered_or_installed() {
    let lab = Lab::new(&[("node01", false), ("node02", false)]);
    // node01: a system installed by other means (its own host key, not the generated one), and
    // the collector knows nothing about it: its os-release gives it away.
    let other_key = lab.dir.path().join("other_host_key");
    let o = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other_key)
        .output()
        .unwrap();
    assert!(o.status.success());
    fs::write(
        lab.machine_dir("node01").join("installed_host_key_path"),
        other_key.display().to_string(),
    )
    .unwrap();
    fs::write(lab.machine_dir("node01").join("installed"), "").unwrap();
    lab.boot("node01", "default");
    // node02: its own installed system claiming to be the installer: its host key gives it
    // away.
    fs::write(lab.machine_dir("node02").join("installed"), "").unwrap();
    fs::write(
        lab.machine_dir("node02").join("os-release.installed"),
        "ID=nixos\nVARIANT_ID=installer\n",
    )
    .unwrap();
    lab.boot("node02", "default");

    let o = lab.provision(&["node01", "node02"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("an installed system (NixOS 26.05 (Yarara))"),
        "{err}"
    );
    assert!(err.contains("its own host key"), "{err}");
    for h in ["node01", "node02"] {
        assert!(
            lab.bmc_actions(h).is_empty(),
            "{h}: {:?}",
            lab.bmc_actions(h)
        );
        assert_eq!(lab.remote_commands(h), ["installed: cat /etc/os-release"]);
    }
    assert!(lab.installs().is_empty());
}

#[test]
fn the_barrier_holds_when_a_founder_never_reaches_the_installer() {
    let lab = founders();
    fs::write(lab.machine_dir("node02").join("dead"), "").unwrap();
    let o = lab.provision(&["--bootstrap", "--installer-timeout", "6"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "barrier: node02 did not reach the installer; no founding member was installed"
        ),
        "{err}"
    );
    assert!(lab.installs().is_empty(), "{:?}", lab.installs());
    // The others were powered into their installers and left there, untouched.
    for h in ["node01", "node03"] {
        assert_eq!(lines(&lab.machine_dir(h).join("system")), ["installer"]);
    }
    assert!(err.contains("--resume node01 node02 node03"), "{err}");
}

#[test]
fn resume_continues_after_a_failed_install_without_powering_again() {
    let lab = Lab::new(&[("node01", false)]);
    fs::write(lab.dir.path().join("fail-next-install"), "").unwrap();
    let o = lab.provision(&["node01"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("install: nixos-anywhere failed"), "{err}");
    assert!(err.contains("simulated install failure"), "{err}");
    let log = lab.out.join("logs/node01/nixos-anywhere.log");
    assert!(
        fs::read_to_string(log)
            .unwrap()
            .contains("simulated install failure")
    );
    assert_eq!(lab.collector_node("node01")["installed"], false);

    let resume = err
        .lines()
        .find_map(|l| l.strip_prefix("resume with: "))
        .expect("a resume command");
    assert!(resume.ends_with("--resume node01"), "{resume}");
    let o = lab.provision(&["--resume", "node01"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(lab.installs().len(), 2);
    assert_eq!(
        lab.bmc_actions("node01")
            .iter()
            .filter(|c| *c == "power_on")
            .count(),
        1,
        "powered again on resume"
    );
    assert_eq!(lab.collector_node("node01")["installed"], true);
}

#[test]
fn dry_run_and_unconfirmed_reinstall_touch_nothing() {
    let lab = Lab::new(&[("node01", false)]);
    let o = lab.provision(&["node01", "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("chassis bootdev pxe options=efiboot"), "{out}");
    assert!(
        out.contains("--phases kexec,disko,install < /dev/null"),
        "{out}"
    );
    assert!(!out.contains(provision_lab::BMC_PASSWORD), "{out}");
    assert!(lab.bmc_calls("node01").is_empty());
    assert!(!lab.out.join("logs").exists());

    let o = lab.provision(&["node01", "--reinstall"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("confirm on a terminal or pass --yes"));
    assert!(lab.bmc_actions("node01").is_empty());
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn a_redfish_bmc_boots_the_machine_into_the_installer_once() {
    // sushy-tools applies power changes 1-11 s after the request (its fake driver).
    let lab = Lab::with_redfish(&[("node01", false)], &["node01"]);
    let system = lab.redfish_system("node01");
    assert_eq!(system["PowerState"], "Off");
    let o = lab.provision(&["node01", "--installer-timeout", "60"]);
    assert!(o.status.success(), "{}", text(&o));
    let system = lab.redfish_system("node01");
    assert_eq!(system["PowerState"], "On");
    assert_eq!(system["Boot"]["BootSourceOverrideTarget"], "Pxe");
    assert_eq!(system["Boot"]["BootSourceOverrideMode"], "UEFI");
    assert_eq!(lab.boots("node01", 2), ["boot network", "boot default"]);
    assert_eq!(lab.installs().len(), 1);
    assert_eq!(lab.collector_node("node01")["installed"], true);
    // The emulator's log: the override, then one reset to On; the password nowhere.
    let log = lab.redfish["node01"].log();
    assert!(log.contains("PATCH /redfish/v1/Systems/"), "{log}");
    assert_eq!(log.matches("POST /redfish/v1/Systems/").count(), 1, "{log}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains(provision_lab::BMC_PASSWORD), "{err}");
}

#[test]
fn a_reboot_that_never_happens_fails_the_node() {
    let lab = Lab::new(&[("node01", false)]);
    fs::write(lab.machine_dir("node01").join("ignores-reboot"), "").unwrap();
    let o = lab.provision(&["node01", "--installer-timeout", "5"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("reboot: the installer still answers 5 s after the reboot command"),
        "{err}"
    );
    // Marked installed already (before the reboot, on purpose); resume retries the reboot.
    assert_eq!(lab.collector_node("node01")["installed"], true);
    fs::remove_file(lab.machine_dir("node01").join("ignores-reboot")).unwrap();
    let o = lab.provision(&["node01", "--resume"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(lab.installs().len(), 1, "resume installed again");
}
