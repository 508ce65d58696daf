//! The PXE test's lab: [`INVENTORY`] generated with the shipped `plasmagen`, served by
//! [`plasma_lab::pxe::Lab`] in a namespace of this test process, removed when it drops.

use std::path::Path;
use std::process::{Command, Stdio};

pub use plasma_lab::pxe::{Binaries, DISK_BYTES, Lab, LabSpec, Network, TAP, Work};

use super::{Result, diag_dir, err, initrd};

pub const PXE_SERVER: &str = "10.0.100.10";
/// The provisioning interface the inventory names and the DHCP server binds to.
pub const BRIDGE: &str = "br-prov";
pub const NODE01_MAC: &str = "52:54:00:12:34:56";
pub const NODE01_IP: &str = "10.0.100.50";

/// One control-plane node; the provisioning network is the lab's bridge.
pub const INVENTORY: &str = r#"
[cluster]
name = "e2e"
domain = "e2e.test"
bootstrap = ["node01"]
ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkd86f/K36q5Khr2jtCpqAhME6U6WYvfZ+SRxEj42Ve e2e@test"]
state_version = "24.11"
collector_url = "https://10.0.100.10:8443"

[networks.provisioning]
subnet = "10.0.100.0/24"
gateway = "10.0.100.1"
nameservers = ["10.0.100.1"]
dhcp_range = { start = "10.0.100.100", end = "10.0.100.200" }
pxe_server = "10.0.100.10"
interface = "br-prov"

[networks.production]
subnet = "10.0.200.0/24"
gateway = "10.0.200.1"
nameservers = ["10.0.200.1"]

[[nodes]]
hostname = "node01"
role = "control-plane"
mac = "52:54:00:12:34:56"
provisioning_ip = "10.0.100.50"
production_ip = "10.0.200.10"
disks = ["/dev/disk/by-id/virtio-E2EBIOS01"]
disk_layout = "single"
"#;

/// Builds (or finds up to date) the two binaries exactly as they ship: each package on its
/// own (`cargo build -p`, as nix/package.nix and bench/agent.sh do) and in the release profile,
/// in `target/shipped/`. Built together, Cargo's feature unification would give plasma-agent
/// plasmagen's reqwest features (a bundled TLS provider the shipped agent does not have):
/// the tested binary would not be the shipped one.
pub fn build_binaries() -> Result<Binaries> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("workspace root")?;
    let target = workspace.join("target/shipped");
    for package in ["plasmagen", "plasma-agent"] {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(workspace)
            .args([
                "build",
                "--quiet",
                "--release",
                "--locked",
                "-p",
                package,
                "--bin",
                package,
            ])
            .arg("--target-dir")
            .arg(&target);
        let status = cmd.status().map_err(|e| err!("{cmd:?}: {e}"))?;
        if !status.success() {
            return Err(err!("{cmd:?} failed ({status})"));
        }
    }
    let bins = Binaries {
        plasmagen: target.join("release/plasmagen"),
        agent: target.join("release/plasma-agent"),
    };
    for b in [&bins.plasmagen, &bins.agent] {
        if !b.is_file() {
            return Err(err!("{} missing after cargo build", b.display()));
        }
    }
    Ok(bins)
}

/// What a test lab serves: the inventory it generates from, the initrd its machines netboot,
/// and where its logs go.
#[derive(Debug, Clone)]
pub struct LabConfig {
    pub inventory: String,
    pub initrd: initrd::Kind,
    pub diag: std::path::PathBuf,
}

impl LabConfig {
    /// The PXE test's lab: [`INVENTORY`], the discovery initrd, logs in `target/e2e/`.
    pub fn pxe() -> LabConfig {
        LabConfig {
            inventory: INVENTORY.to_string(),
            initrd: initrd::Kind::Discover,
            diag: diag_dir(),
        }
    }
}

/// The PXE test's lab.
pub fn start(tools: super::tools::Tools, bins: Binaries) -> Result<Lab> {
    start_with(tools, bins, LabConfig::pxe())
}

/// Writes `config.inventory` to a temporary directory, generates from it with the shipped
/// `plasmagen`, and starts the lab on the [`BRIDGE`] with [`PXE_SERVER`]'s address.
pub fn start_with(tools: super::tools::Tools, bins: Binaries, config: LabConfig) -> Result<Lab> {
    let work = tempfile::Builder::new()
        .prefix("plasma-e2e-")
        .tempdir()
        .map_err(|e| err!("temp dir: {e}"))?;
    let w = work.path().to_path_buf();
    let inventory = w.join("inventory.toml");
    std::fs::write(&inventory, &config.inventory).map_err(|e| err!("{e}"))?;
    let out = Command::new(&bins.plasmagen)
        .arg("generate")
        .arg(&inventory)
        .arg("--out")
        .arg(w.join("out"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err!("plasmagen generate: {e}"))?;
    if !out.status.success() {
        return Err(err!(
            "plasmagen generate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let spec = LabSpec {
        ns_name: format!("plasma-e2e-{}", std::process::id()),
        work: Work::Temp(work),
        diag: config.diag,
        pxe: w.join("out/flake/pxe"),
        secrets: w.join("out/secrets"),
        inventory,
        network: Network {
            bridge: BRIDGE.into(),
            pxe_server: PXE_SERVER.into(),
            prefix_len: 24,
            collector_port: 8443,
            extra_addresses: Vec::new(),
        },
        initrd: config.initrd,
    };
    Lab::start(tools, bins, spec)
}
