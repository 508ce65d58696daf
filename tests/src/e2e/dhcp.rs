//! A DHCP server and client in two network namespaces joined by a veth pair, and busybox udhcpc
//! reporting what it was offered (tests/tests/dhcp_boot_selection.rs). The only link of either
//! namespace is that pair, so no DHCP packet, ping check or ARP leaves them.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::netns::{Daemon, Netns};
use super::tools::which;
use super::{Result, err, tail};

/// A program the test runs and the Debian package that provides it.
pub struct Need {
    pub program: &'static str,
    pub package: &'static str,
}

pub const IP: Need = Need {
    program: "ip",
    package: "iproute2",
};
pub const BUSYBOX: Need = Need {
    program: "busybox",
    package: "busybox-static",
};

/// Paths of `needs` in order; the error lists every missing program with its package.
pub fn find(needs: &[&Need]) -> Result<Vec<PathBuf>> {
    let found: Vec<Option<PathBuf>> = needs.iter().map(|n| which(n.program)).collect();
    let missing: Vec<&&Need> = needs
        .iter()
        .zip(&found)
        .filter_map(|(n, p)| p.is_none().then_some(n))
        .collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing
            .iter()
            .map(|n| format!("{} (Debian package {})", n.program, n.package))
            .collect();
        let packages: Vec<&str> = missing.iter().map(|n| n.package).collect();
        return Err(err!(
            "the DHCP boot-selection test needs programs that are not installed:\n  {}\n\
             install them with: apt-get install -y {}",
            list.join("\n  "),
            packages.join(" ")
        ));
    }
    Ok(found.into_iter().flatten().collect())
}

/// Network namespaces and veth pairs need root; CI runs the suite as root, so this fails
/// rather than skips.
pub fn require_root() -> Result<()> {
    let euid = rustix::process::geteuid();
    if !euid.is_root() {
        return Err(err!(
            "the DHCP boot-selection test must run as root (it creates network namespaces and a \
             veth pair); effective uid is {}. Run the test suite as root (CI does).",
            euid.as_raw()
        ));
    }
    Ok(())
}

/// The server namespace (interface `server_if` with `server_addr`) and the client namespace
/// (interface `client_if`, no address), joined by a veth pair. Deleting the namespaces on drop
/// deletes the pair.
pub struct Link {
    pub server: Netns,
    pub client: Netns,
    pub client_if: String,
}

impl Link {
    /// `prefix` must be unique among the tests running concurrently in this process.
    pub fn create(
        ip: &Path,
        prefix: &str,
        server_if: &str,
        server_cidr: &str,
        client_if: &str,
    ) -> Result<Link> {
        let server = Netns::create(ip, &format!("{prefix}-srv"))?;
        let client = Netns::create(ip, &format!("{prefix}-cli"))?;
        let link = Link {
            server,
            client,
            client_if: client_if.to_string(),
        };
        link.server.ip(&[
            "link",
            "add",
            server_if,
            "type",
            "veth",
            "peer",
            "name",
            client_if,
            "netns",
            link.client.name(),
        ])?;
        link.server
            .ip(&["addr", "add", server_cidr, "dev", server_if])?;
        link.server.ip(&["link", "set", server_if, "up"])?;
        link.client.ip(&["link", "set", client_if, "up"])?;
        Ok(link)
    }

    /// Gives the client interface another MAC (down, change, up: not every driver changes a
    /// running interface's address).
    pub fn set_client_mac(&self, mac: &str) -> Result<()> {
        let dev = self.client_if.as_str();
        self.client.ip(&["link", "set", "dev", dev, "down"])?;
        self.client
            .ip(&["link", "set", "dev", dev, "address", mac])?;
        self.client.ip(&["link", "set", "dev", dev, "up"])
    }
}

/// What a DHCP server acknowledged, as udhcpc's `bound` event saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub ip: Ipv4Addr,
    /// `siaddr` of the reply (next-server); `None` when 0.0.0.0.
    pub siaddr: Option<Ipv4Addr>,
    /// The `file` field of the reply; `None` when empty.
    pub boot_file: Option<String>,
    pub server_id: Option<Ipv4Addr>,
}

/// udhcpc's script: on `bound`, the variables the test checks, one `name=value` a line.
const SCRIPT: &str = "#!/bin/sh\n\
[ \"$1\" = bound ] || exit 0\n\
{\n\
  echo \"ip=$ip\"\n\
  echo \"siaddr=$siaddr\"\n\
  echo \"boot_file=$boot_file\"\n\
  echo \"serverid=$serverid\"\n\
} > \"$PLASMA_DHCP_OUT.tmp\" && mv \"$PLASMA_DHCP_OUT.tmp\" \"$PLASMA_DHCP_OUT\"\n";

fn parse_offer(text: &str) -> Result<Offer> {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let addr = |key: &str| -> Result<Option<Ipv4Addr>> {
        get(key)
            .map(|v| v.parse().map_err(|e| err!("{key}={v:?}: {e}")))
            .transpose()
    };
    Ok(Offer {
        ip: addr("ip")?.ok_or_else(|| format!("no ip in udhcpc's report:\n{text}"))?,
        siaddr: addr("siaddr")?.filter(|a| !a.is_unspecified()),
        boot_file: get("boot_file").map(str::to_string),
        server_id: addr("serverid")?,
    })
}

/// Runs `busybox udhcpc` once in the client namespace, sending each `(code, value)` as a raw
/// DHCP option, and returns the lease it was acknowledged. `dir` holds the script, its report
/// and the client's log (named after `label`).
pub fn udhcpc(
    link: &Link,
    busybox: &Path,
    options: &[(u8, &[u8])],
    dir: &Path,
    label: &str,
    timeout: Duration,
) -> Result<Offer> {
    let script = dir.join("udhcpc.script");
    if !script.exists() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&script, SCRIPT).map_err(|e| format!("{}: {e}", script.display()))?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", script.display()))?;
    }
    let report = dir.join(format!("{label}.env"));
    let _ = std::fs::remove_file(&report);
    let mut cmd: Command = link.client.command(busybox);
    // -n: exit when no lease; -q: exit once bound (no interface configuration: the script
    // only writes); no -R, so nothing is released and the next run gets the same lease.
    // Five discovers a second apart: dnsmasq pings a new address for 3 s before offering it.
    cmd.args([
        "udhcpc", "-f", "-n", "-q", "-t", "5", "-T", "1", "-A", "1", "-i",
    ])
    .arg(&link.client_if)
    .arg("-s")
    .arg(&script)
    .env("PLASMA_DHCP_OUT", &report);
    for (code, value) in options {
        let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
        cmd.arg("-x").arg(format!("0x{code:02x}:{hex}"));
    }
    let log = dir.join(format!("{label}.log"));
    let mut client = Daemon::spawn(&format!("udhcpc {label}"), cmd, &log)?;
    let status = client.wait_exit(timeout);
    client.stop();
    match status {
        None => {
            return Err(err!(
                "udhcpc {label}: no lease within {timeout:?}\n{}",
                tail(&log, 20)
            ));
        }
        Some(s) if !s.success() => {
            return Err(err!("udhcpc {label} failed ({s})\n{}", tail(&log, 20)));
        }
        Some(_) => {}
    }
    let text = std::fs::read_to_string(&report).map_err(|e| {
        format!(
            "udhcpc {label}: {}: {e}\n{}",
            report.display(),
            tail(&log, 20)
        )
    })?;
    parse_offer(&text).map_err(|e| err!("udhcpc {label}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_parses_udhcpc_report() {
        let o = parse_offer("ip=10.0.100.50\nsiaddr=0.0.0.0\nboot_file=\nserverid=10.0.100.10\n")
            .expect("parse");
        assert_eq!(o.ip, Ipv4Addr::new(10, 0, 100, 50));
        assert_eq!(o.siaddr, None);
        assert_eq!(o.boot_file, None);
        assert_eq!(o.server_id, Some(Ipv4Addr::new(10, 0, 100, 10)));
        let o = parse_offer("ip=10.0.100.100\nsiaddr=10.0.100.10\nboot_file=ipxe.efi\n")
            .expect("parse");
        assert_eq!(o.siaddr, Some(Ipv4Addr::new(10, 0, 100, 10)));
        assert_eq!(o.boot_file.as_deref(), Some("ipxe.efi"));
        assert!(parse_offer("siaddr=10.0.100.10\n").is_err());
    }

    #[test]
    fn missing_program_names_its_package() {
        let absent = Need {
            program: "plasma-no-such-dhcp-server",
            package: "plasma-no-such-package",
        };
        let e = find(&[&IP, &absent]).expect_err("absent program found");
        assert!(
            e.0.contains("plasma-no-such-dhcp-server (Debian package plasma-no-such-package)"),
            "{e}"
        );
        assert!(
            e.0.contains("apt-get install -y plasma-no-such-package"),
            "{e}"
        );
        assert!(!e.0.contains("iproute2"), "{e}");
    }
}
