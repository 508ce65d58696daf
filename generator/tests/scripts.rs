//! The generated operator scripts (scripts/*.sh): shellcheck-clean, and run for real against
//! stand-in executables on PATH (ipmitool, ssh, nixos-anywhere, nixos-rebuild, curl, plasmagen)
//! that record their argv; `--dry-run` prints exactly the commands a real run executes.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use common::{generate, repo_root, require_tool};

const SCRIPTS: [&str; 4] = [
    "provision.sh",
    "verify-cluster.sh",
    "rolling-update.sh",
    "decommission.sh",
];

/// Records argv (fields separated by \x1f, one call a line) in $STUB_DIR/calls.log.
const RECORD: &str = r#"#!/usr/bin/env bash
set -u
rec=$(printf '%s\x1f' "${0##*/}" "$@")
printf '%s\n' "${rec%$'\x1f'}" >>"$STUB_DIR/calls.log"
"#;

/// Fails when any argument is listed in $STUB_DIR/fail.
const FAIL_IF_LISTED: &str = r#"for a in "$@"; do
  if [[ -f $STUB_DIR/fail ]] && grep -qxF -- "$a" "$STUB_DIR/fail"; then
    echo "stand-in ${0##*/}: failing for $a" >&2
    exit 1
  fi
done
"#;

const IPMITOOL: &str = r#"if [[ " $* " == *" -E "* && -z ${IPMI_PASSWORD-} ]]; then echo "stand-in ipmitool: -E without IPMI_PASSWORD" >&2; exit 1; fi
if [[ " $* " == *" -f "* ]]; then
  prev=""
  for a in "$@"; do
    if [[ $prev == -f && ! -r $a ]]; then echo "stand-in ipmitool: cannot read $a" >&2; exit 1; fi
    prev=$a
  done
fi
if [[ " $* " == *" power status"* ]]; then echo "Chassis Power is $(cat "$STUB_DIR/power" 2>/dev/null || echo off)"; fi
"#;

const SSH: &str = r#"n=$(cat "$STUB_DIR/ssh_fails" 2>/dev/null || echo 0)
if [[ $n == always ]]; then exit 255; fi
if ((n > 0)); then echo $((n - 1)) >"$STUB_DIR/ssh_fails"; exit 255; fi
"#;

/// With $STUB_DIR/barrier = N, waits (10 s at most) until N installs run at the same time.
const BARRIER: &str = r#"if [[ -f $STUB_DIR/barrier ]]; then
  mkdir -p "$STUB_DIR/arrived" && touch "$STUB_DIR/arrived/$$"
  for _ in $(seq 100); do
    if (($(ls "$STUB_DIR/arrived" | wc -l) >= $(cat "$STUB_DIR/barrier"))); then exit 0; fi
    sleep 0.1
  done
  echo "stand-in nixos-anywhere: the other installs never started (not parallel)" >&2
  exit 1
fi
"#;

/// Answers from $STUB_DIR/responses/<key>[.<nth call>]; unknown URLs: connection refused.
const CURL: &str = r#"method=GET url="" args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    -k | --insecure) echo "stand-in curl: -k refused" >&2; exit 99 ;;
    -X) method=${args[i + 1]} ;;
    --cacert) [[ -r ${args[i + 1]} ]] || { echo "curl: (77) CA ${args[i + 1]}" >&2; exit 77; } ;;
    --cert | --key) [[ -r ${args[i + 1]} ]] || { echo "curl: (58) ${args[i + 1]}" >&2; exit 58; } ;;
    https://*) url=${args[i]} ;;
  esac
done
key="$method ${url#https://}"
key=${key//[^A-Za-z0-9.]/_}
mkdir -p "$STUB_DIR/count"
n=$(($(cat "$STUB_DIR/count/$key" 2>/dev/null || echo 0) + 1))
echo "$n" >"$STUB_DIR/count/$key"
f=$STUB_DIR/responses/$key.$n
[[ -f $f ]] || f=$STUB_DIR/responses/$key
if [[ -f $f ]]; then cat "$f"; exit 0; fi
echo "curl: (7) Failed to connect to $url" >&2
exit 7
"#;

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    flake: PathBuf,
    secrets: PathBuf,
    bin: PathBuf,
    stub: PathBuf,
}

impl Env {
    /// Generate `inventory` (TOML text) into a temp dir and install the stand-ins.
    fn new(inventory: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let inv = root.join("inventory.toml");
        fs::write(
            &inv,
            inventory.replace("@ROOT@", &root.display().to_string()),
        )
        .expect("write inventory");
        let out = root.join("out");
        generate(&inv, &out);
        let env = Env {
            flake: out.join("flake"),
            secrets: out.join("secrets"),
            bin: root.join("bin"),
            stub: root.join("stub"),
            root,
            _dir: dir,
        };
        fs::create_dir_all(env.stub.join("responses")).expect("mkdir");
        fs::create_dir_all(&env.bin).expect("mkdir");
        let stubs = [
            ("ipmitool", IPMITOOL),
            ("ssh", SSH),
            ("nixos-anywhere", &*format!("{FAIL_IF_LISTED}{BARRIER}")),
            ("nixos-rebuild", FAIL_IF_LISTED),
            ("curl", CURL),
            ("plasmagen", ""),
        ];
        for (name, body) in stubs {
            env.stand_in(name, body);
        }
        env
    }

    fn stand_in(&self, name: &str, body: &str) {
        let p = self.bin.join(name);
        fs::write(&p, format!("{RECORD}{body}exit 0\n")).expect("write stand-in");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    fn runbook() -> Env {
        Env::new(&fs::read_to_string(repo_root().join("examples/runbook.toml")).expect("example"))
    }

    fn script_path(&self, name: &str) -> PathBuf {
        self.flake.join("scripts").join(name)
    }

    /// The script with only the stand-ins and the base system on PATH.
    fn script(&self, name: &str) -> Command {
        let mut c = Command::new(self.script_path(name));
        self.isolate(&mut c);
        c
    }

    fn isolate(&self, c: &mut Command) {
        c.env("PATH", format!("{}:/usr/bin:/bin", self.bin.display()))
            .env("STUB_DIR", &self.stub)
            .env_remove("IPMI_PASSWORD")
            .current_dir(&self.root);
    }

    fn calls(&self) -> Vec<Vec<String>> {
        match fs::read_to_string(self.stub.join("calls.log")) {
            Ok(text) => text
                .lines()
                .map(|l| l.split('\x1f').map(str::to_string).collect())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    fn reset_calls(&self) {
        let _ = fs::remove_file(self.stub.join("calls.log"));
        let _ = fs::remove_dir_all(self.stub.join("count"));
    }

    fn set(&self, file: &str, text: &str) {
        fs::write(self.stub.join(file), text).expect("write stub control");
    }

    /// The body curl answers for the `nth` call (or every call) of METHOD URL.
    fn respond(&self, method: &str, url: &str, nth: Option<u32>, body: &str) {
        let key: String = format!("{method} {}", url.trim_start_matches("https://"))
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = nth.map_or(key.clone(), |n| format!("{key}.{n}"));
        fs::write(self.stub.join("responses").join(name), body).expect("write response");
    }

    fn no_response(&self, method: &str, url: &str) {
        let key: String = format!("{method} {}", url.trim_start_matches("https://"))
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let _ = fs::remove_file(self.stub.join("responses").join(key));
    }

    /// Replace the temp paths in `text` with {flake} / {secrets} / {root}.
    fn placeholders(&self, text: &str) -> String {
        text.replace(&self.flake.display().to_string(), "{flake}")
            .replace(&self.secrets.display().to_string(), "{secrets}")
            .replace(&self.root.display().to_string(), "{root}")
    }

    /// Every curl call verifies the server with the CA and authenticates as the operator.
    fn assert_tls_everywhere(&self) {
        let ca = self.secrets.join("ca/ca-cert.pem").display().to_string();
        let cert = self
            .secrets
            .join("operator/operator-cert.pem")
            .display()
            .to_string();
        let key = self
            .secrets
            .join("operator/operator-key.pem")
            .display()
            .to_string();
        let calls = self.calls();
        let curls: Vec<_> = calls.iter().filter(|c| c[0] == "curl").collect();
        assert!(!curls.is_empty(), "no curl calls");
        for c in curls {
            for (flag, value) in [("--cacert", &ca), ("--cert", &cert), ("--key", &key)] {
                let at = c
                    .iter()
                    .position(|a| a == flag)
                    .unwrap_or_else(|| panic!("{flag} missing: {c:?}"));
                assert_eq!(&c[at + 1], value, "{c:?}");
            }
            assert!(c.iter().all(|a| a != "-k" && a != "--insecure"), "{c:?}");
            assert!(c.iter().any(|a| a == "--fail"), "{c:?}");
        }
    }
}

fn run(mut c: impl std::borrow::BorrowMut<Command>) -> Output {
    c.borrow_mut().output().expect("run script")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    )
}

const TLS: &str = "--fail --silent --show-error --max-time 10 --cacert {secrets}/ca/ca-cert.pem --cert {secrets}/operator/operator-cert.pem --key {secrets}/operator/operator-key.pem";

fn curl(rest: &str) -> String {
    format!("curl {TLS} {rest}")
}

/// A healthy runbook cluster: Chainfire and FlareDB with `leader`, IAM connected.
fn healthy_cluster(env: &Env, leader: &str) {
    let all = [
        ("node01", "10.0.200.10"),
        ("node02", "10.0.200.11"),
        ("node03", "10.0.200.12"),
        ("node04", "10.0.200.20"),
        ("node05", "10.0.200.21"),
    ];
    for (svc, port) in [("chainfire", 2379), ("flaredb", 2479)] {
        let members: Vec<String> = all
            .iter()
            .filter(|(n, _)| svc == "chainfire" || ["node01", "node02", "node03"].contains(n))
            .map(|(n, ip)| {
                let role = if *n == leader { "leader" } else { "follower" };
                format!(
                    r#"{{"id":"{n}","raft_addr":"{ip}:{}","status":"healthy","role":"{role}"}}"#,
                    port + 1
                )
            })
            .collect();
        let doc = format!(r#"{{"members":[{}]}}"#, members.join(","));
        for (n, ip) in all {
            if svc == "flaredb" && !["node01", "node02", "node03"].contains(&n) {
                continue;
            }
            env.respond(
                "GET",
                &format!("https://{ip}:{port}/admin/cluster/members"),
                None,
                &doc,
            );
            env.respond(
                "GET",
                &format!("https://{ip}:{port}/admin/cluster/leader"),
                None,
                &format!(r#"{{"id":"{leader}","leader":"https://{leader}.example.com:{port}"}}"#),
            );
            env.respond(
                "GET",
                &format!("https://{ip}:{port}/health"),
                None,
                r#"{"status":"healthy","raft":"follower"}"#,
            );
        }
    }
    for ip in ["10.0.200.10", "10.0.200.11", "10.0.200.12"] {
        env.respond(
            "GET",
            &format!("https://{ip}:8080/health"),
            None,
            r#"{"status":"healthy","database":"connected","version":"1.0.0"}"#,
        );
    }
}

/// 3 control-plane + 50 workers with values that are valid but mean something to bash.
fn large_fleet() -> String {
    let mut s = String::from(
        r#"[cluster]
name = "big"
domain = "big.example.net"
bootstrap = ["cp-1", "cp-2", "cp-3"]
ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkd86f/K36q5Khr2jtCpqAhME6U6WYvfZ+SRxEj42Ve ops@example.com"]
state_version = "26.05"
collector_url = "https://10.0.100.10:8443/c?a=1&b=(2)*!~"

[networks.provisioning]
subnet = "10.0.100.0/24"
gateway = "10.0.100.1"
nameservers = ["10.0.100.1"]
dhcp_range = { start = "10.0.100.200", end = "10.0.100.250" }
pxe_server = "10.0.100.10"
interface = "eth0"

[networks.production]
subnet = "10.0.200.0/24"
gateway = "10.0.200.1"
nameservers = ["10.0.200.1"]
"#,
    );
    for i in 0..53u32 {
        let (name, role) = if i < 3 {
            (format!("cp-{}", i + 1), "control-plane")
        } else {
            (format!("w{:02}", i - 2), "worker")
        };
        let layout = if i % 7 == 4 { "luks-lvm" } else { "single" };
        s.push_str(&format!(
            "\n[[nodes]]\nhostname = \"{name}\"\nrole = \"{role}\"\nmac = \"52:54:00:00:01:{i:02x}\"\nprovisioning_ip = \"10.0.100.{}\"\nproduction_ip = \"10.0.200.{}\"\ndisks = [\"/dev/disk/by-id/nvme-X_{i}\"]\ndisk_layout = \"{layout}\"\n",
            20 + i,
            10 + i
        ));
        if i % 2 == 0 {
            s.push_str(&format!(
                "bmc = {{ address = \"bmc-{name}.oob.example.net\", username = \"op.er-ator@x_y\", password_file = \"@ROOT@/bmc/p&w|(x)<y>*?!#~{{a,b}}\" }}\n"
            ));
        } else if i % 3 == 0 {
            s.push_str(&format!(
                "bmc = {{ address = \"10.0.10.{i}\", username = \"admin\" }}\n"
            ));
        }
    }
    s
}

const HOSTILE_PW: &str = "bmc/p&w|(x)<y>*?!#~{a,b}";

#[test]
fn shellcheck_accepts_every_script_for_the_runbook_and_a_large_fleet() {
    require_tool("shellcheck", "shellcheck");
    for env in [Env::runbook(), Env::new(&large_fleet())] {
        for s in SCRIPTS {
            let p = env.script_path(s);
            let mode = fs::metadata(&p).expect("script").permissions().mode() & 0o777;
            assert_eq!(mode, 0o755, "{s} is not executable");
            let o = run(Command::new("shellcheck").arg("--severity=style").arg(&p));
            assert!(o.status.success(), "shellcheck {s}:\n{}", show(&o));
            let o = run(env.script(s).arg("--help"));
            assert!(o.status.success(), "{s} --help: {}", show(&o));
            assert!(text(&o.stdout).contains("--dry-run"), "{s} --help");
        }
        // The node table is the inventory, in order.
        let provision = fs::read_to_string(env.script_path("provision.sh")).expect("read");
        let rows = provision
            .lines()
            .filter(|l| l.starts_with("node '"))
            .count();
        assert!(rows == 5 || rows == 53, "{rows} node rows");
    }
}

#[test]
fn provision_dry_run_of_a_luks_node_uploads_the_key_and_unlocks_after_the_install() {
    let inventory = fs::read_to_string(repo_root().join("examples/runbook.toml"))
        .unwrap()
        .replacen(
            "production_macs = [\"52:54:00:12:35:59\"]",
            "production_macs = [\"52:54:00:12:35:59\"]\ndisk_layout = \"luks-lvm\"",
            1,
        );
    assert!(inventory.contains("luks-lvm"));
    let env = Env::new(&inventory);
    let o = run(env
        .script("provision.sh")
        .args(["--dry-run", "--no-power", "node04"]));
    assert!(o.status.success(), "{}", show(&o));
    let out = env.placeholders(&text(&o.stdout));
    let install = out
        .find("nixos-anywhere --flake {flake}#node04 --extra-files {secrets}/nodes/node04 --disk-encryption-keys /tmp/secret.key {secrets}/luks/node04.key root@10.0.100.60")
        .unwrap_or_else(|| panic!("{out}"));
    let unlock = out
        .find("plasmagen unlock {root}/out node04 --secrets {secrets} --wait 900")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(install < unlock, "{out}");
    assert!(env.calls().is_empty());
}

#[test]
fn provision_never_sends_ipmitool_to_a_redfish_bmc() {
    let inventory = fs::read_to_string(repo_root().join("examples/runbook.toml"))
        .unwrap()
        .replacen(
            "bmc = { address = \"10.0.10.54\", username = \"admin\" }",
            "bmc = { protocol = \"redfish\", address = \"10.0.10.54\", username = \"admin\" }",
            1,
        );
    assert!(inventory.contains("protocol = \"redfish\""));
    let env = Env::new(&inventory);
    let o = run(env.script("provision.sh").args(["--dry-run", "node04"]));
    assert!(o.status.success(), "{}", show(&o));
    let out = text(&o.stdout);
    assert!(!out.contains("ipmitool"), "{out}");
    assert!(
        show(&o).contains("no IPMI BMC in the inventory"),
        "{}",
        show(&o)
    );
}

#[test]
fn provision_dry_run_prints_the_commands_and_runs_none() {
    let env = Env::runbook();
    let o =
        run(env
            .script("provision.sh")
            .args(["--dry-run", "node04", "--", "--build-on-remote"]));
    assert!(o.status.success(), "{}", show(&o));
    let expected = "\
# node04 (worker)
ipmitool -I lanplus -H 10.0.10.54 -U admin -E chassis bootdev pxe
ipmitool -I lanplus -H 10.0.10.54 -U admin -E chassis power status
ipmitool -I lanplus -H 10.0.10.54 -U admin -E chassis power on
# (chassis power cycle instead when the status says it is on)
# repeated until it succeeds (at most 900s):
ssh -o BatchMode=yes -o ConnectTimeout=5 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@10.0.100.60 true
nixos-anywhere --flake {flake}#node04 --extra-files {secrets}/nodes/node04 --build-on-remote root@10.0.100.60
plasmagen mark-installed node04 --collector https://10.0.100.10:8443 --secrets {secrets}
";
    assert_eq!(env.placeholders(&text(&o.stdout)), expected);
    assert!(env.calls().is_empty(), "dry run executed {:?}", env.calls());
    // Without IPMI_PASSWORD a real run would stop: the dry run says so.
    assert!(
        text(&o.stderr).contains("export IPMI_PASSWORD"),
        "{}",
        show(&o)
    );
}

#[test]
fn provision_bootstrap_runs_the_members_in_parallel_with_a_log_each() {
    let env = Env::runbook();
    env.set("barrier", "3");
    let logs = env.root.join("logs");
    let o = run(env
        .script("provision.sh")
        .args(["--bootstrap", "--logs"])
        .arg(&logs)
        .env("IPMI_PASSWORD", "pw"));
    assert!(o.status.success(), "{}", show(&o));
    let calls = env.calls();
    for (n, bmc, ip) in [
        ("node01", "10.0.10.50", "10.0.100.50"),
        ("node02", "10.0.10.51", "10.0.100.51"),
        ("node03", "10.0.10.52", "10.0.100.52"),
    ] {
        let mine: Vec<String> = calls
            .iter()
            .filter(|c| c.iter().any(|a| a == bmc || a.ends_with(ip) || a == n))
            .map(|c| env.placeholders(&c.join(" ")))
            .collect();
        assert_eq!(
            mine,
            [
                format!("ipmitool -I lanplus -H {bmc} -U admin -E chassis bootdev pxe"),
                format!("ipmitool -I lanplus -H {bmc} -U admin -E chassis power status"),
                format!("ipmitool -I lanplus -H {bmc} -U admin -E chassis power on"),
                format!(
                    "ssh -o BatchMode=yes -o ConnectTimeout=5 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@{ip} true"
                ),
                format!(
                    "nixos-anywhere --flake {{flake}}#{n} --extra-files {{secrets}}/nodes/{n} root@{ip}"
                ),
                format!(
                    "plasmagen mark-installed {n} --collector https://10.0.100.10:8443 --secrets {{secrets}}"
                ),
            ],
            "{n}"
        );
        let log = fs::read_dir(&logs)
            .expect("logs dir")
            .map(|e| e.expect("entry").path())
            .find(|p| {
                p.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .starts_with(&format!("{n}-"))
            })
            .unwrap_or_else(|| panic!("no log for {n}"));
        assert!(
            fs::read_to_string(&log)
                .expect("log")
                .contains(&format!("{n}: installed"))
        );
        let summary = text(&o.stdout);
        let row = summary
            .lines()
            .find(|l| l.starts_with(n))
            .unwrap_or_else(|| panic!("no summary row for {n}:\n{summary}"));
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [n, "ok", &log.display().to_string()]
        );
    }
    assert_eq!(calls.len(), 18);
}

#[test]
fn provision_failure_is_reported_in_the_summary_and_the_exit_status() {
    let env = Env::runbook();
    env.set("fail", "root@10.0.100.51\n");
    env.set("power", "on");
    let logs = env.root.join("logs");
    let o = run(env
        .script("provision.sh")
        .args(["--bootstrap", "--logs"])
        .arg(&logs)
        .env("IPMI_PASSWORD", "pw"));
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let summary = text(&o.stdout);
    let status = |n: &str| {
        summary
            .lines()
            .find(|l| l.starts_with(n))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
    };
    assert_eq!(status("node01").as_deref(), Some("ok"), "{summary}");
    assert_eq!(status("node02").as_deref(), Some("FAILED"), "{summary}");
    assert_eq!(status("node03").as_deref(), Some("ok"), "{summary}");
    assert!(
        summary.contains("node02: FAILED: nixos-anywhere (exit 1)"),
        "{summary}"
    );
    assert!(text(&o.stderr).contains("1 of 3 nodes failed"));
    let calls = env.calls();
    // A machine that is on is power-cycled into the installer.
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.ends_with(&["chassis".into(), "power".into(), "cycle".into()]))
            .count(),
        3
    );
    assert!(!calls.iter().any(|c| c.iter().any(|a| a == "on")));
    let marked: Vec<&str> = calls
        .iter()
        .filter(|c| c[0] == "plasmagen")
        .map(|c| c[2].as_str())
        .collect();
    assert_eq!(marked.len(), 2);
    assert!(!marked.contains(&"node02"));
}

#[test]
fn provision_waits_for_ssh_and_gives_up_with_a_clear_message() {
    let env = Env::runbook();
    env.set("ssh_fails", "2");
    let o = run(env
        .script("provision.sh")
        .args(["--no-power", "--poll-interval", "0", "node05"]));
    assert!(o.status.success(), "{}", show(&o));
    let names: Vec<String> = env.calls().into_iter().map(|c| c[0].clone()).collect();
    assert_eq!(names, ["ssh", "ssh", "ssh", "nixos-anywhere", "plasmagen"]);

    env.reset_calls();
    env.set("ssh_fails", "always");
    let o = run(env.script("provision.sh").args([
        "--no-power",
        "--poll-interval",
        "0",
        "--ssh-timeout",
        "1",
        "node05",
    ]));
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        text(&o.stdout).contains("no SSH on root@10.0.100.61 after 1s"),
        "{}",
        show(&o)
    );
    assert!(
        env.calls().iter().all(|c| c[0] == "ssh"),
        "went on after the timeout: {:?}",
        env.calls()
    );
}

#[test]
fn provision_checks_before_touching_any_machine() {
    let env = Env::runbook();
    // No IPMI_PASSWORD and no password_file.
    let o = run(env.script("provision.sh").arg("node04"));
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(text(&o.stderr).contains("node04: its BMC has no password_file: export IPMI_PASSWORD"));
    // Secrets missing for the node.
    fs::rename(env.secrets.join("nodes/node05"), env.root.join("moved")).expect("move");
    let o = run(env.script("provision.sh").args(["--no-power", "node05"]));
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(text(&o.stderr).contains("node05: missing"), "{}", show(&o));
    // Usage errors.
    for bad in [
        &["nodeX"][..],
        &[][..],
        &["--bootstrap", "node04"][..],
        &["--ssh-timeout", "x", "node04"][..],
    ] {
        let o = run(env.script("provision.sh").args(bad));
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", show(&o));
    }
    assert!(env.calls().is_empty(), "{:?}", env.calls());
}

#[test]
fn provision_without_plasmagen_on_path_warns_and_succeeds() {
    let env = Env::runbook();
    fs::remove_file(env.bin.join("plasmagen")).expect("rm");
    let o = run(env.script("provision.sh").args(["--no-power", "node04"]));
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        text(&o.stdout).contains("plasmagen is not on PATH; run 'plasmagen mark-installed node04"),
        "{}",
        show(&o)
    );
    // And a collector failure is only a warning.
    env.stand_in("plasmagen", "exit 1\n");
    let o = run(env.script("provision.sh").args(["--no-power", "node04"]));
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        text(&o.stdout).contains("could not tell the collector"),
        "{}",
        show(&o)
    );
}

#[test]
fn hostile_values_reach_the_commands_as_single_arguments() {
    let env = Env::new(&large_fleet());
    let pw = env.root.join(HOSTILE_PW);
    fs::create_dir_all(pw.parent().expect("parent")).expect("mkdir");
    fs::write(&pw, "secret").expect("write");
    // w02 is luks-lvm with a password file; the LUKS passphrase is the operator's file.
    fs::create_dir_all(env.secrets.join("luks")).expect("mkdir");
    fs::write(env.secrets.join("luks/w02.key"), "passphrase").expect("write");
    let o = run(env
        .script("provision.sh")
        .args(["--logs"])
        .arg(env.root.join("logs"))
        .arg("w02"));
    assert!(o.status.success(), "{}", show(&o));
    let calls = env.calls();
    let pw = pw.display().to_string();
    let flake = env.flake.display().to_string();
    let secrets = env.secrets.display().to_string();
    let ipmi = |rest: &[&str]| -> Vec<String> {
        [
            "ipmitool",
            "-I",
            "lanplus",
            "-H",
            "bmc-w02.oob.example.net",
            "-U",
            "op.er-ator@x_y",
            "-f",
            &pw,
        ]
        .iter()
        .chain(rest)
        .map(|s| s.to_string())
        .collect()
    };
    assert_eq!(calls[0], ipmi(&["chassis", "bootdev", "pxe"]));
    assert_eq!(calls[1], ipmi(&["chassis", "power", "status"]));
    assert_eq!(calls[2], ipmi(&["chassis", "power", "on"]));
    assert_eq!(
        calls[4],
        [
            "nixos-anywhere".to_string(),
            "--flake".into(),
            format!("{flake}#w02"),
            "--extra-files".into(),
            format!("{secrets}/nodes/w02"),
            "--disk-encryption-keys".into(),
            "/tmp/secret.key".into(),
            format!("{secrets}/luks/w02.key"),
            "root@10.0.100.24".into(),
        ]
    );
    assert_eq!(
        calls[5],
        [
            "plasmagen",
            "mark-installed",
            "w02",
            "--collector",
            "https://10.0.100.10:8443/c?a=1&b=(2)*!~",
            "--secrets",
            &secrets
        ]
    );
    // Nothing was globbed or expanded on the way: no stray files appeared.
    assert!(!env.root.join("x").exists() && !env.root.join("y").exists());
}

/// Executing what --dry-run printed runs exactly what a real run runs (quoting round-trips).
fn dry_run_replays_as_real_run(env: &Env, script: &str, argv: &[&str], real_env: &[(&str, &str)]) {
    let o = run(env.script(script).args(argv).arg("--dry-run"));
    assert!(o.status.success(), "{script} --dry-run: {}", show(&o));
    assert!(env.calls().is_empty());
    let printed = text(&o.stdout);
    let mut replay = Command::new("bash");
    env.isolate(&mut replay);
    let o = run(replay
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(&printed)
        .envs(real_env.iter().copied()));
    assert!(
        o.status.success(),
        "replaying {script}'s dry run:\n{printed}\n{}",
        show(&o)
    );
    let replayed = env.calls();
    env.reset_calls();
    let mut real = env.script(script);
    let o = run(real.args(argv).envs(real_env.iter().copied()));
    assert!(o.status.success(), "{script} {argv:?}: {}", show(&o));
    assert_eq!(
        replayed,
        env.calls(),
        "{script}: dry run and real run differ\n{printed}"
    );
    env.reset_calls();
}

#[test]
fn dry_runs_replay_exactly_as_the_real_runs() {
    let env = Env::runbook();
    healthy_cluster(&env, "node01");
    dry_run_replays_as_real_run(
        &env,
        "provision.sh",
        &["node04"],
        &[("IPMI_PASSWORD", "pw")],
    );
    dry_run_replays_as_real_run(&env, "verify-cluster.sh", &[], &[]);
    // node03 as leader: the dry run's inventory order (leader unknown) is the real order.
    healthy_cluster(&env, "node03");
    dry_run_replays_as_real_run(&env, "rolling-update.sh", &[], &[]);
    healthy_cluster(&env, "node01");
    env.respond(
        "GET",
        "https://10.0.200.10:2379/admin/cluster/members",
        Some(2),
        r#"{"members":[{"id":"node01","status":"healthy","role":"leader"}]}"#,
    );
    env.respond(
        "DELETE",
        "https://10.0.200.10:2379/admin/member/node04",
        None,
        r#"{"removed":true,"id":"node04"}"#,
    );
    dry_run_replays_as_real_run(
        &env,
        "decommission.sh",
        &["node04", "--yes"],
        &[("IPMI_PASSWORD", "pw")],
    );

    let big = Env::new(&large_fleet());
    let pw = big.root.join(HOSTILE_PW);
    fs::create_dir_all(pw.parent().expect("parent")).expect("mkdir");
    fs::write(&pw, "secret").expect("write");
    fs::create_dir_all(big.secrets.join("luks")).expect("mkdir");
    fs::write(big.secrets.join("luks/w02.key"), "k").expect("write");
    dry_run_replays_as_real_run(
        &big,
        "provision.sh",
        &["w02", "cp-1", "w01"],
        &[("IPMI_PASSWORD", "pw")],
    );
}

#[test]
fn verify_cluster_passes_a_healthy_cluster_with_jq_and_with_python() {
    let env = Env::runbook();
    healthy_cluster(&env, "node02");
    for tool in ["jq", "python3"] {
        let o = run(env.script("verify-cluster.sh").args(["--json-tool", tool]));
        assert!(o.status.success(), "{tool}: {}", show(&o));
        let out = text(&o.stdout);
        let row = |n: &str| {
            out.lines()
                .find(|l| l.starts_with(n))
                .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        };
        assert_eq!(
            row("node02").expect("row"),
            [
                "node02",
                "control-plane",
                "healthy/leader",
                "healthy/leader",
                "healthy/connected"
            ]
        );
        assert_eq!(
            row("node04").expect("row"),
            ["node04", "worker", "healthy/follower", "-", "-"]
        );
        assert!(
            out.contains("leaders: chainfire=node02 flaredb=node02"),
            "{out}"
        );
        env.assert_tls_everywhere();
        env.reset_calls();
    }
    // The expected requests, in order.
    let o = run(env.script("verify-cluster.sh"));
    assert!(o.status.success());
    let got: Vec<String> = env
        .calls()
        .iter()
        .map(|c| env.placeholders(&c.join(" ")))
        .collect();
    let mut want = Vec::new();
    for port in [2379, 2479] {
        want.push(curl(&format!(
            "https://10.0.200.10:{port}/admin/cluster/members"
        )));
        for ip in ["10.0.200.10", "10.0.200.11", "10.0.200.12"] {
            want.push(curl(&format!("https://{ip}:{port}/admin/cluster/leader")));
        }
    }
    for ip in ["10.0.200.10", "10.0.200.11", "10.0.200.12"] {
        want.push(curl(&format!("https://{ip}:8080/health")));
    }
    assert_eq!(got, want);
}

#[test]
fn verify_cluster_reports_each_kind_of_failure() {
    type Breakage = fn(&Env);
    let cases: [(&str, Breakage, &str); 6] = [
        (
            "missing member",
            |e| {
                e.respond("GET", "https://10.0.200.10:2379/admin/cluster/members", None, r#"{"members":[{"id":"node01","status":"healthy","role":"leader"},{"id":"node02","status":"healthy","role":"follower"},{"id":"node03","status":"healthy","role":"follower"},{"id":"node04","status":"healthy","role":"follower"}]}"#)
            },
            "chainfire: node05 is not a member",
        ),
        (
            "two leaders",
            |e| {
                e.respond("GET", "https://10.0.200.10:2479/admin/cluster/members", None, r#"{"members":[{"id":"node01","status":"healthy","role":"leader"},{"id":"node02","status":"healthy","role":"leader"},{"id":"node03","status":"healthy","role":"follower"}]}"#)
            },
            "flaredb: 2 leaders (node01 node02)",
        ),
        (
            "unhealthy and stale",
            |e| {
                e.respond("GET", "https://10.0.200.10:2479/admin/cluster/members", None, r#"{"members":[{"id":"node01","status":"healthy","role":"leader"},{"id":"node02","status":"unhealthy","role":"follower"},{"id":"node03","status":"healthy","role":"follower"},{"id":"old9","status":"healthy","role":"follower"}]}"#)
            },
            "flaredb: node02 is unhealthy",
        ),
        (
            "leader disagreement",
            |e| {
                e.respond(
                    "GET",
                    "https://10.0.200.12:2379/admin/cluster/leader",
                    None,
                    r#"{"id":"node03"}"#,
                )
            },
            "chainfire: node03 reports leader 'node03', node01's membership says 'node01'",
        ),
        (
            "iam database",
            |e| {
                e.respond(
                    "GET",
                    "https://10.0.200.11:8080/health",
                    None,
                    r#"{"status":"healthy","database":"disconnected"}"#,
                )
            },
            "iam: node02 is status='healthy' database='disconnected'",
        ),
        (
            "unreachable",
            |e| e.no_response("GET", "https://10.0.200.11:2379/admin/cluster/leader"),
            "chainfire: node02 (10.0.200.11) did not answer",
        ),
    ];
    for (what, breakage, message) in cases {
        let env = Env::runbook();
        healthy_cluster(&env, "node01");
        breakage(&env);
        for tool in ["jq", "python3"] {
            let o = run(env.script("verify-cluster.sh").args(["--json-tool", tool]));
            assert_eq!(o.status.code(), Some(1), "{what} ({tool}): {}", show(&o));
            assert!(
                text(&o.stderr).contains(message),
                "{what} ({tool}): want {message:?}\n{}",
                show(&o)
            );
        }
        if what == "unhealthy and stale" {
            let o = run(env.script("verify-cluster.sh"));
            assert!(
                text(&o.stderr).contains("member 'old9' is not an inventory node running flaredb"),
                "{}",
                show(&o)
            );
        }
    }
    // Missing operator certificate: a clear error before any request.
    let env = Env::runbook();
    fs::remove_file(env.secrets.join("operator/operator-key.pem")).expect("rm");
    let o = run(env.script("verify-cluster.sh"));
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("operator-key.pem"), "{}", show(&o));
    assert!(env.calls().is_empty());
}

fn rebuilt(env: &Env) -> Vec<String> {
    env.calls()
        .iter()
        .filter(|c| c[0] == "nixos-rebuild")
        .map(|c| {
            c.iter()
                .find(|a| a.contains('#'))
                .expect("flake arg")
                .rsplit('#')
                .next()
                .expect("host")
                .to_string()
        })
        .collect()
}

#[test]
fn rolling_update_goes_workers_first_and_the_leader_last() {
    let env = Env::runbook();
    healthy_cluster(&env, "node02");
    let o = run(env.script("rolling-update.sh").args([
        "--poll-interval",
        "0",
        "--",
        "--use-substitutes",
    ]));
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        rebuilt(&env),
        ["node04", "node05", "node01", "node03", "node02"]
    );
    let calls: Vec<String> = env
        .calls()
        .iter()
        .map(|c| env.placeholders(&c.join(" ")))
        .collect();
    // After node01's switch: its three services' health and Raft membership, then node03.
    let at = calls
        .iter()
        .position(|c| c.starts_with("nixos-rebuild") && c.contains("#node01"))
        .expect("node01");
    assert_eq!(
        calls[at..at + 6],
        [
            "nixos-rebuild switch --flake {flake}#node01 --target-host root@10.0.200.10 --use-substitutes".to_string(),
            curl("https://10.0.200.10:2379/health"),
            curl("https://10.0.200.10:2379/admin/cluster/members"),
            curl("https://10.0.200.10:2479/health"),
            curl("https://10.0.200.10:2479/admin/cluster/members"),
            curl("https://10.0.200.10:8080/health"),
        ]
    );
    assert!(calls[at + 6].contains("#node03"));
    env.assert_tls_everywhere();

    // A subset keeps the order rules.
    env.reset_calls();
    let o = run(env.script("rolling-update.sh").args([
        "--poll-interval",
        "0",
        "node02",
        "node05",
        "node01",
    ]));
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(rebuilt(&env), ["node05", "node01", "node02"]);
}

#[test]
fn rolling_update_stops_at_the_first_failure() {
    let env = Env::runbook();
    healthy_cluster(&env, "node02");
    env.set("fail", "root@10.0.200.10\n");
    let o = run(env
        .script("rolling-update.sh")
        .args(["--poll-interval", "0"]));
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(rebuilt(&env), ["node04", "node05", "node01"]);
    assert!(
        text(&o.stderr).contains("node01: FAILED; stopping. Not updated: node03 node02"),
        "{}",
        show(&o)
    );
    assert!(text(&o.stderr).contains("ssh root@10.0.200.10 nixos-rebuild switch --rollback"));

    // A node that does not come back healthy in time stops the roll too.
    env.reset_calls();
    fs::remove_file(env.stub.join("fail")).expect("rm");
    env.respond(
        "GET",
        "https://10.0.200.21:2379/health",
        None,
        r#"{"status":"starting"}"#,
    );
    let o = run(env
        .script("rolling-update.sh")
        .args(["--poll-interval", "0", "--timeout", "1"]));
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(rebuilt(&env), ["node04", "node05"]);
    assert!(
        text(&o.stderr).contains("node05: not healthy after 1s: chainfire: status starting"),
        "{}",
        show(&o)
    );

    // And nothing starts without a leader.
    env.reset_calls();
    for ip in ["10.0.200.10", "10.0.200.11", "10.0.200.12"] {
        env.no_response("GET", &format!("https://{ip}:2379/admin/cluster/leader"));
    }
    let o = run(env.script("rolling-update.sh"));
    assert_eq!(o.status.code(), Some(1));
    assert!(rebuilt(&env).is_empty());
    assert!(text(&o.stderr).contains("no bootstrap member reports a Chainfire leader"));
}

#[test]
fn decommission_removes_the_node_at_the_leader_and_powers_it_off() {
    let env = Env::runbook();
    healthy_cluster(&env, "node02");
    // After the DELETE the leader no longer lists node05.
    env.respond(
        "GET",
        "https://10.0.200.11:2379/admin/cluster/members",
        Some(2),
        r#"{"members":[{"id":"node02","status":"healthy","role":"leader"}]}"#,
    );
    env.respond(
        "DELETE",
        "https://10.0.200.11:2379/admin/member/node05",
        None,
        r#"{"removed":true,"id":"node05"}"#,
    );
    let o = run(env
        .script("decommission.sh")
        .args(["node05", "--yes"])
        .env("IPMI_PASSWORD", "pw"));
    assert!(o.status.success(), "{}", show(&o));
    let got: Vec<String> = env
        .calls()
        .iter()
        .map(|c| env.placeholders(&c.join(" ")))
        .collect();
    assert_eq!(
        got,
        [
            curl("https://10.0.200.10:2379/admin/cluster/leader"),
            curl("https://10.0.200.11:2379/admin/cluster/members"),
            curl("-X DELETE https://10.0.200.11:2379/admin/member/node05"),
            curl("https://10.0.200.11:2379/admin/cluster/members"),
            "ipmitool -I lanplus -H 10.0.10.55 -U admin -E chassis power off".to_string(),
        ]
    );
    assert!(
        text(&o.stderr).contains("plasmagen reprovision node05"),
        "{}",
        show(&o)
    );
    env.assert_tls_everywhere();
    // Re-running finds it gone and does not DELETE again.
    env.reset_calls();
    env.respond(
        "GET",
        "https://10.0.200.11:2379/admin/cluster/members",
        None,
        r#"{"members":[{"id":"node02","status":"healthy","role":"leader"}]}"#,
    );
    let o = run(env
        .script("decommission.sh")
        .args(["node05", "--yes", "--no-power-off"]));
    assert!(o.status.success(), "{}", show(&o));
    assert!(text(&o.stderr).contains("already removed"));
    assert!(
        !env.calls()
            .iter()
            .any(|c| c.iter().any(|a| a == "DELETE") || c[0] == "ipmitool")
    );
}

#[test]
fn decommission_refuses_what_it_should() {
    let env = Env::runbook();
    healthy_cluster(&env, "node01");
    // A bootstrap member without --force.
    let o = run(env.script("decommission.sh").args(["node02", "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(text(&o.stderr).contains("node02 is a bootstrap member"));
    // No terminal and no --yes.
    let o = run(env
        .script("decommission.sh")
        .arg("node04")
        .stdin(std::process::Stdio::null()));
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(text(&o.stderr).contains("pass --yes"));
    assert!(env.calls().is_empty(), "{:?}", env.calls());
    // The DELETE fails: the node stays powered on.
    let o = run(env
        .script("decommission.sh")
        .args(["node04", "--yes"])
        .env("IPMI_PASSWORD", "pw"));
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        text(&o.stderr).contains("DELETE /admin/member/node04 failed"),
        "{}",
        show(&o)
    );
    assert!(!env.calls().iter().any(|c| c[0] == "ipmitool"));
    // With --force a bootstrap member goes, through the leader among the others.
    env.reset_calls();
    healthy_cluster(&env, "node01");
    for (port, n) in [(2379, 2), (2479, 2)] {
        env.respond(
            "DELETE",
            &format!("https://10.0.200.10:{port}/admin/member/node02"),
            None,
            "{}",
        );
        env.respond(
            "GET",
            &format!("https://10.0.200.10:{port}/admin/cluster/members"),
            Some(n),
            r#"{"members":[{"id":"node01","status":"healthy","role":"leader"}]}"#,
        );
    }
    let o =
        run(env
            .script("decommission.sh")
            .args(["node02", "--yes", "--force", "--no-power-off"]));
    assert!(o.status.success(), "{}", show(&o));
    let deletes: Vec<String> = env
        .calls()
        .iter()
        .filter(|c| c.iter().any(|a| a == "DELETE"))
        .map(|c| c.last().expect("url").clone())
        .collect();
    assert_eq!(
        deletes,
        [
            "https://10.0.200.10:2379/admin/member/node02",
            "https://10.0.200.10:2479/admin/member/node02"
        ]
    );
}

#[test]
fn generate_restores_the_executable_bit_and_leaves_other_modes_alone() {
    let env = Env::runbook();
    let script = env.script_path("verify-cluster.sh");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).expect("chmod");
    let mode = |p: &std::path::Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&env.flake.join("flake.nix")), 0o644);
    let inv = env.root.join("inventory.toml");
    let o = common::plasmagen()
        .args(["generate", "--dry-run"])
        .arg(&inv)
        .arg("--out")
        .arg(env.root.join("out"))
        .output()
        .expect("run plasmagen");
    assert_eq!(
        o.status.code(),
        Some(1),
        "a mode change is a change: {}",
        show(&o)
    );
    assert!(text(&o.stdout).contains("mode 644 -> 755"), "{}", show(&o));
    generate(&inv, &env.root.join("out"));
    assert_eq!(mode(&script), 0o755);
    assert_eq!(mode(&env.flake.join("flake.nix")), 0o644);
}

#[test]
fn interrupting_a_parallel_bootstrap_stops_every_install() {
    let env = Env::runbook();
    // Four never arrive: the three stand-in installs wait (up to 10 s) until killed.
    env.set("barrier", "4");
    let child = env
        .script("provision.sh")
        .args(["--bootstrap", "--no-power", "--logs"])
        .arg(env.root.join("logs"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let arrived = env.stub.join("arrived");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fs::read_dir(&arrived).map_or(0, |d| d.count()) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the installs never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pids: Vec<i32> = fs::read_dir(&arrived)
        .expect("arrived")
        .map(|e| {
            e.expect("entry")
                .file_name()
                .to_string_lossy()
                .parse()
                .expect("pid")
        })
        .collect();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(130), "{}", show(&o));
    // The stand-in installs (grandchildren of the script) are gone too, well before their 10 s.
    std::thread::sleep(std::time::Duration::from_millis(300));
    for pid in pids {
        // Gone, or a zombie nobody reaped yet (PID 1 in a container may not).
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
        assert!(
            matches!(state, None | Some('Z')),
            "install {pid} still running: {stat}"
        );
    }
}
