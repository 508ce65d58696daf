//! Semantic rules on a parsed inventory: addressing, uniqueness, bootstrap membership, disks,
//! SSH keys. Each rule adds a diagnostic naming the field (and node) instead of stopping, so
//! the operator sees every problem at once.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::diag::{Diagnostic, Positions, Severity};
use crate::inventory::{DiskLayout, Parsed};

mod deadlines;
mod platform;

struct Rules<'a> {
    parsed: &'a Parsed,
    out: Vec<Diagnostic>,
    positions: Positions<'a>,
}

impl Rules<'_> {
    fn broken(&self, path: &str) -> bool {
        self.parsed.broken.iter().any(|b| {
            path == b || path.starts_with(&format!("{b}.")) || path.starts_with(&format!("{b}["))
        })
    }

    fn add(&mut self, severity: Severity, node: Option<&str>, field: &str, message: String) {
        // Point at the field itself, else at its nearest recorded parent (the node's table).
        let mut span = None;
        let mut key = field.to_string();
        loop {
            if let Some(s) = self.parsed.spans.get(&key) {
                span = Some(s.clone());
                break;
            }
            match key.rfind(['.', '[']) {
                Some(i) => key.truncate(i),
                None => break,
            }
        }
        let (line, column) = self.positions.of(span.as_ref());
        self.out.push(Diagnostic {
            severity,
            file: self.parsed.inventory.source.display().to_string(),
            line,
            column,
            node: node.map(str::to_string),
            field: field.to_string(),
            message,
        });
    }

    fn error(&mut self, node: Option<&str>, field: &str, message: String) {
        self.add(Severity::Error, node, field, message);
    }

    fn warning(&mut self, node: Option<&str>, field: &str, message: String) {
        self.add(Severity::Warning, node, field, message);
    }
}

/// RFC 1123 label, lowercase: what hostnames, DNS labels, Nix attribute names, file names,
/// dhcpd/Kea/dnsmasq host names and nftables comments can all carry unquoted.
pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_domain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

/// Names the generated DNS zone uses itself.
pub const RESERVED_DNS_NAMES: &[&str] = &["ns1", "pxe", "prov"];

const SSH_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// `<type> <base64 blob> [comment]` where the blob's first field repeats the type.
pub fn check_ssh_key(key: &str) -> Result<(), String> {
    if key.contains(['\n', '\r']) {
        return Err("an SSH key must be on one line".into());
    }
    let mut parts = key.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err("malformed SSH public key; expected \"<type> <base64> [comment]\"".into());
    };
    if !SSH_KEY_TYPES.contains(&kind) {
        return Err(format!(
            "malformed SSH public key: unknown key type {kind:?}; expected one of {}",
            SSH_KEY_TYPES.join(", ")
        ));
    }
    let bytes = base64_decode(blob)
        .ok_or_else(|| "malformed SSH public key: the key data is not valid base64".to_string())?;
    let embedded = bytes
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|len| bytes.get(4..4 + len));
    if embedded != Some(kind.as_bytes()) {
        return Err(format!(
            "malformed SSH public key: the key data does not encode a {kind} key (truncated or copied wrong?)"
        ));
    }
    Ok(())
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// `http(s)://host[:port][/path]` with nothing a config format could choke on.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    if url
        .bytes()
        .any(|b| !(0x21..0x7f).contains(&b) || b"\"'\\`$;{}<>|".contains(&b))
    {
        return Err(format!(
            "URL {url:?} contains whitespace, quotes or shell/config metacharacters"
        ));
    }
    let host_port = rest.split('/').next().unwrap_or_default();
    if host_port.is_empty() {
        return Err(format!("URL {url:?} has no host"));
    }
    if let Some((_, port)) = host_port.rsplit_once(':')
        && port.parse::<u16>().is_err()
    {
        return Err(format!("URL {url:?} has an invalid port {port:?}"));
    }
    Ok(())
}

pub fn validate(parsed: &mut Parsed) {
    let mut rules = Rules {
        parsed,
        out: Vec::new(),
        positions: Positions::new(&parsed.source_text),
    };
    cluster_rules(&mut rules);
    network_rules(&mut rules);
    node_rules(&mut rules);
    platform::release_rules(&mut rules);
    platform::nic_rules(&mut rules);
    platform::bmc_rules(&mut rules);
    deadlines::join_deadline_rules(&mut rules);
    bootstrap_rules(&mut rules);
    let out = rules.out;
    parsed.diagnostics.extend(out);
}

fn cluster_rules(r: &mut Rules<'_>) {
    let c = &r.parsed.inventory.cluster;
    if !r.broken("cluster.name") && !is_label(&c.name) {
        r.error(None, "cluster.name", format!("{:?} is not a valid name: use lowercase letters, digits and '-' (RFC 1123 label, at most 63 characters)", c.name));
    }
    if !r.broken("cluster.domain") && !is_domain(&c.domain) {
        r.error(
            None,
            "cluster.domain",
            format!(
                "{:?} is not a valid DNS domain: dot-separated lowercase RFC 1123 labels",
                c.domain
            ),
        );
    }
    if !r.broken("cluster.state_version") {
        let sv = &c.state_version;
        let ok = sv.len() == 5
            && sv.as_bytes()[2] == b'.'
            && sv
                .bytes()
                .enumerate()
                .all(|(i, b)| i == 2 || b.is_ascii_digit());
        if !ok {
            r.error(
                None,
                "cluster.state_version",
                format!(
                    "{sv:?} is not a NixOS release like \"{}\"",
                    crate::release::DEFAULT
                ),
            );
        }
    }
    if !r.broken("cluster.collector_url") {
        if let Err(e) = check_url(&c.collector_url) {
            r.error(None, "cluster.collector_url", e);
        } else if c.collector_url.starts_with("http://") {
            r.warning(
                None,
                "cluster.collector_url",
                "plain http: reports are not authenticated; use https for anything but a lab"
                    .into(),
            );
        }
    }
    if !r.broken("cluster.ssh_authorized_keys") {
        if c.ssh_authorized_keys.is_empty() {
            r.error(None, "cluster.ssh_authorized_keys", "at least one SSH public key is needed: nixos-anywhere and operators log in with it".into());
        }
        for (i, key) in c.ssh_authorized_keys.iter().enumerate() {
            if let Err(e) = check_ssh_key(key) {
                r.error(None, &format!("cluster.ssh_authorized_keys[{i}]"), e);
            }
        }
    }
    let inv = &r.parsed.inventory;
    let prod = inv.production.subnet;
    for (name, &ip) in &inv.vips {
        let path = format!("vips.{name}");
        if !is_label(name) {
            r.error(
                None,
                &path,
                format!("VIP name {name:?} is not a valid DNS label"),
            );
        }
        if RESERVED_DNS_NAMES.contains(&name.as_str())
            || r.parsed.inventory.nodes.iter().any(|n| n.hostname == *name)
        {
            r.error(
                None,
                &path,
                format!(
                    "VIP name {name:?} clashes with a node or a generated DNS name ({})",
                    RESERVED_DNS_NAMES.join(", ")
                ),
            );
        }
        if !r.broken("networks.production.subnet") && !prod.is_host(ip) {
            r.error(
                None,
                &path,
                format!("{ip} is not a host address of the production subnet {prod}"),
            );
        }
    }
}

fn network_rules(r: &mut Rules<'_>) {
    let inv = &r.parsed.inventory;
    let p = &inv.provisioning;
    let prod = &inv.production;
    let pb = "networks.provisioning";
    if !r.broken(&format!("{pb}.subnet")) {
        for (field, ip) in [
            ("gateway", p.gateway),
            ("pxe_server", p.pxe_server),
            ("dhcp_range.start", p.dhcp_range.0),
            ("dhcp_range.end", p.dhcp_range.1),
        ] {
            let path = format!("{pb}.{field}");
            if !r.broken(&path) && !p.subnet.is_host(ip) {
                r.error(
                    None,
                    &path,
                    format!(
                        "{ip} is not a host address of the provisioning subnet {}",
                        p.subnet
                    ),
                );
            }
        }
    }
    if !r.broken(&format!("{pb}.dhcp_range")) {
        let (start, end) = p.dhcp_range;
        if u32::from(start) > u32::from(end) {
            r.error(
                None,
                &format!("{pb}.dhcp_range"),
                format!("start {start} is after end {end}"),
            );
        }
        for (field, ip) in [("gateway", p.gateway), ("pxe_server", p.pxe_server)] {
            let path = format!("{pb}.{field}");
            if !r.broken(&path) && in_range(ip, p.dhcp_range) {
                r.error(None, &path, format!("{ip} is inside the DHCP range {start}-{end}; a static address must be outside it"));
            }
        }
    }
    let iface = &p.interface;
    if iface.is_empty()
        || iface.len() > 15
        || !iface
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        r.error(
            None,
            &format!("{pb}.interface"),
            format!(
                "{iface:?} is not a Linux interface name (1-15 letters, digits, '_', '.', '-')"
            ),
        );
    }
    if !r.broken(&format!("{pb}.gateway"))
        && !r.broken(&format!("{pb}.pxe_server"))
        && p.gateway == p.pxe_server
    {
        r.warning(
            None,
            &format!("{pb}.pxe_server"),
            "the PXE server is also the gateway".into(),
        );
    }
    let db = "networks.production";
    if !r.broken(&format!("{db}.subnet"))
        && !r.broken(&format!("{db}.gateway"))
        && !prod.subnet.is_host(prod.gateway)
    {
        r.error(
            None,
            &format!("{db}.gateway"),
            format!(
                "{} is not a host address of the production subnet {}",
                prod.gateway, prod.subnet
            ),
        );
    }
    if !r.broken(&format!("{pb}.subnet")) && !r.broken(&format!("{db}.subnet")) {
        let (a, b) = (p.subnet, prod.subnet);
        if a.contains(b.network) || b.contains(a.network) {
            r.error(
                None,
                &format!("{db}.subnet"),
                format!("the production subnet {b} overlaps the provisioning subnet {a}"),
            );
        }
    }
}

fn in_range(ip: Ipv4Addr, (start, end): (Ipv4Addr, Ipv4Addr)) -> bool {
    (u32::from(start)..=u32::from(end)).contains(&u32::from(ip))
}

fn node_rules(r: &mut Rules<'_>) {
    let inv = &r.parsed.inventory;
    if inv.nodes.is_empty() && !r.broken("nodes") {
        r.error(None, "nodes", "the inventory lists no nodes".into());
    }
    let mut hostnames: HashMap<&str, usize> = HashMap::new();
    let mut macs: HashMap<String, usize> = HashMap::new();
    let mut ips: HashMap<Ipv4Addr, String> = HashMap::new();
    let p = &inv.provisioning;
    let prod = &inv.production;
    for (fixed, what) in [
        (p.gateway, "the provisioning gateway"),
        (p.pxe_server, "the PXE server"),
        (prod.gateway, "the production gateway"),
    ] {
        if fixed != Ipv4Addr::UNSPECIFIED {
            ips.entry(fixed).or_insert_with(|| what.to_string());
        }
    }
    for (i, node) in inv.nodes.iter().enumerate() {
        let base = format!("nodes[{i}]");
        let f = |k: &str| format!("{base}.{k}");
        let name = node.hostname.as_str();
        let n = Some(name);
        if !r.broken(&f("hostname")) {
            if !is_label(name) {
                r.error(n, &f("hostname"), format!("{name:?} is not a valid hostname: use lowercase letters, digits and '-' (RFC 1123 label, at most 63 characters)"));
            }
            if RESERVED_DNS_NAMES.contains(&name) {
                r.error(
                    n,
                    &f("hostname"),
                    format!(
                        "{name:?} is reserved for a generated DNS record ({})",
                        RESERVED_DNS_NAMES.join(", ")
                    ),
                );
            }
            if let Some(first) = hostnames.insert(name, i) {
                r.error(
                    n,
                    &f("hostname"),
                    format!("duplicate hostname {name:?} (also nodes[{first}])"),
                );
            }
        }
        if !r.broken(&f("mac"))
            && let Some(first) = macs.insert(node.mac.as_str().to_string(), i)
        {
            r.error(
                n,
                &f("mac"),
                format!(
                    "duplicate MAC {} (also nodes[{first}], {})",
                    node.mac, inv.nodes[first].hostname
                ),
            );
        }
        if !r.broken(&f("provisioning_ip")) {
            let ip = node.provisioning_ip;
            if !r.broken("networks.provisioning.subnet") && !p.subnet.is_host(ip) {
                r.error(
                    n,
                    &f("provisioning_ip"),
                    format!(
                        "{ip} is not a host address of the provisioning subnet {}",
                        p.subnet
                    ),
                );
            }
            if !r.broken("networks.provisioning.dhcp_range") && in_range(ip, p.dhcp_range) {
                r.error(n, &f("provisioning_ip"), format!("{ip} is inside the DHCP range {}-{}; a reserved address must be outside it", p.dhcp_range.0, p.dhcp_range.1));
            }
            if let Some(other) = ips.insert(ip, name.to_string()) {
                r.error(
                    n,
                    &f("provisioning_ip"),
                    format!("{ip} is already used by {other}"),
                );
            }
        }
        if !r.broken(&f("production_ip")) {
            let ip = node.production_ip;
            if !r.broken("networks.production.subnet") && !prod.subnet.is_host(ip) {
                r.error(
                    n,
                    &f("production_ip"),
                    format!(
                        "{ip} is not a host address of the production subnet {}",
                        prod.subnet
                    ),
                );
            }
            if let Some(other) = ips.insert(ip, name.to_string()) {
                r.error(
                    n,
                    &f("production_ip"),
                    format!("{ip} is already used by {other}"),
                );
            }
        }
        if !r.broken(&f("disks")) {
            disk_rules(r, i, node);
        }
        if let Some(bmc) = &node.bmc {
            // A BMC on a non-standard port (an emulator, a port-forward) is `host:port`.
            let (host, port) = match bmc.address.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (bmc.address.as_str(), None),
            };
            let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
            let addr_ok = host.parse::<Ipv4Addr>().is_ok() || is_domain(host);
            if !addr_ok || !port_ok {
                r.error(
                    n,
                    &f("bmc.address"),
                    format!(
                        "{:?} is neither an IPv4 address nor a DNS name (optionally with :port)",
                        bmc.address
                    ),
                );
            }
            if bmc.username.is_empty()
                || !bmc
                    .username
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
            {
                r.error(
                    n,
                    &f("bmc.username"),
                    format!(
                        "{:?} is not a valid BMC user name (letters, digits, '.', '_', '-', '@')",
                        bmc.username
                    ),
                );
            }
            if let Some(pf) = &bmc.password_file
                && (!pf.starts_with('/')
                    || pf
                        .bytes()
                        .any(|b| b.is_ascii_whitespace() || b"\"'\\`$;".contains(&b)))
            {
                r.error(n, &f("bmc.password_file"), format!("{pf:?} must be an absolute path without spaces, quotes or shell metacharacters"));
            }
        }
    }
    for (name, ip) in &inv.vips {
        if let Some(other) = ips.get(ip) {
            r.error(
                None,
                &format!("vips.{name}"),
                format!("{ip} is already used by {other}"),
            );
        }
    }
}

fn disk_rules(r: &mut Rules<'_>, i: usize, node: &crate::inventory::Node) {
    let base = format!("nodes[{i}].disks");
    let n = Some(node.hostname.as_str());
    if node.disks.is_empty() {
        r.error(n, &base, "at least one disk is needed".into());
        return;
    }
    match node.disk_layout {
        DiskLayout::Raid1 if node.disks.len() < 2 => {
            r.error(
                n,
                &base,
                format!(
                    "disk_layout \"raid1\" needs at least two disks, found {}",
                    node.disks.len()
                ),
            );
        }
        DiskLayout::Single | DiskLayout::LuksLvm if node.disks.len() > 1 => {
            r.warning(
                n,
                &base,
                format!(
                    "disk_layout {:?} uses only the first disk; the other {} stay untouched",
                    node.disk_layout.as_str(),
                    node.disks.len() - 1
                ),
            );
        }
        _ => {}
    }
    let mut seen = Vec::new();
    for (j, disk) in node.disks.iter().enumerate() {
        let path = format!("{base}[{j}]");
        let safe = disk
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-.:+@".contains(&b));
        if !disk.starts_with("/dev/") || disk.contains("/../") || !safe {
            r.error(n, &path, format!("{disk:?} is not an absolute device path under /dev (e.g. /dev/disk/by-id/nvme-...)"));
        } else if !disk.starts_with("/dev/disk/by-id/") {
            r.warning(n, &path, format!("{disk:?} is not a stable name: kernel names can change between boots; prefer /dev/disk/by-id/..."));
        }
        if seen.contains(disk) {
            r.error(n, &path, format!("disk {disk:?} is listed twice"));
        }
        seen.push(disk.clone());
    }
}

fn bootstrap_rules(r: &mut Rules<'_>) {
    if r.broken("cluster.bootstrap") {
        return;
    }
    let inv = &r.parsed.inventory;
    let list = &inv.cluster.bootstrap;
    let field = "cluster.bootstrap";
    if list.is_empty() {
        r.error(None, field, "the bootstrap list is empty: name the founding Raft members (3 or 5 control-plane nodes)".into());
        return;
    }
    if list.len().is_multiple_of(2) {
        r.error(None, field, format!("{} founding members cannot keep a Raft majority after one failure; use an odd number (3 or 5)", list.len()));
    }
    for (i, name) in list.iter().enumerate() {
        let path = format!("{field}[{i}]");
        if list[..i].contains(name) {
            r.error(None, &path, format!("{name:?} is listed twice"));
            continue;
        }
        match inv.nodes.iter().position(|n| n.hostname == *name) {
            None => {
                let names: Vec<&str> = inv.nodes.iter().map(|n| n.hostname.as_str()).collect();
                let hint = crate::diag::did_you_mean(name, &names)
                    .map(|m| format!("; did you mean {m:?}?"))
                    .unwrap_or_default();
                r.error(
                    None,
                    &path,
                    format!("{name:?} is not a node of the inventory{hint}"),
                );
            }
            Some(idx) => {
                let node = &inv.nodes[idx];
                if !r.broken(&format!("nodes[{idx}].role")) && !node.role.is_control_plane() {
                    r.error(Some(name), &path, format!("{name:?} has role {:?}; founding members must be control-plane (or all-in-one) nodes, which run Chainfire and FlareDB", node.role.as_str()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(is_label("node01"));
        assert!(!is_label("Node01"));
        assert!(!is_label("-node"));
        assert!(!is_label("node_1"));
        assert!(!is_label(&"a".repeat(64)));
        assert!(is_domain("example.com"));
        assert!(!is_domain("example..com"));
    }

    #[test]
    fn ssh_keys() {
        let good = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHd0yqN6e3DxhOZQ+xRJgIdpQ4mHt0BZTZr8wT3Q1x8y ops@example.com";
        check_ssh_key(good).unwrap();
        assert!(
            check_ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... provisioning@example.com")
                .is_err()
        );
        assert!(
            check_ssh_key(
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIHd0yqN6e3DxhOZQ+xRJgIdpQ4mHt0BZTZr8wT3Q1x8y"
            )
            .is_err()
        );
        assert!(check_ssh_key("ssh-dss AAAA").is_err());
        assert!(check_ssh_key("ssh-ed25519").is_err());
    }

    #[test]
    fn urls() {
        check_url("https://10.0.100.10:8443").unwrap();
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("https://x:99999").is_err());
        assert!(check_url("https://x/$(reboot)").is_err());
    }
}
