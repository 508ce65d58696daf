//! One `[[nodes]]` entry.

use super::*;

const NODE_KEYS: &[&str] = &[
    "hostname",
    "role",
    "mac",
    "provisioning_ip",
    "production_ip",
    "production_macs",
    "disks",
    "disk_layout",
    "firmware",
    "bmc",
];
const NODE_REQUIRED: &[&str] = &[
    "hostname",
    "role",
    "mac",
    "provisioning_ip",
    "production_ip",
];
const BMC_KEYS: &[&str] = &[
    "protocol",
    "address",
    "username",
    "password_file",
    "system",
    "ca_file",
    "insecure",
];

pub(super) fn read_node(r: &mut Reader<'_>, item: &Item, index: usize) -> Node {
    let base = format!("nodes[{index}]");
    // Name the node in every message; fall back to its position when the hostname is unreadable.
    let label = match &item.value {
        Value::Table(entries) => match get(entries, "hostname").map(|h| &h.value) {
            Some(Value::String(h)) => h.clone(),
            _ => base.clone(),
        },
        _ => base.clone(),
    };
    let node = Some(label.as_str());
    r.record(&base, item);
    let entries = r
        .table(item, &base, node, NODE_KEYS, NODE_REQUIRED)
        .unwrap_or(&[]);
    let f = |k: &str| format!("{base}.{k}");

    let hostname = get(entries, "hostname")
        .and_then(|i| r.string(i, &f("hostname"), node))
        .unwrap_or_else(|| label.clone());
    let role = get(entries, "role").and_then(|i| {
        r.choice(
            i,
            &f("role"),
            node,
            "role",
            Role::ALL.map(Role::as_str).as_slice(),
            Role::parse,
        )
    });
    let mac = get(entries, "mac").and_then(|i| r.parsed::<Mac>(i, &f("mac"), node));
    let provisioning_ip =
        get(entries, "provisioning_ip").and_then(|i| r.ipv4(i, &f("provisioning_ip"), node));
    let production_ip =
        get(entries, "production_ip").and_then(|i| r.ipv4(i, &f("production_ip"), node));
    let production_macs = match get(entries, "production_macs") {
        Some(i) => r
            .array(
                i,
                &f("production_macs"),
                node,
                "MAC addresses",
                |r, it, p, n| r.parsed::<Mac>(it, p, n),
            )
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let disks = match get(entries, "disks") {
        Some(i) => r.strings(i, &f("disks"), node).unwrap_or_default(),
        None => vec!["/dev/sda".to_string()],
    };
    let disk_layout = match get(entries, "disk_layout") {
        Some(i) => r.choice(
            i,
            &f("disk_layout"),
            node,
            "disk layout",
            DiskLayout::ALL.map(DiskLayout::as_str).as_slice(),
            DiskLayout::parse,
        ),
        None => Some(DiskLayout::Single),
    };
    let firmware = match get(entries, "firmware") {
        Some(i) => r.choice(
            i,
            &f("firmware"),
            node,
            "firmware",
            Firmware::ALL.map(Firmware::as_str).as_slice(),
            Firmware::parse,
        ),
        None => Some(Firmware::Uefi),
    };
    let bmc = get(entries, "bmc").and_then(|i| {
        let be = r.table(i, &f("bmc"), node, BMC_KEYS, &["address", "username"])?;
        let address = get(be, "address").and_then(|a| r.string(a, &f("bmc.address"), node))?;
        let username = get(be, "username").and_then(|a| r.string(a, &f("bmc.username"), node))?;
        let opt = |r: &mut Reader<'_>, key: &str| {
            get(be, key).and_then(|a| r.string(a, &f(&format!("bmc.{key}")), node))
        };
        let password_file = opt(r, "password_file");
        let system = opt(r, "system");
        let ca_file = opt(r, "ca_file");
        let protocol = match get(be, "protocol") {
            Some(p) => r.choice(
                p,
                &f("bmc.protocol"),
                node,
                "BMC protocol",
                BmcProtocol::ALL.map(BmcProtocol::as_str).as_slice(),
                BmcProtocol::parse,
            )?,
            // The default the generated scripts always spoke.
            None => BmcProtocol::Ipmi,
        };
        let insecure = match get(be, "insecure") {
            Some(i) => r.boolean(i, &f("bmc.insecure"), node)?,
            None => false,
        };
        Some(Bmc {
            protocol,
            address,
            username,
            password_file,
            system,
            ca_file,
            insecure,
        })
    });
    for (key, missing) in [
        ("role", role.is_none()),
        ("mac", mac.is_none()),
        ("provisioning_ip", provisioning_ip.is_none()),
        ("production_ip", production_ip.is_none()),
        ("disk_layout", disk_layout.is_none()),
        ("firmware", firmware.is_none()),
    ] {
        if missing {
            r.broken.insert(f(key));
        }
    }
    Node {
        hostname,
        role: role.unwrap_or(Role::Worker),
        mac: mac.unwrap_or_else(|| "02:00:00:00:00:00".parse().expect("valid placeholder")),
        provisioning_ip: provisioning_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
        production_ip: production_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
        disks,
        disk_layout: disk_layout.unwrap_or(DiskLayout::Single),
        firmware: firmware.unwrap_or(Firmware::Uefi),
        production_macs,
        bmc,
    }
}
