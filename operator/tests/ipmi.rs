//! The IPMI driver running the real `ipmitool -I lanplus` against an emulated IPMI 2.0 BMC
//! (pyghmi's BMC server, lab/bmc/fake_bmc.py) on a loopback port, checked with the
//! emulator's own log of the calls it received. Needs ipmitool and the venv of scripts/test.sh
//! ($PLASMA_BMC_PYTHON).

#[path = "support/ipmi/mod.rs"]
mod fake;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use fake::FakeBmc;
use plasma_operator::bmc::ipmi::Ipmi;
use plasma_operator::bmc::{Action, Bmc, BmcError, BootMode, Credentials, Password, PowerState};
use serde_json::json;

const USER: &str = "admin";
// A space and shell metacharacters: the password must arrive intact through the environment.
const PASSWORD: &str = "pw Zq7$'x9\"!";

fn ipmi(address: &str, user: &str, password: &str) -> Ipmi {
    let credentials = Credentials {
        username: user.into(),
        password: Password::new(password),
    };
    Ipmi::new(address, credentials)
}

/// Neither the Display nor the Debug text of `err` shows the password.
fn assert_no_secret(err: &BmcError) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(PASSWORD) && !text.contains("Zq7"), "{text}");
    }
}

#[test]
fn power_and_one_shot_pxe_reach_the_emulated_bmc() {
    let emulator = FakeBmc::start(USER, PASSWORD);
    let bmc = ipmi(&emulator.address(), USER, PASSWORD);
    assert_eq!(
        bmc.describe(),
        format!("ipmi 127.0.0.1:{} (lanplus, user admin)", emulator.port)
    );

    assert_eq!(bmc.power_state().unwrap(), PowerState::Off);
    bmc.power_on().unwrap();
    assert_eq!(
        emulator.calls_named(0, "power_on"),
        [json!({"call": "power_on", "before": "off"})]
    );
    assert_eq!(bmc.power_state().unwrap(), PowerState::On);
    let states = emulator.calls_named(0, "get_power_state");
    assert_eq!(states.len(), 2, "{states:?}");
    assert_eq!(
        (&states[0]["state"], &states[1]["state"]),
        (&json!("off"), &json!("on"))
    );

    // One-shot network boot: the boot flags arrive valid, not persistent, EFI or legacy.
    let mark = emulator.calls().len();
    bmc.pxe_boot_once(BootMode::Uefi).unwrap();
    assert_eq!(
        emulator.calls_named(mark, "boot_flags"),
        [json!({"call": "boot_flags", "valid": true, "persistent": false, "uefi": true})]
    );
    assert_eq!(
        emulator.calls_named(mark, "set_boot_device"),
        [json!({"call": "set_boot_device", "device": "network"})]
    );
    let mark = emulator.calls().len();
    bmc.pxe_boot_once(BootMode::Legacy).unwrap();
    assert_eq!(
        emulator.calls_named(mark, "boot_flags"),
        [json!({"call": "boot_flags", "valid": true, "persistent": false, "uefi": false})]
    );
    assert_eq!(
        emulator.calls_named(mark, "set_boot_device")[0]["device"],
        "network"
    );

    // power_cycle is the hard reset (chassis control 03h), of a running machine.
    bmc.power_cycle().unwrap();
    assert_eq!(
        emulator.calls_named(0, "power_reset"),
        [json!({"call": "power_reset", "before": "on"})]
    );
    assert!(emulator.calls_named(0, "power_cycle").is_empty());

    bmc.power_off().unwrap();
    assert_eq!(
        emulator.calls_named(0, "power_off"),
        [json!({"call": "power_off", "before": "on"})]
    );
    assert_eq!(bmc.power_state().unwrap(), PowerState::Off);

    // The BMC refuses a reset of a machine that is off (IPMI completion code D5h).
    let err = bmc.power_cycle().unwrap_err();
    let expected = "ipmitool chassis power reset: Set Chassis Power Control to Reset failed: \
                    Command not supported in present state";
    assert!(
        matches!(&err, BmcError::Protocol { reason, .. } if reason == expected),
        "{err:?}"
    );
    assert_no_secret(&err);
}

#[test]
fn refused_credentials_are_auth_errors() {
    let emulator = FakeBmc::start(USER, PASSWORD);
    // A wrong password: pyghmi answers RAKP 1 with an HMAC keyed by the right one, which
    // ipmitool rejects ("RAKP 2 HMAC is invalid").
    let started = Instant::now();
    let err = ipmi(&emulator.address(), USER, "not the password")
        .power_on()
        .unwrap_err();
    assert!(
        matches!(&err, BmcError::Auth { username, .. } if username == USER),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_no_secret(&err);

    // An unknown user: pyghmi never answers its RAKP 1 (some BMCs do the same).
    let err = ipmi(&emulator.address(), "mallory", PASSWORD)
        .power_on()
        .unwrap_err();
    assert!(
        matches!(&err, BmcError::Auth { username, .. } if username == "mallory"),
        "{err:?}"
    );
    assert_no_secret(&err);
    assert!(
        emulator.calls_named(0, "power_on").is_empty(),
        "{:?}",
        emulator.calls()
    );
}

#[test]
fn nothing_listening_is_unreachable_within_seconds() {
    // A port just freed: the kernel answers ipmitool with ICMP port unreachable.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = ipmi(&format!("127.0.0.1:{port}"), USER, PASSWORD)
        .power_state()
        .unwrap_err();
    assert!(matches!(err, BmcError::Unreachable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    assert_no_secret(&err);
}

/// While ipmitool waits on a BMC that swallows every packet, no process on the machine shows
/// the password in its argv (what `ps` prints), and ipmitool's argv is the `-E` one.
#[test]
fn the_password_never_shows_in_any_command_line() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let running = Arc::new(AtomicBool::new(true));
    let watcher = {
        let running = running.clone();
        thread::spawn(move || {
            let mut seen = Vec::new();
            while running.load(Ordering::Relaxed) {
                for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                    let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                        continue;
                    };
                    let argv = String::from_utf8_lossy(&raw).replace('\0', " ");
                    assert!(
                        !argv.contains("Zq7"),
                        "a command line shows the password: {argv}"
                    );
                    if argv.starts_with("ipmitool ") || argv.contains("/ipmitool ") {
                        seen.push(argv);
                    }
                }
                thread::sleep(Duration::from_millis(50));
            }
            seen
        })
    };
    let err = ipmi(&address, USER, PASSWORD).power_on().unwrap_err();
    running.store(false, Ordering::Relaxed);
    let seen = watcher.join().expect("the /proc watcher");
    assert!(matches!(err, BmcError::Unreachable { .. }), "{err:?}");
    assert_no_secret(&err);
    let ours = seen
        .iter()
        .find(|argv| {
            argv.contains(&format!(
                "-H 127.0.0.1 -p {}",
                silent.local_addr().unwrap().port()
            ))
        })
        .unwrap_or_else(|| panic!("the watcher never saw our ipmitool: {seen:?}"));
    assert!(
        ours.contains(" -U admin -E ") && !ours.contains(" -P "),
        "{ours}"
    );
    drop(silent);
}

#[test]
fn plans_show_the_commands_without_the_password() {
    let bmc = ipmi("10.0.10.54", USER, PASSWORD);
    let line = |subcommand: &str| {
        format!(
            "IPMI_PASSWORD=******** ipmitool -I lanplus -H 10.0.10.54 -U admin -E -N 1 -R 2 -v \
             chassis {subcommand}"
        )
    };
    assert_eq!(
        bmc.plan(Action::PxeBootOnce(BootMode::Uefi)),
        [line("bootdev pxe options=efiboot")]
    );
    assert_eq!(
        bmc.plan(Action::PxeBootOnce(BootMode::Legacy)),
        [line("bootdev pxe")]
    );
    assert_eq!(bmc.plan(Action::PowerCycle), [line("power reset")]);
    assert_eq!(bmc.plan(Action::PowerState), [line("power status")]);
    for action in [
        Action::PowerState,
        Action::PxeBootOnce(BootMode::Legacy),
        Action::PowerOn,
        Action::PowerCycle,
        Action::PowerOff,
    ] {
        let plan = bmc.plan(action);
        assert_eq!(plan.len(), 1);
        assert!(!plan[0].contains("Zq7"), "{plan:?}");
    }
}
