//! The Redfish driver against the real sushy-tools emulator (fake driver, two systems: one
//! UEFI and off, one legacy BIOS and on), checked with the emulator's own view of the system.
//! Needs the venv of scripts/test.sh ($PLASMA_BMC_PYTHON) and openssl.

#[path = "support/redfish/capture.rs"]
mod capture;
#[path = "support/redfish/certs.rs"]
mod certs;
#[path = "support/redfish/emulator.rs"]
mod emulator;

use std::thread;
use std::time::{Duration, Instant};

use capture::Capture;
use emulator::{Emulator, LEGACY_ID, Options, PASSWORD, UEFI_ID, USER};
use plasma_operator::bmc::redfish::Redfish;
use plasma_operator::bmc::{
    Action, Bmc, BmcError, BootMode, Credentials, Password, PowerState, Tls,
};

/// sushy's fake driver applies a power change 1 to 11 s after the request.
const POWER_WITHIN: Duration = Duration::from_secs(15);
const VERIFY: Tls = Tls::Verify { ca_file: None };

fn credentials(password: &str) -> Option<Credentials> {
    Some(Credentials {
        username: USER.to_owned(),
        password: Password::new(password),
    })
}

fn driver(emulator: &Emulator, system: Option<&str>) -> Redfish {
    Redfish::new(
        &emulator.base,
        credentials(PASSWORD),
        system.map(str::to_owned),
        VERIFY,
    )
    .unwrap()
}

/// Neither the driver nor `error` show `secret`, whichever way they are printed.
fn assert_no_secret(redfish: &Redfish, error: &BmcError, secret: &str) {
    for text in [
        format!("{redfish:?}"),
        redfish.describe(),
        format!("{error}"),
        format!("{error:?}"),
    ] {
        assert!(!text.contains(secret), "the password shows in {text}");
    }
    eprintln!("{error}");
}

#[test]
fn pxe_boot_once_sets_the_override_in_each_firmware_mode() {
    let emulator = Emulator::start(Options::default());
    let base = &emulator.base;
    let uefi = driver(&emulator, Some(UEFI_ID));
    let legacy = driver(&emulator, Some(LEGACY_ID));
    assert_eq!(
        emulator.system(UEFI_ID)["Boot"]["BootSourceOverrideTarget"],
        "Hdd"
    );
    assert_eq!(uefi.power_state().unwrap(), PowerState::Off);
    assert_eq!(legacy.power_state().unwrap(), PowerState::On);
    assert_eq!(
        uefi.describe(),
        format!("redfish {base} (System {UEFI_ID})")
    );

    let capture = Capture::default();
    capture
        .during(|| uefi.pxe_boot_once(BootMode::Uefi))
        .unwrap();
    let boot = &emulator.system(UEFI_ID)["Boot"];
    assert_eq!(boot["BootSourceOverrideTarget"], "Pxe");
    assert_eq!(boot["BootSourceOverrideMode"], "UEFI");
    // sushy-tools ignores BootSourceOverrideEnabled and always reports Continuous; the
    // driver accepts that with a warning (a BMC reporting Disabled fails the call).
    assert_eq!(boot["BootSourceOverrideEnabled"], "Continuous");
    let lines = capture.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("WARN") && l.contains("continuous, not once")),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains(PASSWORD)), "{lines:?}");
    eprintln!("logged:\n{}", lines.join("\n"));

    legacy.pxe_boot_once(BootMode::Legacy).unwrap();
    let boot = &emulator.system(LEGACY_ID)["Boot"];
    assert_eq!(boot["BootSourceOverrideTarget"], "Pxe");
    assert_eq!(boot["BootSourceOverrideMode"], "Legacy");
    assert_eq!(
        emulator.system(UEFI_ID)["Boot"]["BootSourceOverrideMode"],
        "UEFI"
    );

    // Once discovered, the plan names the real resources; never the password.
    let system = format!("{base}/redfish/v1/Systems/{UEFI_ID}");
    let patch = r#"{"Boot":{"BootSourceOverrideEnabled":"Once","BootSourceOverrideMode":"UEFI","BootSourceOverrideTarget":"Pxe"}}"#;
    assert_eq!(
        uefi.plan(Action::PxeBootOnce(BootMode::Uefi)),
        [
            format!("# HTTP Basic authentication as {USER:?}"),
            format!("GET {system}"),
            format!("PATCH {system} {patch}"),
            format!("GET {system}"),
        ]
    );
    assert_eq!(
        uefi.plan(Action::PowerCycle)[1],
        format!(r#"POST {system}/Actions/ComputerSystem.Reset {{"ResetType":"ForceRestart"}}"#)
    );
}

#[test]
fn power_on_cycle_and_off_reach_their_states() {
    // One emulator per action, in parallel: each change lands 1-11 s after its request.
    thread::scope(|scope| {
        scope.spawn(|| {
            // A BMC with a single system needs no system id.
            let emulator = Emulator::start(Options {
                only: Some("node-uefi"),
                ..Options::default()
            });
            let redfish = driver(&emulator, None);
            redfish.power_on().unwrap();
            let took = emulator.wait_power(UEFI_ID, "On", POWER_WITHIN);
            eprintln!("power_on: On after {took:?}");
            assert_eq!(redfish.power_state().unwrap(), PowerState::On);
            assert_eq!(
                redfish.describe(),
                format!("redfish {} (System {UEFI_ID})", emulator.base)
            );
        });
        scope.spawn(|| {
            let emulator = Emulator::start(Options {
                notify: true,
                ..Options::default()
            });
            let redfish = driver(&emulator, Some(LEGACY_ID));
            redfish.power_cycle().unwrap();
            // The fake driver notifies synchronously: a ForceRestart is pending, the system
            // is off until it applies.
            let seen = emulator.notifications();
            assert!(
                seen.iter().any(|n| n["uuid"] == LEGACY_ID
                    && n["power_state"] == "Off"
                    && n["pending_power"]["power_state"] == "ForceRestart"),
                "{seen:?}"
            );
            let took = emulator.wait_power(LEGACY_ID, "On", POWER_WITHIN);
            eprintln!("power_cycle: On again after {took:?}");
            let seen = emulator.notifications();
            let last = seen.last().unwrap();
            assert_eq!(last["power_state"], "On", "{last}");
            assert!(last["pending_power"].is_null(), "{last}");
        });
        scope.spawn(|| {
            let emulator = Emulator::start(Options::default());
            let redfish = driver(&emulator, Some(LEGACY_ID));
            redfish.power_off().unwrap();
            let took = emulator.wait_power(LEGACY_ID, "Off", POWER_WITHIN);
            eprintln!("power_off: Off after {took:?}");
            assert_eq!(redfish.power_state().unwrap(), PowerState::Off);
            // The other system was left alone.
            assert_eq!(emulator.system(UEFI_ID)["PowerState"], "Off");
        });
    });
}

#[test]
fn the_system_is_named_when_the_bmc_has_several_and_must_exist() {
    let emulator = Emulator::start(Options::default());
    for (system, expected) in [
        (None, "several ComputerSystems"),
        (
            Some("System.Embedded.1"),
            "no ComputerSystem has the Id \"System.Embedded.1\"",
        ),
    ] {
        let redfish = driver(&emulator, system);
        let error = redfish.power_on().unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, BmcError::Protocol { .. }), "{error:?}");
        for needle in [expected, UEFI_ID, LEGACY_ID] {
            assert!(text.contains(needle), "{needle} missing in: {text}");
        }
        assert_no_secret(&redfish, &error, PASSWORD);
    }
    // Nothing was done to either system.
    assert_eq!(emulator.system(UEFI_ID)["PowerState"], "Off");
    assert_eq!(emulator.system(LEGACY_ID)["PowerState"], "On");
}

#[test]
fn refused_credentials_are_an_auth_error_and_no_password_shows() {
    let emulator = Emulator::start(Options::default());
    let wrong = "Wrong-pw-4411";
    let redfish = Redfish::new(
        &emulator.base,
        credentials(wrong),
        Some(UEFI_ID.into()),
        VERIFY,
    )
    .unwrap();
    let error = redfish.pxe_boot_once(BootMode::Uefi).unwrap_err();
    match &error {
        BmcError::Auth { username, .. } => assert_eq!(username, USER),
        other => panic!("not an auth error: {other:?}"),
    }
    assert_no_secret(&redfish, &error, wrong);
    assert_eq!(
        emulator.system(UEFI_ID)["Boot"]["BootSourceOverrideTarget"],
        "Hdd"
    );

    let anonymous = Redfish::new(&emulator.base, None, None, VERIFY).unwrap();
    let error = anonymous.power_state().unwrap_err();
    assert!(matches!(error, BmcError::Auth { .. }), "{error:?}");

    let right = driver(&emulator, Some(UEFI_ID));
    right.power_state().unwrap();
    assert!(!format!("{right:?}").contains(PASSWORD));
}

#[test]
fn a_port_with_nothing_listening_is_unreachable_at_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redfish = Redfish::new(
        &format!("http://127.0.0.1:{port}"),
        credentials(PASSWORD),
        Some("1".into()),
        VERIFY,
    )
    .unwrap();
    let start = Instant::now();
    let error = redfish.power_on().unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(error, BmcError::Unreachable { .. }), "{error:?}");
    assert_no_secret(&redfish, &error, PASSWORD);
}

#[test]
fn tls_is_checked_against_the_ca_file_and_insecure_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certs::make(dir.path());
    let emulator = Emulator::start(Options {
        tls: Some((cert, key)),
        ..Options::default()
    });
    let base = &emulator.base;
    let connect = |tls: Tls| Redfish::new(base, credentials(PASSWORD), Some(UEFI_ID.into()), tls);

    let checked = connect(Tls::Verify { ca_file: Some(ca) }).unwrap();
    assert_eq!(checked.power_state().unwrap(), PowerState::Off);

    let unknown_ca = connect(VERIFY).unwrap();
    let error = unknown_ca.power_state().unwrap_err();
    assert!(
        matches!(&error, BmcError::Protocol { reason, .. } if reason.starts_with("TLS:")),
        "{error}"
    );
    assert_no_secret(&unknown_ca, &error, PASSWORD);

    let capture = Capture::default();
    let insecure = capture.during(|| connect(Tls::Insecure)).unwrap();
    assert_eq!(insecure.power_state().unwrap(), PowerState::Off);
    let lines = capture.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("WARN") && l.contains(&format!("bmc={base}"))),
        "{lines:?}"
    );

    let missing = dir.path().join("no-such-ca.pem");
    let not_pem = dir.path().join("bmc.csr.txt");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    for ca_file in [missing, not_pem] {
        let error = connect(Tls::Verify {
            ca_file: Some(ca_file.clone()),
        })
        .unwrap_err();
        assert!(
            error.to_string().contains(&ca_file.display().to_string()),
            "{error}"
        );
    }
}

#[test]
fn plans_show_requests_without_any_network_io_or_password() {
    let planned = |system: Option<&str>| {
        let redfish = Redfish::new(
            "https://10.0.10.50/",
            credentials(PASSWORD),
            system.map(str::to_owned),
            VERIFY,
        )
        .unwrap();
        let plan = redfish.plan(Action::PowerOn);
        assert!(plan.iter().all(|l| !l.contains(PASSWORD)), "{plan:?}");
        assert!(
            plan[0].starts_with("# first GET https://10.0.10.50/redfish/v1/"),
            "{plan:?}"
        );
        plan[2].clone()
    };
    let reset = r#"/Actions/ComputerSystem.Reset {"ResetType":"On"}"#;
    let systems = "POST https://10.0.10.50/redfish/v1/Systems";
    assert_eq!(
        planned(Some("System.Embedded.1")),
        format!("{systems}/System.Embedded.1{reset}")
    );
    assert_eq!(planned(None), format!("{systems}/<system>{reset}"));

    for bad in [
        "https://root:calvin@10.0.10.50",
        "10.0.10.50",
        "https://10.0.10.50/redfish/v1",
    ] {
        let error = Redfish::new(bad, None, None, VERIFY).unwrap_err();
        assert!(!error.to_string().contains("calvin"), "{error}");
    }
}
