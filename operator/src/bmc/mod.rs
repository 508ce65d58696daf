//! Baseboard management controllers: power and one-shot network boot, whatever the protocol.
//! Each protocol is one module implementing [`Bmc`]: [`redfish`] (DMTF Redfish over HTTPS),
//! [`ipmi`] (IPMI 2.0 over LAN through `ipmitool -I lanplus`) and [`manual`] (a person at the
//! machine). Drivers block; callers that drive many machines run them on threads.
//! Passwords live in [`Password`], which never prints.

pub mod ipmi;
pub mod manual;
pub mod redfish;

use std::fmt;
use std::path::PathBuf;

/// A machine's power as its BMC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    On,
    Off,
    /// The BMC cannot say (the manual driver, or a state between on and off).
    Unknown,
}

/// The firmware mode of the one-shot network boot: a UEFI machine asked for a legacy PXE
/// boot may ignore the request or boot the wrong loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMode {
    Uefi,
    Legacy,
}

/// What an operator command asks of a BMC; [`Bmc::plan`] shows it without doing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    PowerState,
    PxeBootOnce(BootMode),
    PowerOn,
    /// A hard reset of a running machine.
    PowerCycle,
    PowerOff,
}

/// A secret that never appears in `Debug` or `Display` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(secret: impl Into<String>) -> Password {
        Password(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(********)")
    }
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Password,
}

/// How a Redfish BMC's HTTPS certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Against the system roots plus `ca_file` when given.
    Verify { ca_file: Option<PathBuf> },
    /// Not at all: for BMCs with self-signed certificates, chosen per BMC in the inventory,
    /// and warned about every time.
    Insecure,
}

#[derive(Debug, thiserror::Error)]
pub enum BmcError {
    #[error("{bmc}: unreachable: {reason}")]
    Unreachable { bmc: String, reason: String },
    #[error("{bmc}: the BMC refused the credentials of {username:?}")]
    Auth { bmc: String, username: String },
    #[error("{bmc}: {reason}")]
    Protocol { bmc: String, reason: String },
    #[error("{tool} not found on PATH (install the Debian package {package})")]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("{bmc}: {what} is not possible through this driver")]
    Unsupported { bmc: String, what: &'static str },
}

/// One machine's BMC.
pub trait Bmc: Send + Sync {
    /// Protocol and address, for logs and prompts (`redfish https://10.0.10.50 (System 1)`).
    fn describe(&self) -> String;
    fn power_state(&self) -> Result<PowerState, BmcError>;
    /// Boot from the network once, in `mode`; the boot order stays as it is.
    fn pxe_boot_once(&self, mode: BootMode) -> Result<(), BmcError>;
    fn power_on(&self) -> Result<(), BmcError>;
    /// Hard reset of a running machine.
    fn power_cycle(&self) -> Result<(), BmcError>;
    fn power_off(&self) -> Result<(), BmcError>;
    /// The requests or commands `action` sends, one per line, without any secret (--dry-run).
    fn plan(&self, action: Action) -> Vec<String>;
}
