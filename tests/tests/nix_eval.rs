//! Our modules evaluated without nixpkgs (nix/tests/stub-eval.nix + stub-lib.nix): the units
//! first-boot produces, the Kea configuration the PXE module produces (checked by
//! `kea-dhcp4 -t`), its boot script, and the netboot image's settings.

mod nix_support;

use std::process::Command;

use nix_support::stub_eval;
use serde_json::{Value, json};

const FIRST_BOOT: &str = "nix/modules/first-boot.nix";
const PXE: &str = "nix/modules/pxe-server.nix";
const NETBOOT: &str = "nix/netboot.nix";

fn first_boot_units(cfg: &str) -> Value {
    stub_eval(
        FIRST_BOOT,
        &format!("{{ services.first-boot-automation = {cfg}; }}"),
        "{ }",
        "config.systemd.services",
    )
    .unwrap()
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

#[test]
fn join_units_follow_the_runbook() {
    let units = first_boot_units(
        r#"{ enable = true; configFile = "/etc/plasmacloud/cluster-config.json"; iamHealthUrl = "https://localhost:8080/health"; healthTimeout = 90; joinTimeout = 200; }"#,
    );
    let names: Vec<&str> = units
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        [
            "chainfire-cluster-join",
            "flaredb-cluster-join",
            "iam-initial-health"
        ]
    );

    for svc in ["chainfire", "flaredb"] {
        let u = &units[format!("{svc}-cluster-join")];
        let own = format!("{svc}.service");
        assert!(strs(&u["after"]).contains(&own.as_str()), "{svc}: {u}");
        assert!(strs(&u["after"]).contains(&"network-online.target"));
        assert!(strs(&u["wants"]).contains(&"network-online.target"));
        assert_eq!(strs(&u["requires"]), [own.as_str()]);
        assert_eq!(strs(&u["wantedBy"]), ["multi-user.target"]);
        assert_eq!(u["restartIfChanged"], json!(false));
        assert_eq!(
            u["unitConfig"]["ConditionPathExists"],
            json!(format!("!/var/lib/plasma-agent/{svc}.joined"))
        );
        let s = &u["serviceConfig"];
        assert_eq!(s["Type"], "oneshot");
        assert_eq!(s["RemainAfterExit"], json!(true));
        assert_eq!(s["StateDirectory"], "plasma-agent");
        assert_eq!(s["Restart"], "on-failure");
        assert_eq!(s["RestartPreventExitStatus"], "2");
        assert!(u["startLimitBurst"].as_u64().unwrap() > 0);
        // systemd must outlast the agent's own deadlines.
        assert!(s["TimeoutStartSec"].as_u64().unwrap() > 90 + 200);
        assert_eq!(
            s["ExecStart"],
            json!(format!(
                "/nix/store/00000000000000000000000000000000-plasma-agent/bin/plasma-agent join --config /etc/plasmacloud/cluster-config.json --service {svc} --state-dir /var/lib/plasma-agent"
            ))
        );
    }
    // FlareDB points at Chainfire: its join runs after Chainfire's.
    let flaredb = &units["flaredb-cluster-join"];
    assert!(strs(&flaredb["after"]).contains(&"chainfire-cluster-join.service"));
    assert!(
        !strs(&units["chainfire-cluster-join"]["after"]).contains(&"flaredb-cluster-join.service")
    );

    let iam = &units["iam-initial-health"];
    assert!(strs(&iam["after"]).contains(&"flaredb-cluster-join.service"));
    assert!(strs(&iam["requires"]).contains(&"iam.service"));
    assert_eq!(
        iam["serviceConfig"]["ExecStart"],
        "/nix/store/00000000000000000000000000000000-plasma-agent/bin/plasma-agent wait-healthy --config /etc/plasmacloud/cluster-config.json --url https://localhost:8080/health --expect database=connected"
    );
}

#[test]
fn worker_without_iam_and_chainfire_only() {
    let units = first_boot_units(
        r#"{ enable = true; configFile = "/etc/c.json"; services = [ "chainfire" ]; }"#,
    );
    let names: Vec<&str> = units
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["chainfire-cluster-join"]);

    let units = first_boot_units(
        r#"{ enable = true; configFile = "/etc/c.json"; services = [ "flaredb" ]; }"#,
    );
    // Without a Chainfire unit there is nothing to order after.
    assert!(
        !strs(&units["flaredb-cluster-join"]["after"]).contains(&"chainfire-cluster-join.service")
    );
}

#[test]
fn disabled_module_produces_nothing() {
    let cfg = stub_eval(FIRST_BOOT, "{ }", "{ }", "config").unwrap();
    assert_eq!(cfg, json!({}));
}

#[test]
fn undeclared_or_mistyped_settings_are_refused() {
    let err = stub_eval(
        FIRST_BOOT,
        r#"{ services.first-boot-automation = { enable = true; configFile = "/c.json"; stateDir = "/x"; }; }"#,
        "{ }",
        "config",
    )
    .unwrap_err();
    assert!(
        err.contains("services.first-boot-automation.stateDir does not exist"),
        "{err}"
    );

    let err = stub_eval(
        FIRST_BOOT,
        r#"{ services.first-boot-automation = { enable = true; configFile = "/c.json"; healthTimeout = "120"; }; }"#,
        "{ }",
        "config",
    )
    .unwrap_err();
    assert!(
        err.contains("services.first-boot-automation.healthTimeout"),
        "{err}"
    );

    let err = stub_eval(
        FIRST_BOOT,
        r#"{ services.first-boot-automation = { enable = true; configFile = "/c.json"; services = [ "iam" ]; }; }"#,
        "{ }",
        "config",
    )
    .unwrap_err();
    assert!(
        err.contains("services.first-boot-automation.services"),
        "{err}"
    );
}

/// The runbook's PXE server (5.1), plus a domain name and the collector.
const RUNBOOK_PXE: &str = r#"{ services.centra-pxe-server = {
  enable = true;
  interface = "eth0";
  serverAddress = "10.0.100.10";
  dhcp = {
    subnet = "10.0.100.0";
    netmask = "255.255.255.0";
    broadcast = "10.0.100.255";
    range = { start = "10.0.100.100"; end = "10.0.100.200"; };
    router = "10.0.100.1";
    domainNameServers = [ "10.0.100.1" "8.8.8.8" ];
    domainName = "prov.example.com";
  };
  nodes = {
    "52:54:00:12:34:56" = { profile = "control-plane"; hostname = "node01"; ipAddress = "10.0.100.50"; };
    "52:54:00:12:34:57" = { profile = "control-plane"; hostname = "node02"; ipAddress = "10.0.100.51"; };
    "52:54:00:12:34:5A" = { profile = "worker"; hostname = "node05"; ipAddress = "10.0.100.61"; };
  };
  collector = { enable = true; inventoryFile = "/srv/provisioning/inventory.toml"; secretsDir = "/srv/provisioning/secrets"; };
}; }"#;

fn pxe(select: &str) -> Value {
    stub_eval(PXE, RUNBOOK_PXE, "{ }", select).unwrap()
}

fn kea_check(settings: &Value) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kea-dhcp4.conf");
    std::fs::write(
        &file,
        serde_json::to_vec(&json!({ "Dhcp4": settings })).unwrap(),
    )
    .unwrap();
    let out = Command::new("kea-dhcp4")
        .arg("-t")
        .arg(&file)
        .output()
        .expect("kea-dhcp4 runs (Debian package kea-dhcp4-server)");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn kea_configuration_is_valid_and_complete() {
    let kea = pxe("config.services.kea.dhcp4");
    assert_eq!(kea["enable"], json!(true));
    let settings = &kea["settings"];
    kea_check(settings).unwrap();

    assert_eq!(settings["interfaces-config"]["interfaces"], json!(["eth0"]));
    let subnet = &settings["subnet4"][0];
    assert_eq!(subnet["subnet"], "10.0.100.0/24");
    assert_eq!(
        subnet["pools"],
        json!([{ "pool": "10.0.100.100 - 10.0.100.200" }])
    );
    assert_eq!(subnet["next-server"], "10.0.100.10");
    let options: Vec<(String, String)> = subnet["option-data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().to_owned(),
                o["data"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        ("routers", "10.0.100.1"),
        ("broadcast-address", "10.0.100.255"),
        ("domain-name-servers", "10.0.100.1, 8.8.8.8"),
        ("domain-name", "prov.example.com"),
    ] {
        assert!(
            options.contains(&(want.0.into(), want.1.into())),
            "{want:?} in {options:?}"
        );
    }
    // Reservations: one per node, MACs lower-cased as Kea and iPXE print them.
    let res: Vec<(&str, &str, &str)> = subnet["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["hw-address"].as_str().unwrap(),
                r["ip-address"].as_str().unwrap(),
                r["hostname"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        res,
        [
            ("52:54:00:12:34:56", "10.0.100.50", "node01"),
            ("52:54:00:12:34:57", "10.0.100.51", "node02"),
            ("52:54:00:12:34:5a", "10.0.100.61", "node05"),
        ]
    );
    // The runbook's boot-file choice, one class each.
    let classes: Vec<(&str, &str)> = settings["client-classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["boot-file-name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        classes,
        [
            ("ipxe", "http://10.0.100.10:8080/boot/ipxe/boot.ipxe"),
            ("bios", "undionly.kpxe"),
            ("uefi", "ipxe.efi"),
            ("fallback", "ipxe.efi"),
        ]
    );
    let tests: Vec<&str> = settings["client-classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["test"].as_str().unwrap())
        .collect();
    assert!(tests[0].contains("option[77].hex == 'iPXE'"));
    assert!(tests[1].contains("option[93].hex == 0x0000"));
    assert!(tests[2].contains("0x0007") && tests[2].contains("0x0009"));
}

#[test]
fn kea_check_rejects_a_broken_configuration() {
    // The validator must be able to fail: break one class expression and one address.
    let mut settings = pxe("config.services.kea.dhcp4.settings");
    settings["client-classes"][1]["test"] = json!("option[93].hex ==");
    assert!(kea_check(&settings).is_err());
    let mut settings = pxe("config.services.kea.dhcp4.settings");
    settings["subnet4"][0]["reservations"][0]["ip-address"] = json!("10.0.100.999");
    assert!(kea_check(&settings).is_err());
}

#[test]
fn odd_netmask_gives_the_right_prefix() {
    let settings = stub_eval(
        PXE,
        &RUNBOOK_PXE.replace("255.255.255.0", "255.255.252.0"),
        "{ }",
        "config.services.kea.dhcp4.settings.subnet4",
    )
    .unwrap();
    assert_eq!(settings[0]["subnet"], "10.0.100.0/22");
}

#[test]
fn boot_script_selects_profiles_by_mac() {
    let script = pxe(
        r#"config.services.nginx.virtualHosts.centra-pxe.locations."= /boot/ipxe/boot.ipxe".alias"#,
    );
    assert!(script.as_str().unwrap().ends_with("-boot.ipxe"));
    let repo = nix_support::repo();
    let text = nix_support::eval_json(&format!(
        "import {}/nix/lib/boot-ipxe.nix {{ cfg = (import {}/nix/tests/stub-eval.nix {{ module = {}/{PXE}; settings = {RUNBOOK_PXE}; }}).values.services.centra-pxe-server; }}",
        repo.display(),
        repo.display(),
        repo.display()
    ))
    .unwrap();
    let text = text.as_str().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "#!ipxe");
    assert!(lines.contains(&"iseq ${netX/mac} 52:54:00:12:34:56 && set profile control-plane ||"));
    assert!(lines.contains(&"iseq ${netX/mac} 52:54:00:12:34:5a && set profile worker ||"));
    assert!(lines.contains(
        &"set cmdline plasmacloud.collector=https://10.0.100.10:8443 plasmacloud.mac=${netX/mac}"
    ));
    assert!(lines.contains(
        &"chain http://10.0.100.10:8080/boot/nixos/${profile}/netboot.ipxe || goto failed"
    ));
    // No defaultProfile: unknown machines go on to their next boot device.
    assert!(lines.contains(&"exit"));
    // The collector's boot listener answers first (local boot once a node is installed).
    assert_eq!(
        lines[2],
        "chain --autofree http://10.0.100.10:8081/boot/${netX/mac}.ipxe || echo No per-machine script; choosing by MAC"
    );
    assert!(!text.contains("/boot/mac/"));
}

#[test]
fn http_tftp_firewall_and_collector() {
    let cfg = pxe("config");
    let locations = &cfg["services"]["nginx"]["virtualHosts"]["centra-pxe"]["locations"];
    assert_eq!(locations["/boot/"]["alias"], "/var/lib/pxe-boot/");
    assert_eq!(
        locations["= /health"]["alias"],
        "/run/centra-pxe-health/health.json"
    );
    assert_eq!(
        cfg["services"]["nginx"]["virtualHosts"]["centra-pxe"]["listen"],
        json!([{ "addr": "0.0.0.0", "port": 8080 }])
    );
    assert_eq!(cfg["services"]["atftpd"]["enable"], json!(true));
    assert_eq!(
        cfg["networking"]["firewall"]["interfaces"]["eth0"],
        json!({ "allowedUDPPorts": [67, 69], "allowedTCPPorts": [8080, 8443, 8081] })
    );
    let collector = &cfg["systemd"]["services"]["plasmagen-collector"]["serviceConfig"];
    assert_eq!(
        collector["ExecStart"],
        "/nix/store/00000000000000000000000000000000-plasmagen/bin/plasmagen collector --listen 0.0.0.0:8443 --db /var/lib/plasmagen-collector/collector.db --inventory /srv/provisioning/inventory.toml --tls-cert %d/tls-cert --tls-key %d/tls-key --client-ca %d/client-ca --boot-listen 0.0.0.0:8081"
    );
    // The key reaches the unprivileged service as a systemd credential, never via the store.
    assert_eq!(
        collector["LoadCredential"],
        json!([
            "tls-cert:/srv/provisioning/secrets/pxe-server/pxe-server-cert.pem",
            "tls-key:/srv/provisioning/secrets/pxe-server/pxe-server-key.pem",
            "client-ca:/srv/provisioning/secrets/ca/ca-cert.pem",
        ])
    );
    assert_eq!(collector["DynamicUser"], json!(true));
    assert_eq!(collector["StateDirectory"], "plasmagen-collector");
    // /health reflects the units it watches, collector included.
    let health = &cfg["systemd"]["services"]["centra-pxe-health"]["after"];
    for unit in [
        "kea-dhcp4-server.service",
        "atftpd.service",
        "nginx.service",
        "plasmagen-collector.service",
    ] {
        assert!(strs(health).contains(&unit), "{unit}");
    }
}

#[test]
fn netboot_images_and_mac_scripts_are_served() {
    let settings = RUNBOOK_PXE.replace(
        "enable = true;\n  interface",
        r#"enable = true;
  defaultProfile = "worker";
  macScriptsDir = "/srv/provisioning/out/pxe/mac";
  collector.bootListen = null;
  netbootImages.worker = { type = "derivation"; name = "netboot-worker"; outPath = "/nix/store/11111111111111111111111111111111-netboot-worker"; };
  interface"#,
    );
    let cfg = stub_eval(PXE, &settings, "{ }", "config").unwrap();
    let locations = &cfg["services"]["nginx"]["virtualHosts"]["centra-pxe"]["locations"];
    assert_eq!(
        locations["/boot/nixos/worker/"]["alias"],
        "/nix/store/11111111111111111111111111111111-netboot-worker/"
    );
    assert_eq!(
        locations["/boot/mac/"]["alias"],
        "/srv/provisioning/out/pxe/mac/"
    );

    let repo = nix_support::repo();
    let text = nix_support::eval_json(&format!(
        "import {}/nix/lib/boot-ipxe.nix {{ cfg = (import {}/nix/tests/stub-eval.nix {{ module = {}/{PXE}; settings = {settings}; }}).values.services.centra-pxe-server; }}",
        repo.display(),
        repo.display(),
        repo.display()
    ))
    .unwrap();
    let text = text.as_str().unwrap();
    assert!(text.contains("chain --autofree http://10.0.100.10:8080/boot/mac/${netX/mac}.ipxe ||"));
    assert!(text.contains("set profile worker\ngoto boot"));
    assert!(!text.lines().any(|l| l == "exit"));
}

const NETBOOT_WORLD: &str = r#"{
  system.build = {
    kernel = { outPath = "/nix/store/k-kernel"; };
    netbootRamdisk = { outPath = "/nix/store/r-initrd"; };
    netbootIpxeScript = { outPath = "/nix/store/s-netboot-ipxe"; };
  };
  system.boot.loader.kernelFile = "bzImage";
}"#;

#[test]
fn netboot_image_settings() {
    let cfg = stub_eval(
        NETBOOT,
        r#"{ plasmacloud.netboot = { enable = true; profile = "control-plane"; sshAuthorizedKeys = [ "ssh-ed25519 AAAAC3Nza test@example" ]; collectorCaFile = "/etc/plasmacloud/ca-cert.pem"; }; }"#,
        NETBOOT_WORLD,
        "config",
    )
    .unwrap();
    assert_eq!(
        cfg["users"]["users"]["root"]["openssh"]["authorizedKeys"]["keys"],
        json!(["ssh-ed25519 AAAAC3Nza test@example"])
    );
    let ssh = &cfg["services"]["openssh"]["settings"];
    assert_eq!(ssh["PasswordAuthentication"], json!(false));
    assert_eq!(ssh["KbdInteractiveAuthentication"], json!(false));
    assert_eq!(ssh["PermitRootLogin"], "prohibit-password");
    let unit = &cfg["systemd"]["services"]["plasmacloud-discover"];
    assert_eq!(unit["serviceConfig"]["Type"], "oneshot");
    assert!(strs(&unit["after"]).contains(&"network-online.target"));
    assert_eq!(
        unit["serviceConfig"]["ExecStart"],
        "/nix/store/00000000000000000000000000000000-plasma-agent/bin/plasma-agent discover --collector-from-cmdline --timeout 600 --ca /etc/plasmacloud/ca-cert.pem"
    );
    // The BMC's LAN settings: ipmitool on the unit's PATH, the IPMI device loaded where there
    // is one ("-": no failure without a BMC).
    assert_eq!(
        unit["path"],
        json!(["/nix/store/00000000000000000000000000000000-ipmitool"])
    );
    assert_eq!(
        unit["serviceConfig"]["ExecStartPre"],
        "-/nix/store/00000000000000000000000000000000-kmod/bin/modprobe -a ipmi_si ipmi_devintf"
    );
    assert!(
        cfg["assertions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["assertion"] == json!(true))
    );
    let image = cfg["system"]["build"]["plasmacloudNetboot"]
        .as_str()
        .unwrap();
    assert!(
        image.ends_with("-plasmacloud-netboot-control-plane"),
        "{image}"
    );
    let entries = stub_eval(
        NETBOOT,
        r#"{ plasmacloud.netboot = { enable = true; sshAuthorizedKeys = [ "k" ]; }; }"#,
        NETBOOT_WORLD,
        "config.system.build.plasmacloudNetboot.entries",
    )
    .unwrap();
    let entries: Vec<(&str, &str)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        entries,
        [
            ("bzImage", "/nix/store/k-kernel/bzImage"),
            ("initrd", "/nix/store/r-initrd/initrd"),
            ("netboot.ipxe", "/nix/store/s-netboot-ipxe/netboot.ipxe"),
        ]
    );
}

#[test]
fn netboot_without_keys_fails_its_assertion() {
    let asserts = stub_eval(
        NETBOOT,
        r#"{ plasmacloud.netboot = { enable = true; sshAuthorizedKeys = [ ]; }; }"#,
        NETBOOT_WORLD,
        "config.assertions",
    )
    .unwrap();
    assert_eq!(asserts[0]["assertion"], json!(false));
    assert!(
        asserts[0]["message"]
            .as_str()
            .unwrap()
            .contains("sshAuthorizedKeys")
    );
}

#[test]
fn generated_ipxe_directory_replaces_the_module_script() {
    let settings = RUNBOOK_PXE.replace(
        "enable = true;\n  interface",
        "enable = true;\n  ipxeDir = \"/srv/provisioning/out/pxe\";\n  interface",
    );
    let locations = stub_eval(
        PXE,
        &settings,
        "{ }",
        "config.services.nginx.virtualHosts.centra-pxe.locations",
    )
    .unwrap();
    assert_eq!(
        locations["/boot/ipxe/"]["alias"],
        "/srv/provisioning/out/pxe/"
    );
    assert!(
        locations.get("= /boot/ipxe/boot.ipxe").is_none(),
        "{locations}"
    );
    // DHCP still hands iPXE the same URL.
    let classes = stub_eval(
        PXE,
        &settings,
        "{ }",
        "config.services.kea.dhcp4.settings.client-classes",
    )
    .unwrap();
    assert_eq!(
        classes[0]["boot-file-name"],
        "http://10.0.100.10:8080/boot/ipxe/boot.ipxe"
    );
}
