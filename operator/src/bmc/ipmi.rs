//! IPMI 2.0 over LAN (RMCP+), through the `ipmitool` program (Debian package `ipmitool`):
//! every call runs `ipmitool -I lanplus -H <host> [-p <port>] -U <user> -E -N 1 -R 2 -v
//! <subcommand…>` and reads its output.
//!
//! Facts this relies on, from ipmitool's source (github.com/ipmitool/ipmitool at be11d948,
//! 1.8.19 plus fixes; checked against Debian 12's 1.8.19):
//! - The password is never an argument (`-P` would show in `ps` until ipmitool overwrites it):
//!   `-E` reads `IPMITOOL_PASSWORD`, else `IPMI_PASSWORD` (lib/ipmi_main.c:660-685,
//!   doc/ipmitool.1.in:120-122). The child gets `IPMI_PASSWORD` and loses any inherited
//!   `IPMITOOL_PASSWORD`; its environment is readable by its own user and root alone.
//! - `-N 1 -R 2`: 1 s before the first retransmission, 2 tries (doc/ipmitool.1.in:164-167,
//!   189-190; lanplus defaults 1 s and 4 tries, src/plugins/lanplus/lanplus.h:68-69): a BMC
//!   that never answers fails in about 6 s instead of 20. A 60 s deadline kills any hang.
//! - `-v` prints why a session failed (LOG_INFO, on stderr): "> RAKP 2 HMAC is invalid" (wrong
//!   password, src/plugins/lanplus/lanplus.c:3133), "RAKP 2 message indicates an error :
//!   unauthorized name" (lanplus.c:3110). Without it both read only "Error: Unable to establish
//!   IPMI v2 / RMCP+ session" (lanplus.c:3591), as for a BMC that never answers.
//! - `chassis power status` prints "Chassis Power is on|off" (lib/ipmi_chassis.c:206).
//! - `chassis bootdev pxe` sends boot flags with only the valid bit and device 0x04 (PXE)
//!   (ipmi_chassis.c:1237, 1245-1248, 1287): "persistent" (bit 6) stays 0, so the BMC uses it
//!   for the next boot only; `options=efiboot` adds bit 5, EFI (ipmi_chassis.c:1711-1864, BF1_*
//!   at 58-71). Only `options=persistent` would make it permanent; never sent here.
//! - [`Bmc::power_cycle`] is `chassis power reset`, chassis control 03h "hard reset"
//!   (ipmi_chassis.c:1938-1941, include/ipmitool/ipmi_chassis.h:39-40): the trait's hard reset
//!   of a running machine, like Redfish's ForceRestart. `power cycle` (02h) removes power for
//!   at least 1 s instead. A BMC may refuse either on a machine that is off (IPMI completion
//!   code D5h): a protocol error.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{Action, Bmc, BmcError, BootMode, Credentials, PowerState};

const PROGRAM: &str = "ipmitool";
/// Options after the credentials: retransmission timeout, tries, and the session diagnostics.
const TIMING: [&str; 5] = ["-N", "1", "-R", "2", "-v"];
const DEADLINE: Duration = Duration::from_secs(60);
const MASK: &str = "********";

/// ipmitool's messages when the BMC refused the user, the password or the role (lanplus.c:3110,
/// 3133, 3284; lanplus_strings.c). pyghmi, virtualbmc and some BMCs never answer the RAKP 1 of
/// an unknown user, after answering the session request: that is a refusal too.
const AUTH_MARKERS: &[&str] = &[
    "HMAC is invalid",
    "unauthorized", // name, role or GUID
    "invalid name length",
    "invalid integrity check value",
    "no response from RAKP 1 message",
    "Set Session Privilege Level to ADMINISTRATOR failed",
];
/// Nothing answered, or the name did not resolve (src/plugins/ipmi_intf.c:380).
const UNREACHABLE_MARKERS: &[&str] = &[
    "Get Auth Capabilities error",
    "Unable to establish IPMI v2 / RMCP+ session",
    "Address lookup for",
    "Could not open socket",
];
/// What `-v` prints on every successful session, left out of error reasons.
const NOISE: &[&str] = &[
    "Loading IANA PEN Registry",
    "Using best available cipher suite",
    "Running Get VSO Capabilities",
    "Discovered IPMB address",
];

/// One BMC reached with `ipmitool -I lanplus`.
pub struct Ipmi {
    host: String,
    port: Option<u16>,
    credentials: Credentials,
    program: Option<PathBuf>,
}

impl Ipmi {
    /// `address` is a host name or IP, with an optional `:port` (`[v6]:port` for IPv6); the
    /// port defaults to ipmitool's, 623.
    pub fn new(address: &str, credentials: Credentials) -> Ipmi {
        let (host, port) = split_address(address);
        Ipmi {
            host,
            port,
            credentials,
            program: None,
        }
    }

    /// Runs this ipmitool instead of the one found on PATH.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Ipmi {
        self.program = Some(program.into());
        self
    }

    fn name(&self) -> String {
        match self.port {
            Some(port) if self.host.contains(':') => format!("ipmi [{}]:{port}", self.host),
            Some(port) => format!("ipmi {}:{port}", self.host),
            None => format!("ipmi {}", self.host),
        }
    }

    /// ipmitool's arguments: never the password.
    fn args(&self, subcommand: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["-I", "lanplus", "-H", &self.host].map(String::from).into();
        if let Some(port) = self.port {
            args.extend(["-p".to_string(), port.to_string()]);
        }
        args.extend(["-U", &self.credentials.username, "-E"].map(String::from));
        args.extend(TIMING.iter().chain(subcommand).map(|a| a.to_string()));
        args
    }

    fn program(&self) -> Result<PathBuf, BmcError> {
        let found = match &self.program {
            Some(program) => Some(program.clone()).filter(|p| is_executable(p)),
            None => find_on_path(PROGRAM, std::env::var_os("PATH").as_deref()),
        };
        found.ok_or(BmcError::MissingTool {
            tool: PROGRAM,
            package: PROGRAM,
        })
    }

    /// Runs one subcommand and returns its stdout.
    fn run(&self, subcommand: &[&str]) -> Result<String, BmcError> {
        let program = self.program()?;
        tracing::debug!(bmc = %self.name(), "{}", self.command_line(subcommand));
        let mut child = Command::new(&program)
            .args(self.args(subcommand))
            .env_remove("IPMITOOL_PASSWORD")
            .env("IPMI_PASSWORD", self.credentials.password.expose())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.protocol(format!("cannot run {}: {e}", program.display())))?;
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let status = wait(&mut child);
        let (stdout, stderr) = (stdout.join(), stderr.join());
        match status {
            Some(status) if status.success() => Ok(stdout.unwrap_or_default()),
            Some(status) => Err(self.failure(subcommand, status, &stderr.unwrap_or_default())),
            None => Err(self.unreachable(format!("no answer within {} s", DEADLINE.as_secs()))),
        }
    }

    fn failure(&self, subcommand: &[&str], status: ExitStatus, stderr: &str) -> BmcError {
        let (bmc, command) = (self.name(), subcommand.join(" "));
        let reason = self.redact(&reason(stderr));
        if AUTH_MARKERS.iter().any(|m| stderr.contains(m)) {
            let username = self.credentials.username.clone();
            BmcError::Auth { bmc, username }
        } else if !stderr.contains("Error in open session response")
            && UNREACHABLE_MARKERS.iter().any(|m| stderr.contains(m))
        {
            BmcError::Unreachable { bmc, reason }
        } else if reason.is_empty() {
            self.protocol(format!("ipmitool {command} exited with {status}"))
        } else {
            self.protocol(format!("ipmitool {command}: {reason}"))
        }
    }

    fn unreachable(&self, reason: String) -> BmcError {
        let bmc = self.name();
        BmcError::Unreachable { bmc, reason }
    }

    fn protocol(&self, reason: String) -> BmcError {
        let bmc = self.name();
        BmcError::Protocol { bmc, reason }
    }

    /// ipmitool never sees the password, so it cannot print it; masked anyway, in case.
    fn redact(&self, text: &str) -> String {
        match self.credentials.password.expose() {
            "" => text.to_string(),
            secret => text.replace(secret, MASK),
        }
    }

    fn command_line(&self, subcommand: &[&str]) -> String {
        let args = self.args(subcommand);
        let words: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        format!("IPMI_PASSWORD={MASK} {PROGRAM} {}", words.join(" "))
    }
}

fn subcommand(action: Action) -> &'static [&'static str] {
    match action {
        Action::PowerState => &["chassis", "power", "status"],
        Action::PxeBootOnce(BootMode::Uefi) => &["chassis", "bootdev", "pxe", "options=efiboot"],
        Action::PxeBootOnce(BootMode::Legacy) => &["chassis", "bootdev", "pxe"],
        Action::PowerOn => &["chassis", "power", "on"],
        Action::PowerCycle => &["chassis", "power", "reset"],
        Action::PowerOff => &["chassis", "power", "off"],
    }
}

impl Bmc for Ipmi {
    fn describe(&self) -> String {
        let user = &self.credentials.username;
        format!("{} (lanplus, user {user})", self.name())
    }

    fn power_state(&self) -> Result<PowerState, BmcError> {
        let out = self.run(subcommand(Action::PowerState))?;
        match out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Chassis Power is "))
        {
            Some("on") => Ok(PowerState::On),
            Some("off") => Ok(PowerState::Off),
            _ => Err(self.protocol(format!("unexpected power status {:?}", out.trim()))),
        }
    }

    fn pxe_boot_once(&self, mode: BootMode) -> Result<(), BmcError> {
        self.run(subcommand(Action::PxeBootOnce(mode))).map(drop)
    }

    fn power_on(&self) -> Result<(), BmcError> {
        self.run(subcommand(Action::PowerOn)).map(drop)
    }

    fn power_cycle(&self) -> Result<(), BmcError> {
        self.run(subcommand(Action::PowerCycle)).map(drop)
    }

    fn power_off(&self) -> Result<(), BmcError> {
        self.run(subcommand(Action::PowerOff)).map(drop)
    }

    fn plan(&self, action: Action) -> Vec<String> {
        vec![self.command_line(subcommand(action))]
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; a bare IPv6 address has no port.
pub fn split_address(address: &str) -> (String, Option<u16>) {
    let address = address.trim();
    if let Some(rest) = address.strip_prefix('[')
        && let Some((host, tail)) = rest.split_once(']')
    {
        return (
            host.to_string(),
            tail.strip_prefix(':').and_then(|p| p.parse().ok()),
        );
    }
    match address.split_once(':') {
        Some((host, port)) if !port.contains(':') => match port.parse() {
            Ok(port) => (host.to_string(), Some(port)),
            Err(_) => (address.to_string(), None),
        },
        _ => (address.to_string(), None),
    }
}

fn find_on_path(program: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `child`'s exit status, or None after killing it at the deadline.
fn wait(child: &mut Child) -> Option<ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < DEADLINE {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// ipmitool's stderr without `-v`'s session chatter, one line per message.
fn reason(stderr: &str) -> String {
    let mut lines = Vec::new();
    let mut after_vso_probe = false;
    for line in stderr.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // The VSO probe's "Invalid completion code/data field received" (ipmi_vita.c:187-205).
        let probe_answer = after_vso_probe && line.starts_with("Invalid ");
        after_vso_probe = line.starts_with("Running Get VSO Capabilities");
        if !probe_answer && !NOISE.iter().any(|n| line.starts_with(n)) {
            lines.push(line);
        }
    }
    lines.join("; ")
}

fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.,:/=@%+[]".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bmc::Password;

    fn ipmi(address: &str, username: &str, password: &str) -> Ipmi {
        let password = Password::new(password);
        Ipmi::new(
            address,
            Credentials {
                username: username.into(),
                password,
            },
        )
    }

    #[test]
    fn the_password_is_no_argument_and_plans_quote_for_the_shell() {
        let args = ipmi("bmc-7:6230", "admin", "hunter2").args(&["chassis", "power", "on"]);
        assert!(!args.iter().any(|a| a.contains("hunter2") || a == "-P"));
        assert_eq!(
            args[..8],
            ["-I", "lanplus", "-H", "bmc-7", "-p", "6230", "-U", "admin"]
        );
        let plan = ipmi("bmc-7", "o'neil x", "hunter2").plan(Action::PowerOn);
        assert!(
            plan[0].contains(r"-H bmc-7 -U 'o'\''neil x' -E"),
            "{plan:?}"
        );
        assert!(!plan[0].contains("hunter2"));
    }

    #[test]
    fn addresses_with_and_without_ports() {
        assert_eq!(split_address("10.0.10.54"), ("10.0.10.54".into(), None));
        assert_eq!(split_address("bmc:6230"), ("bmc".into(), Some(6230)));
        assert_eq!(split_address("fd00::5"), ("fd00::5".into(), None));
        assert_eq!(
            split_address("[fd00::5]:623"),
            ("fd00::5".into(), Some(623))
        );
        assert_eq!(
            ipmi("[fd00::5]:623", "admin", "x").name(),
            "ipmi [fd00::5]:623"
        );
    }

    #[test]
    fn stderr_decides_the_error_kind() {
        let bmc = ipmi("10.0.10.54", "admin", "hunter2");
        let status = Command::new("false").status().unwrap();
        let setup = "Loading IANA PEN Registry...\nUsing best available cipher suite 3\n\n";
        let wrong_password = format!(
            "{setup}> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n"
        );
        let silent =
            "Get Auth Capabilities error\nError: Unable to establish IPMI v2 / RMCP+ session\n";
        let refused = format!(
            "{setup}Running Get VSO Capabilities my_addr 0x20, transit 0, target 0x20\n\
             Invalid completion code received: Invalid command\nDiscovered IPMB address 0x0\n\
             Set Chassis Power Control to Reset failed: Command not supported in present state\n"
        );
        let kind = |stderr: &str| bmc.failure(&["chassis", "power", "reset"], status, stderr);
        assert!(matches!(kind(&wrong_password), BmcError::Auth { .. }));
        assert!(matches!(kind(silent), BmcError::Unreachable { .. }));
        let refused = kind(&refused).to_string();
        let expected = "ipmi 10.0.10.54: ipmitool chassis power reset: Set Chassis Power Control \
                        to Reset failed: Command not supported in present state";
        assert_eq!(refused, expected);
        let echo = kind("Error: echo hunter2\n").to_string();
        assert!(echo.ends_with("echo ********"), "{echo}");
    }

    #[test]
    fn ipmitool_is_looked_up_on_path() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find_on_path("ipmitool", Some(dir.path().as_os_str())), None);
        assert_eq!(find_on_path("ipmitool", None), None);
        let missing = ipmi("10.0.10.54", "admin", "x").with_program(dir.path().join("ipmitool"));
        let err = missing.power_on().unwrap_err().to_string();
        assert_eq!(
            err,
            "ipmitool not found on PATH (install the Debian package ipmitool)"
        );
    }
}
