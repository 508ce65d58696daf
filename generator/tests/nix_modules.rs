//! Every generated node file evaluated the way NixOS imports it: as a module, called only with
//! the arguments the module system supplies (nix/tests/as-module.nix), by the real evaluator
//! (Debian's nix-instantiate). Checked by value for every firmware × disk layout × production
//! network shape (one NIC or a bond, with or without a VLAN): bootloader, partitions (EF02 for
//! BIOS and RAID1), initrd modules and their priority, LUKS unlock, networkd match sections,
//! nftables tables.

mod common;

use std::path::Path;

use common::{generate, nix_eval, repo_root};
use plasmagen::inventory::{self, DiskLayout, Firmware, Inventory, Node};
use serde_json::{Value, json};

const HEADER: &str = r#"[cluster]
name = "matrix"
domain = "m.example.net"
bootstrap = ["n-uefi-single-1"]
ssh_authorized_keys = [
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkd86f/K36q5Khr2jtCpqAhME6U6WYvfZ+SRxEj42Ve provisioning@example.com",
]
state_version = "26.05"
collector_url = "https://10.0.100.10:8443"

[networks.provisioning]
subnet = "10.0.100.0/24"
gateway = "10.0.100.1"
nameservers = ["10.0.100.1"]
dhcp_range = { start = "10.0.100.200", end = "10.0.100.250" }
pxe_server = "10.0.100.10"
interface = "enp1s0"

[networks.management]
subnet = "10.0.10.0/24"
"#;

/// Every firmware × layout × NIC count, on a production network with or without `vlan`.
fn matrix_inventory(vlan: Option<u16>) -> String {
    let mut text = HEADER.to_string();
    text.push_str("\n[networks.production]\nsubnet = \"10.0.200.0/24\"\ngateway = \"10.0.200.1\"\nnameservers = [\"10.0.200.1\"]\n");
    if let Some(id) = vlan {
        text.push_str(&format!("vlan = {id}\nbond_mode = \"active-backup\"\n"));
    }
    let mut i = 0u8;
    for fw in ["uefi", "bios"] {
        for layout in ["single", "raid1", "luks-lvm"] {
            for nics in [1u8, 2] {
                i += 1;
                let macs: Vec<String> = (0..nics)
                    .map(|k| format!("\"52:54:01:00:{i:02x}:{k:02x}\""))
                    .collect();
                let disks: Vec<String> = (0..if layout == "raid1" { 2 } else { 1 })
                    .map(|k| format!("\"/dev/disk/by-id/nvme-m{i}-{k}\""))
                    .collect();
                text.push_str(&format!(
                    "\n[[nodes]]\nhostname = \"n-{fw}-{layout}-{nics}\"\nrole = \"{}\"\nfirmware = \"{fw}\"\nmac = \"52:54:00:00:00:{i:02x}\"\nproduction_macs = [{}]\nprovisioning_ip = \"10.0.100.{}\"\nproduction_ip = \"10.0.200.{}\"\ndisks = [{}]\ndisk_layout = \"{layout}\"\n",
                    if i == 1 { "control-plane" } else { "worker" },
                    macs.join(", "),
                    20 + i,
                    20 + i,
                    disks.join(", ")
                ));
            }
        }
    }
    text
}

/// The node's files as NixOS would import them (as-module.nix), values resolved.
fn node_modules(flake: &Path, fqdn: &str, options: &str) -> Value {
    let harness = repo_root().join("nix/tests/as-module.nix");
    let expr = format!(
        r#"let
  m = file: import {harness} {{ path = ./nodes/{fqdn} + "/${{file}}"; options = {options}; }};
  profileOf = imports: builtins.head (builtins.filter (p: builtins.match ".*/profiles/.*" p != null) imports);
  conf = m "configuration.nix";
  profile = import {harness} {{ path = /. + profileOf conf.imports; }};
in {{
  configuration = conf;
  boot = m "boot.nix";
  disko = m "disko.nix";
  network = m "network.nix";
  hardware = m "hardware.nix";
  profile = profile.config;
  profileTable = builtins.hasAttr "tables" profile.config.networking.nftables;
}}"#,
        harness = harness.display()
    );
    nix_eval(flake, &expr)
}

fn partitions(disk: &Value) -> &serde_json::Map<String, Value> {
    disk["content"]["partitions"]
        .as_object()
        .expect("gpt partitions")
}

fn check_boot(node: &Node, inv: &Inventory, v: &Value) {
    let host = &node.hostname;
    let boot = &v["boot"]["config"]["boot"];
    assert_eq!(boot["initrd"]["systemd"]["enable"], json!(true), "{host}");
    let loader = &boot["loader"];
    let uefi = node.firmware == Firmware::Uefi;
    let raid = node.disk_layout == DiskLayout::Raid1;
    if uefi && !raid {
        assert_eq!(loader["systemd-boot"]["enable"], json!(true), "{host}");
        // Never reorder the firmware's boot entries: network stays first (collector decides).
        assert_eq!(
            loader["efi"]["canTouchEfiVariables"],
            json!(false),
            "{host}"
        );
        assert!(loader.get("grub").is_none(), "{host}: {loader}");
    } else {
        assert!(loader.get("systemd-boot").is_none(), "{host}: {loader}");
        assert_eq!(loader["grub"]["enable"], json!(true), "{host}");
        // The disks come from disko's EF02 partitions; listing them too would duplicate.
        assert!(loader["grub"].get("devices").is_none(), "{host}");
        assert!(loader["grub"].get("device").is_none(), "{host}");
        if uefi {
            assert_eq!(loader["grub"]["efiSupport"], json!(true), "{host}");
            assert_eq!(
                loader["grub"]["efiInstallAsRemovable"],
                json!(true),
                "{host}"
            );
            assert_eq!(
                loader["efi"]["canTouchEfiVariables"],
                json!(false),
                "{host}"
            );
        } else {
            assert!(loader["grub"].get("efiSupport").is_none(), "{host}");
        }
    }
    let mdadm = boot["swraid"]["mdadmConf"].as_str();
    if raid {
        let conf = mdadm.expect("mdadmConf");
        assert!(
            conf.starts_with("PROGRAM /nix/store/") && conf.contains("/bin/logger"),
            "{conf}"
        );
    } else {
        assert!(mdadm.is_none(), "{host}");
    }
    let luks = node.disk_layout == DiskLayout::LuksLvm;
    let ssh = &boot["initrd"]["network"]["ssh"];
    if luks {
        assert_eq!(ssh["enable"], json!(true), "{host}");
        assert_eq!(ssh["port"], json!(2222));
        // A string: a path on the node (initrd secret), never a Nix path copied to the store.
        assert_eq!(
            ssh["hostKeys"],
            json!(["/etc/secrets/initrd/ssh_host_ed25519_key"])
        );
        assert_eq!(
            ssh["authorizedKeys"],
            json!(inv.cluster.ssh_authorized_keys)
        );
        let net = &boot["initrd"]["systemd"]["network"];
        assert_eq!(net["enable"], json!(true));
        let prov = &net["networks"]["10-provisioning"];
        assert_eq!(
            prov["matchConfig"]["PermanentMACAddress"],
            json!(node.mac.as_str())
        );
        assert_eq!(
            prov["address"],
            json!([format!("{}/24", node.provisioning_ip)])
        );
        assert_eq!(
            boot["initrd"]["systemd"]["users"]["root"]["shell"],
            json!("/bin/systemd-tty-ask-password-agent")
        );
        let modules = boot["initrd"]["availableKernelModules"].as_array().unwrap();
        for m in ["virtio_net", "e1000e", "igb", "ixgbe", "i40e", "mlx5_core"] {
            assert!(modules.contains(&json!(m)), "{host}: {m}");
        }
    } else {
        assert!(ssh.is_null(), "{host}");
    }
}

fn check_disko(node: &Node, v: &Value) {
    let host = &node.hostname;
    let m = &v["disko"];
    // A plain attribute set: no function, so no argument the module system could miss.
    assert_eq!(m["isFunction"], json!(false), "{host}");
    let devices = &m["config"]["disko"]["devices"];
    let disks = devices["disk"].as_object().unwrap();
    let uefi = node.firmware == Firmware::Uefi;
    let listed: Vec<&str> = disks
        .values()
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    match node.disk_layout {
        DiskLayout::Raid1 => {
            assert_eq!(
                listed,
                node.disks.iter().map(String::as_str).collect::<Vec<_>>()
            );
            for d in disks.values() {
                let p = partitions(d);
                // Every member boots alone: GRUB's EF02 and a member of the mirrored ESP.
                assert_eq!(p["boot"], json!({"size": "1M", "type": "EF02"}), "{host}");
                assert_eq!(p["ESP"]["type"], json!("EF00"));
                assert_eq!(
                    p["ESP"]["content"],
                    json!({"type": "mdraid", "name": "boot"})
                );
                assert_eq!(
                    p["root"]["content"],
                    json!({"type": "mdraid", "name": "root"})
                );
            }
            assert_eq!(devices["mdadm"]["boot"]["metadata"], json!("1.0"));
            assert_eq!(devices["mdadm"]["boot"]["content"]["format"], json!("vfat"));
            assert_eq!(
                devices["mdadm"]["root"]["content"]["mountpoint"],
                json!("/")
            );
        }
        layout => {
            assert_eq!(listed, [node.disks[0].as_str()], "{host}");
            let p = partitions(&disks["main"]);
            if uefi {
                assert_eq!(p["ESP"]["type"], json!("EF00"), "{host}");
                assert_eq!(p["ESP"]["content"]["mountpoint"], json!("/boot"));
                assert!(!p.contains_key("boot"), "{host}: no EF02 on UEFI");
            } else {
                assert_eq!(p["boot"], json!({"size": "1M", "type": "EF02"}), "{host}");
                assert!(!p.contains_key("ESP"), "{host}");
            }
            if layout == DiskLayout::LuksLvm {
                let luks = &p["luks"]["content"];
                assert_eq!(luks["type"], json!("luks"));
                assert_eq!(luks["passwordFile"], json!("/tmp/secret.key"));
                if !uefi {
                    assert_eq!(
                        p["bootfs"]["content"]["mountpoint"],
                        json!("/boot"),
                        "{host}"
                    );
                }
            } else {
                assert_eq!(p["root"]["content"]["mountpoint"], json!("/"), "{host}");
            }
        }
    }
    // Sizes in disko's syntax (lib/types/gpt.nix: "100%" or [0-9]+[KMGTP]?).
    for d in disks.values() {
        for (name, part) in partitions(d) {
            let s = part["size"].as_str().unwrap();
            let ok = s == "100%"
                || (s.len() > 1
                    && s[..s.len() - 1].bytes().all(|b| b.is_ascii_digit())
                    && "KMGTP".contains(&s[s.len() - 1..]));
            assert!(ok, "{host}: partition {name} size {s:?}");
        }
    }
}

fn check_network(node: &Node, inv: &Inventory, v: &Value) {
    let host = &node.hostname;
    let cfg = &v["network"]["config"];
    assert_eq!(cfg["networking"]["useNetworkd"], json!(true));
    assert_eq!(cfg["networking"]["useDHCP"], json!(false));
    assert_eq!(cfg["networking"]["hostName"], json!(host));
    assert!(
        cfg["networking"]
            .get("usePredictableInterfaceNames")
            .is_none(),
        "{host}"
    );
    let nets = cfg["systemd"]["network"]["networks"].as_object().unwrap();
    let netdevs = cfg["systemd"]["network"]["netdevs"].as_object();
    let prov = &nets["10-provisioning"];
    assert_eq!(
        prov["matchConfig"],
        json!({"PermanentMACAddress": node.mac.as_str()})
    );
    assert_eq!(
        prov["address"],
        json!([format!("{}/24", node.provisioning_ip)])
    );
    assert!(prov.get("gateway").is_none());
    assert_eq!(
        prov["linkConfig"]["RequiredForOnline"],
        json!("no"),
        "{host}"
    );
    // Every production NIC is matched by its permanent MAC, never by a kernel name.
    let matched: Vec<&str> = nets
        .values()
        .filter_map(|n| n["matchConfig"]["PermanentMACAddress"].as_str())
        .collect();
    for mac in &node.production_macs {
        assert!(matched.contains(&mac.as_str()), "{host}: {mac}");
    }
    let addressed: Vec<(&String, &Value)> = nets
        .iter()
        .filter(|(_, n)| n["address"] == json!([format!("{}/24", node.production_ip)]))
        .collect();
    assert_eq!(
        addressed.len(),
        1,
        "{host}: one network carries the production address"
    );
    let (unit, carrier) = addressed[0];
    assert_eq!(carrier["gateway"], json!(["10.0.200.1"]));
    let bonded = node.production_macs.len() >= 2;
    match inv.production.vlan {
        Some(id) => {
            assert_eq!(
                carrier["matchConfig"],
                json!({"Name": format!("vlan{id}")}),
                "{host}"
            );
            let vlan = &netdevs.expect("netdevs")[&format!("40-vlan{id}")];
            assert_eq!(
                vlan["netdevConfig"],
                json!({"Kind": "vlan", "Name": format!("vlan{id}")})
            );
            assert_eq!(vlan["vlanConfig"]["Id"], json!(id));
            let parent = if bonded { "30-bond0" } else { "20-production" };
            assert_eq!(nets[parent]["vlan"], json!([format!("vlan{id}")]), "{host}");
        }
        None if bonded => assert_eq!(unit, "30-bond0", "{host}"),
        None => assert_eq!(
            carrier["matchConfig"],
            json!({"PermanentMACAddress": node.production_macs[0].as_str()}),
            "{host}"
        ),
    }
    if bonded {
        let bond = &netdevs.expect("netdevs")["20-bond0"];
        assert_eq!(
            bond["netdevConfig"],
            json!({"Kind": "bond", "Name": "bond0"})
        );
        assert_eq!(
            bond["bondConfig"]["Mode"],
            json!(inv.production.bond_mode.as_str())
        );
        let members: Vec<&Value> = nets
            .values()
            .filter(|n| n["networkConfig"]["Bond"] == json!("bond0"))
            .collect();
        // A member without link must not hold network-online.target; the bond must come up.
        for m in &members {
            assert_eq!(m["linkConfig"]["RequiredForOnline"], json!("no"), "{host}");
        }
        let members = members.len();
        assert_eq!(members, node.production_macs.len(), "{host}");
    } else {
        assert!(
            netdevs.is_none_or(|d| !d.contains_key("20-bond0")),
            "{host}"
        );
    }
}

fn check_hardware_and_profile(node: &Node, v: &Value) {
    let host = &node.hostname;
    let hw = &v["hardware"];
    // Normal priority: an mkDefault list would lose to NixOS's own (kernel.nix) and vanish.
    let modules = &hw["config"]["boot"]["initrd"]["availableKernelModules"];
    assert!(modules.is_array(), "{host}: {modules}");
    for m in ["virtio_blk", "virtio_scsi", "usb_storage", "nvme", "ahci"] {
        assert!(
            modules.as_array().unwrap().contains(&json!(m)),
            "{host}: {m}"
        );
    }
    assert!(
        hw["config"].get("hardware").is_none(),
        "{host}: no facter.json, no facter option"
    );
    let conf = &v["configuration"];
    let imports: Vec<String> = serde_json::from_value(conf["imports"].clone()).unwrap();
    for f in ["hardware.nix", "disko.nix", "boot.nix", "network.nix"] {
        assert!(
            imports.iter().any(|i| i.ends_with(&format!("/{f}"))),
            "{host}: {f}"
        );
    }
    let nft = &v["profile"]["networking"]["nftables"];
    assert_eq!(nft["enable"], json!(true));
    assert_eq!(nft["flushRuleset"], json!(false));
    assert!(
        nft.get("ruleset").is_none(),
        "{host}: a ruleset would flush other tables"
    );
    let table = &nft["tables"]["plasmacloud"];
    assert_eq!(table["family"], json!("inet"));
    let content = table["content"].as_str().unwrap();
    assert!(content.contains("chain input {") && !content.contains("flush ruleset"));
    assert!(
        content.contains(&format!("role {}", node.role.as_str())),
        "{host}"
    );
}

fn check_fleet(inventory_text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.toml");
    std::fs::write(&path, inventory_text).unwrap();
    let inv = inventory::load(&path).unwrap().inventory;
    let o = generate(&path, dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let flake = dir.path().join("flake");
    for node in &inv.nodes {
        let v = node_modules(&flake, &inv.fqdn(node), "{ }");
        check_boot(node, &inv, &v);
        check_disko(node, &v);
        check_network(node, &inv, &v);
        check_hardware_and_profile(node, &v);
    }
}

#[test]
fn every_firmware_layout_and_nic_combination_without_vlan() {
    check_fleet(&matrix_inventory(None));
}

#[test]
fn every_firmware_layout_and_nic_combination_on_a_vlan() {
    check_fleet(&matrix_inventory(Some(200)));
}

#[test]
fn the_mixed_example() {
    check_fleet(&std::fs::read_to_string(repo_root().join("examples/mixed.toml")).unwrap());
}

#[test]
fn a_module_with_an_argument_nixos_does_not_supply_is_rejected() {
    // The old disko.nix shape: `{ disks ? [ ... ], ... }:` fails under NixOS
    // (lib/modules.nix applyModuleArgs looks every named argument up).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("old-disko.nix"),
        "{ disks ? [ \"/dev/sda\" ], ... }: { disko.devices.disk.main.device = builtins.head disks; }\n",
    )
    .unwrap();
    let harness = repo_root().join("nix/tests/as-module.nix");
    let o = std::process::Command::new("nix-instantiate")
        .current_dir(dir.path())
        .args(["--eval", "--strict", "--json", "-E"])
        .arg(format!(
            "(import {} {{ path = ./old-disko.nix; }}).config",
            harness.display()
        ))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("takes disks") && err.contains("supplies no such argument"),
        "{err}"
    );
}

#[test]
fn a_facter_report_is_used_only_where_the_release_has_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let path = repo_root().join("examples/runbook.toml");
    let o = generate(&path, dir.path());
    assert!(o.status.success());
    let node = dir.path().join("flake/nodes/node01.example.com");
    std::fs::write(node.join("facter.json"), "{}\n").unwrap();
    let harness = repo_root().join("nix/tests/as-module.nix");
    let eval = |options: &str| {
        nix_eval(
            &node,
            &format!(
                "(import {} {{ path = ./hardware.nix; options = {options}; }}).config",
                harness.display()
            ),
        )
    };
    // 25.11 and later declare hardware.facter: the report is used, its DHCP stays off.
    let with = eval("{ hardware.facter.reportPath = { }; }");
    assert!(
        with["hardware"]["facter"]["reportPath"]
            .as_str()
            .unwrap()
            .ends_with("facter.json")
    );
    assert_eq!(
        with["hardware"]["facter"]["detected"]["dhcp"]["enable"],
        json!(false)
    );
    // A release without the option: nothing is set, so nothing is an unknown option.
    let without = eval("{ }");
    assert!(without.get("hardware").is_none(), "{without}");
}

#[test]
fn firewall_tables_admit_operators_to_the_admin_apis_and_keep_raft_inside() {
    let dir = tempfile::tempdir().unwrap();
    let o = generate(&repo_root().join("examples/mixed.toml"), dir.path());
    assert!(o.status.success());
    let flake = dir.path().join("flake");
    let cp = std::fs::read_to_string(flake.join("firewall/control-plane.nft")).unwrap();
    // Management (10.0.10.0/24) is where verify, rollout and decommission run (runbook 10.4).
    assert!(
        cp.contains("tcp dport { 2379, 2479 } ip saddr { 10.0.200.0/24, 10.0.10.0/24 } accept"),
        "{cp}"
    );
    assert!(
        cp.contains("tcp dport { 2380, 2381, 2480 } ip saddr 10.0.200.0/24 accept"),
        "{cp}"
    );
    assert!(
        cp.contains("tcp dport 22 ip saddr 10.0.10.0/24 accept"),
        "{cp}"
    );
    let worker = std::fs::read_to_string(flake.join("firewall/worker.nft")).unwrap();
    assert!(
        worker.contains("tcp dport { 2379 } ip saddr { 10.0.200.0/24, 10.0.10.0/24 }"),
        "{worker}"
    );

    // The provisioning server loads its own file as one table of its own.
    let harness = repo_root().join("nix/tests/as-module.nix");
    let pxe = nix_eval(
        &flake,
        &format!(
            "(import {} {{ path = ./pxe-server.nix; }}).config",
            harness.display()
        ),
    );
    let nft = &pxe["networking"]["nftables"];
    assert_eq!(nft["enable"], json!(true));
    assert!(
        nft.get("ruleset").is_none() && nft.get("flushRuleset").is_none(),
        "{nft}"
    );
    let table = &nft["tables"]["plasmacloud-pxe"];
    assert_eq!(table["family"], json!("inet"));
    assert_eq!(
        table["content"].as_str().unwrap(),
        std::fs::read_to_string(flake.join("firewall/pxe-server.nft")).unwrap()
    );
    assert_eq!(
        pxe["services"]["centra-pxe-server"]["interface"],
        json!("enp1s0")
    );
    // A module for the operator's host: it must not take over the host's identity.
    assert!(pxe["networking"].get("hostName").is_none());
    assert!(pxe.get("system").is_none() && pxe.get("boot").is_none());
}
