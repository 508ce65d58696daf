//! PXE, DNS and firewall artifacts are accepted by the real programs that consume them, for the
//! runbook fleet and for a larger one, and carry exactly the inventory's nodes.

mod common;

use std::path::Path;
use std::process::Command;

use common::{files_under, generate, repo_root, require_tool};
use plasmagen::inventory;
use serde_json::Value;

fn check(cmd: &mut Command, what: &str) {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        o.status.success(),
        "{what} rejected the artifact:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn all_checkers_accept(inv_path: &Path) {
    for (tool, pkg) in [
        ("dhcpd", "isc-dhcp-server"),
        ("kea-dhcp4", "kea-dhcp4-server"),
        ("dnsmasq", "dnsmasq"),
        ("named-checkzone", "bind9-utils"),
        ("nft", "nftables"),
    ] {
        require_tool(tool, pkg);
    }
    // Kea and dnsmasq refuse an interface this machine does not have: bind the checked copy
    // to the loopback interface, which every machine has.
    let text = std::fs::read_to_string(inv_path).unwrap();
    let iface = inventory::load(inv_path)
        .unwrap()
        .inventory
        .provisioning
        .interface;
    let out = tempfile::tempdir().unwrap();
    let here = out.path().join("inventory.toml");
    std::fs::write(
        &here,
        text.replace(&format!("interface = \"{iface}\""), "interface = \"lo\""),
    )
    .unwrap();
    let inv = inventory::load(&here).unwrap().inventory;
    assert_eq!(inv.provisioning.interface, "lo");
    generate(&here, out.path());
    let f = out.path().join("flake");
    check(
        Command::new("dhcpd")
            .args(["-t", "-cf"])
            .arg(f.join("pxe/dhcpd.conf")),
        "dhcpd -t",
    );
    check(
        Command::new("kea-dhcp4")
            .arg("-t")
            .arg(f.join("pxe/kea-dhcp4.json")),
        "kea-dhcp4 -t",
    );
    check(
        Command::new("dnsmasq")
            .arg("--test")
            .arg("-C")
            .arg(f.join("pxe/dnsmasq.conf")),
        "dnsmasq --test",
    );
    check(
        Command::new("dnsmasq")
            .arg("--test")
            .arg("-C")
            .arg(f.join("pxe/dnsmasq-proxy.conf")),
        "dnsmasq --test (proxy)",
    );
    let zones: Vec<_> = files_under(&f.join("dns"));
    assert_eq!(zones.len(), 3, "forward + two reverse zones: {zones:?}");
    for z in zones {
        let name = z.to_string_lossy().trim_end_matches(".zone").to_string();
        check(
            Command::new("named-checkzone")
                .arg(&name)
                .arg(f.join("dns").join(&z)),
            "named-checkzone",
        );
    }
    // Each file is the body of one table, loaded the way NixOS's nftables.nix loads
    // networking.nftables.tables.<name>: `table <family> <name> { <content> }`, after
    // creating and deleting the table so a reload replaces only it.
    for rule in files_under(&f.join("firewall")) {
        let body = std::fs::read_to_string(f.join("firewall").join(&rule)).unwrap();
        assert!(!body.contains("flush ruleset"), "{}", rule.display());
        let table = if rule.to_string_lossy() == "pxe-server.nft" {
            "plasmacloud-pxe"
        } else {
            "plasmacloud"
        };
        let wrapped = out.path().join(format!("{}.wrapped", rule.display()));
        std::fs::write(
            &wrapped,
            format!(
                "table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n{body}\n}}\n"
            ),
        )
        .unwrap();
        check(
            Command::new("nft").arg("-c").arg("-f").arg(&wrapped),
            &format!("nft -c {}", rule.display()),
        );
    }

    // Every node has its reservation, in every DHCP flavour, and its iPXE script.
    let dhcpd = std::fs::read_to_string(f.join("pxe/dhcpd.conf")).unwrap();
    let dnsmasq = std::fs::read_to_string(f.join("pxe/dnsmasq.conf")).unwrap();
    let kea: Value =
        serde_json::from_slice(&std::fs::read(f.join("pxe/kea-dhcp4.json")).unwrap()).unwrap();
    let reservations = kea["Dhcp4"]["subnet4"][0]["reservations"]
        .as_array()
        .unwrap();
    assert_eq!(reservations.len(), inv.nodes.len());
    for (node, r) in inv.nodes.iter().zip(reservations) {
        assert!(
            dhcpd.contains(&format!(
                "host {} {{\n  hardware ethernet {};\n  fixed-address {};",
                node.hostname, node.mac, node.provisioning_ip
            )),
            "{}",
            node.hostname
        );
        assert!(dnsmasq.contains(&format!(
            "dhcp-host={},{},{},infinite",
            node.mac, node.hostname, node.provisioning_ip
        )));
        assert_eq!(r["hw-address"], node.mac.as_str());
        assert_eq!(r["ip-address"], node.provisioning_ip.to_string());
        let script =
            std::fs::read_to_string(f.join(format!("pxe/nodes/{}.ipxe", node.mac.dashed())))
                .unwrap();
        assert!(script.starts_with("#!ipxe\n"));
        assert!(script.contains(&format!("/boot/nixos/{}/netboot.ipxe", node.role.as_str())));
        assert!(script.contains(&format!(
            "plasmacloud.collector={}",
            inv.cluster.collector_url
        )));
    }
    let zone = std::fs::read_to_string(f.join(format!("dns/{}.zone", inv.cluster.domain))).unwrap();
    for node in &inv.nodes {
        assert!(zone.contains(&format!(
            "\n{} IN A {}\n",
            node.hostname, node.production_ip
        )));
    }
}

#[test]
fn runbook_fleet_artifacts_pass_their_checkers() {
    all_checkers_accept(&repo_root().join("examples/runbook.toml"));
}

#[test]
fn larger_fleet_artifacts_pass_their_checkers() {
    let text = std::fs::read_to_string(repo_root().join("examples/runbook.toml")).unwrap();
    let mut big = text[..text.find("[[nodes]]\nhostname = \"node04\"").unwrap()].to_string();
    for i in 0..50u32 {
        big.push_str(&format!(
            "[[nodes]]\nhostname = \"worker{i:02}\"\nrole = \"worker\"\nmac = \"52:54:00:77:00:{i:02x}\"\nprovisioning_ip = \"10.0.100.{}\"\nproduction_ip = \"10.0.200.{}\"\ndisks = [\"/dev/disk/by-id/nvme-w{i:02}\"]\n\n",
            201 + i, 20 + i
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.toml");
    std::fs::write(&p, big).unwrap();
    all_checkers_accept(&p);
}

#[test]
fn boot_paths_follow_the_runbook() {
    let out = tempfile::tempdir().unwrap();
    generate(&repo_root().join("examples/runbook.toml"), out.path());
    let f = out.path().join("flake");
    let dhcpd = std::fs::read_to_string(f.join("pxe/dhcpd.conf")).unwrap();
    assert!(dhcpd.contains("filename \"http://10.0.100.10:8080/boot/ipxe/boot.ipxe\""));
    assert!(dhcpd.contains("option architecture-type = 00:00 {\n    # BIOS (legacy): iPXE over TFTP\n    filename \"undionly.kpxe\""));
    let kea: Value =
        serde_json::from_slice(&std::fs::read(f.join("pxe/kea-dhcp4.json")).unwrap()).unwrap();
    let classes = kea["Dhcp4"]["client-classes"].as_array().unwrap();
    let names: Vec<&str> = classes
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ipxe", "bios", "uefi"]);
    assert_eq!(classes[1]["boot-file-name"], "undionly.kpxe");
    assert_eq!(classes[2]["boot-file-name"], "ipxe.efi");
    let boot = std::fs::read_to_string(f.join("pxe/boot.ipxe")).unwrap();
    assert!(boot.contains("chain ${collector-boot}/boot/${mac:hexhyp}.ipxe || goto auto_failed"));
    // A failed local boot of an installed machine never falls through to a netboot.
    assert!(boot.contains("iseq ${plasmacloud-installed} 1 && goto firmware ||\n"));
    let failed = &boot[boot.find(":auto_failed").unwrap()..boot.find(":static").unwrap()];
    // BIOS tries the local disk before the installer; UEFI (no INT 13h drive) skips to the
    // static scripts first.
    let efi_skip = failed
        .find("iseq ${platform} efi && goto static ||")
        .expect("UEFI skips sanboot");
    let sanboot = failed.find("sanboot --no-describe --drive 0x80").unwrap();
    assert!(
        efi_skip < sanboot && sanboot < failed.rfind("goto static").unwrap(),
        "local disk before the installer:\n{failed}"
    );
    // An installed node's script: UEFI hands back to the firmware (next boot entry: the
    // disk) before the BIOS-only sanboot is tried.
    let inv = inventory::load(&repo_root().join("examples/runbook.toml"))
        .unwrap()
        .inventory;
    let installed = plasmagen::render::pxe::local_boot_script(&inv.nodes[0]).unwrap();
    let efi = installed
        .find("iseq ${platform} efi && goto firmware ||")
        .expect("UEFI path");
    assert!(
        efi < installed
            .find("sanboot --no-describe --drive 0x80")
            .unwrap()
    );
    assert!(installed.ends_with("exit 1\n"), "{installed}");
    let local = std::fs::read_to_string(f.join("pxe/nodes/52-54-00-12-34-56.ipxe")).unwrap();
    assert!(
        !local.contains("sanboot"),
        "the static node script netboots"
    );
    assert!(boot.contains("choose --timeout 5000 --default auto"));
    assert!(boot.contains("set collector-boot http://10.0.100.10:8081"));
}

#[test]
fn zone_serial_is_kept_while_records_do_not_change_and_bumped_when_they_do() {
    let text = std::fs::read_to_string(repo_root().join("examples/runbook.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.toml");
    std::fs::write(&inv, &text).unwrap();
    let out = dir.path().join("out");
    let serial = |out: &Path| {
        let z = std::fs::read_to_string(out.join("flake/dns/example.com.zone")).unwrap();
        z.lines()
            .find(|l| l.contains("; serial"))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let run = |epoch: &str| {
        let o = common::plasmagen()
            .env("SOURCE_DATE_EPOCH", epoch)
            .arg("generate")
            .arg(&inv)
            .arg("--out")
            .arg(&out)
            .arg("--skip-certs")
            .output()
            .unwrap();
        assert!(o.status.success());
    };
    run("1764000000"); // 2025-11-24
    assert_eq!(serial(&out), 2025112400);
    run("1764100000"); // next day, same records: unchanged
    assert_eq!(serial(&out), 2025112400);
    std::fs::write(&inv, text.replace("10.0.200.21", "10.0.200.25")).unwrap();
    run("1764100000");
    assert_eq!(serial(&out), 2025112500);
    std::fs::write(&inv, text.replace("10.0.200.21", "10.0.200.26")).unwrap();
    run("1764100000");
    assert_eq!(serial(&out), 2025112501);
}
