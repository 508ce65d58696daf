//! The BMC's LAN address and MAC as the machine itself sees them: `ipmitool lan print` through
//! the kernel's IPMI device (`/dev/ipmi0`, modules ipmi_si + ipmi_devintf). No device, no
//! ipmitool, or no answer within 10 s: nothing is reported (most discovery runs have no BMC
//! access at all, and enlistment works without it).
//!
//! ipmitool prints one `%-24s: value` line per LAN parameter (lib/ipmi_lanp.c,
//! `ipmi_lan_print`, at 052655cd): the address as `%d.%d.%d.%d`, the MAC through `mac2str`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plasma_wire::discover::BmcLan;

const DEADLINE: Duration = Duration::from_secs(10);

/// Reads the BMC's LAN settings when `root` is the real root and the IPMI device exists.
pub fn read(root: &Path) -> Option<BmcLan> {
    if root != Path::new("/") || !root.join("dev/ipmi0").exists() {
        return None;
    }
    let mut child = Command::new("ipmitool")
        .args(["-I", "open", "lan", "print"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) if start.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    parse_lan_print(&out)
}

/// The `IP Address` and `MAC Address` lines; `0.0.0.0` and an all-zero MAC mean unset.
pub fn parse_lan_print(text: &str) -> Option<BmcLan> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    };
    let address = field("IP Address").filter(|a| !a.is_empty() && a != "0.0.0.0");
    let mac = field("MAC Address")
        .map(|m| m.to_ascii_lowercase())
        .filter(|m| !m.is_empty() && m != "00:00:00:00:00:00");
    (address.is_some() || mac.is_some()).then_some(BmcLan { address, mac })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As ipmitool 1.8.19 prints it (lib/ipmi_lanp.c), trimmed.
    const LAN_PRINT: &str = "\
Set in Progress         : Set Complete
IP Address Source       : Static Address
IP Address              : 10.0.10.50
Subnet Mask             : 255.255.255.0
MAC Address             : 0C:C4:7A:00:00:01
Default Gateway IP      : 10.0.10.1
";

    #[test]
    fn lan_print_gives_address_and_mac() {
        assert_eq!(
            parse_lan_print(LAN_PRINT),
            Some(BmcLan {
                address: Some("10.0.10.50".into()),
                mac: Some("0c:c4:7a:00:00:01".into()),
            })
        );
        let unset = LAN_PRINT
            .replace("10.0.10.50", "0.0.0.0")
            .replace("0C:C4:7A:00:00:01", "00:00:00:00:00:00");
        assert_eq!(parse_lan_print(&unset), None);
        assert_eq!(parse_lan_print(""), None);
    }
}
