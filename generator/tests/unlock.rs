//! `plasmagen unlock` against a real OpenSSH server: sshd runs in a network namespace of the
//! test's own that has the node's provisioning IP (10.0.100.81, worker2 of
//! examples/mixed.toml) on its loopback interface, with the initrd host key `plasmagen generate`
//! made, and a ForceCommand standing in for systemd-tty-ask-password-agent. plasmagen runs in
//! that namespace too (`ip netns exec`), exactly as an operator would run it. Needs root.

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{plasmagen, read_all, repo_root, require_tool, run_bounded};
use plasmagen::unlock::{Attempt, Redactor, classify_ssh_error, parse_pinned_key};

const NODE: &str = "worker2";
const SSHD: &str = "/usr/sbin/sshd";

/// The agent stand-in: the prompt (no newline) on the TTY, one line read from it. Echo stays
/// ON (the real agent turns it off): the worst case for what plasmagen shows the operator.
/// Once answered it snapshots every process's argv and environment, while plasmagen's ssh is
/// still connected.
const AGENT: &str = r#"#!/bin/sh
dir=@DIR@
[ -t 0 ] || { echo "agent: stdin is not a TTY" >&2; exit 3; }
echo tty > "$dir/logged-in"
# The root is unlocked already: the real agent finds no pending request and exits.
[ -e "$dir/already-unlocked" ] && exit 0
printf '\360\237\224\220 Please enter passphrase for disk cryptroot: '
IFS= read -r p
for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ; do
  tr '\000' ' ' < "$f" 2>/dev/null; echo
done > "$dir/procs"
printf '%s' "$p" > "$dir/received.tmp"
mv "$dir/received.tmp" "$dir/received"
echo "agent: answered"
"#;

struct Fixture {
    tmp: tempfile::TempDir,
    out: PathBuf,
    secrets: PathBuf,
    ip: Ipv4Addr,
    client_key: PathBuf,
    pass: String,
}

impl Fixture {
    fn new() -> Fixture {
        require_root_and_tools();
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("out");
        common::generate(&repo_root().join("examples/mixed.toml"), &out);
        let secrets = out.join("secrets");
        let inv = plasmagen::inventory::load(&out.join("flake/inventory.toml")).expect("load");
        let node = inv
            .inventory
            .nodes
            .iter()
            .find(|n| n.hostname == NODE)
            .expect("worker2 in examples/mixed.toml");
        let pass = fs::read_to_string(plasmagen::luks::key_path(&secrets, NODE)).expect("key");
        let client_key = tmp.path().join("client_key");
        keygen(&client_key);
        fs::copy(
            client_key.with_extension("pub"),
            tmp.path().join("authorized_keys"),
        )
        .expect("authorized_keys");
        let agent = tmp.path().join("agent.sh");
        let dir = tmp.path().display().to_string();
        fs::write(&agent, AGENT.replace("@DIR@", &dir)).expect("agent");
        fs::set_permissions(&agent, fs::Permissions::from_mode(0o755)).expect("chmod");
        Fixture {
            ip: node.provisioning_ip,
            tmp,
            out,
            secrets,
            client_key,
            pass,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The generated private host key of worker2's initrd.
    fn node_host_key(&self) -> PathBuf {
        plasmagen::luks::initrd_host_key_path(&self.secrets, NODE)
    }

    fn received(&self) -> Option<String> {
        fs::read_to_string(self.dir().join("received")).ok()
    }

    /// `plasmagen unlock OUT worker2 -i KEY EXTRA...` inside the namespace.
    fn unlock(&self, ns: &Netns, extra: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns.name])
            .arg(env!("CARGO_BIN_EXE_plasmagen"))
            .arg("unlock")
            .arg(&self.out)
            .arg(NODE)
            .arg("-i")
            .arg(&self.client_key)
            .args(extra)
            .stdin(Stdio::null());
        c
    }

    /// sshd on <ip>:2222 in `ns` with `host_key`; returns once it listens.
    fn sshd(&self, ns: &Netns, host_key: &Path) -> Sshd {
        fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd (sshd's privilege separation)");
        let d = self.dir().display().to_string();
        let config = self.dir().join("sshd_config");
        let text = format!(
            "ListenAddress {ip}:{port}\nHostKey {key}\nAuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\n\
             PrintMotd no\nPrintLastLog no\nLogLevel VERBOSE\nForceCommand {d}/agent.sh\n",
            ip = self.ip,
            port = plasmagen::render::boot::INITRD_SSH_PORT,
            key = host_key.display(),
        );
        fs::write(&config, text).expect("sshd_config");
        let log = self.dir().join("sshd.log");
        let logf = fs::File::create(&log).expect("sshd log");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, SSHD, "-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup"))
            .stderr(logf)
            .spawn()
            .expect("start sshd");
        let mut sshd = Sshd { child, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sshd.log_text().contains("Server listening on") {
            if let Ok(Some(st)) = sshd.child.try_wait() {
                panic!("sshd exited ({st}):\n{}", sshd.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "sshd not listening:\n{}",
                sshd.log_text()
            );
            thread::sleep(Duration::from_millis(50));
        }
        sshd
    }
}

fn require_root_and_tools() {
    let uid = fs::metadata("/proc/self").expect("/proc/self").uid();
    assert_eq!(
        uid, 0,
        "the unlock tests need root (network namespace, sshd)"
    );
    require_tool("sshd", "openssh-server");
    require_tool("ssh", "openssh-client");
    require_tool("ssh-keygen", "openssh-client");
    require_tool("ip", "iproute2");
    require_tool("script", "bsdutils");
}

fn keygen(path: &Path) {
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "unlock-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A network namespace with `ip` on its loopback interface; its processes are killed and it is
/// deleted on drop (it and they are the test's own).
struct Netns {
    name: String,
}

impl Netns {
    fn new(ip: Ipv4Addr) -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "plunlock-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let ns = Netns { name };
        ip_cmd(&["netns", "add", &ns.name]);
        let n = ns.name.as_str();
        ip_cmd(&["-n", n, "link", "set", "lo", "up"]);
        // On loopback: needs no kernel module (dummy, veth) a container may lack.
        ip_cmd(&["-n", n, "addr", "add", &format!("{ip}/32"), "dev", "lo"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(o) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ip_cmd(args: &[&str]) {
    let o = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        o.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

struct Sshd {
    child: Child,
    log: PathBuf,
}

impl Sshd {
    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn assert_delivered(fx: &Fixture, o: &Output, sshd: &Sshd) {
    let (stdout, stderr) = text(o);
    assert!(
        o.status.success(),
        "unlock failed ({}):\nstdout: {stdout}\nstderr: {stderr}\nsshd:\n{}",
        o.status,
        sshd.log_text()
    );
    assert_eq!(fx.received().as_deref(), Some(fx.pass.as_str()));
    assert!(
        stdout.contains("Please enter passphrase for disk cryptroot"),
        "{stdout}"
    );
    // The TTY echoed the passphrase back: plasmagen masked it.
    assert!(stdout.contains("********"), "{stdout}");
    assert!(!stdout.contains(&fx.pass) && !stderr.contains(&fx.pass));
    let procs = fs::read_to_string(fx.dir().join("procs")).expect("process snapshot");
    assert!(
        procs.contains(&format!("root@{}", fx.ip)) && procs.contains("StrictHostKeyChecking=yes"),
        "plasmagen's ssh was not in the snapshot"
    );
    assert!(
        !procs.contains(&fx.pass),
        "the passphrase is in a process's argv or environment"
    );
}

#[test]
fn delivers_the_passphrase_over_the_pinned_session() {
    let fx = Fixture::new();
    let ns = Netns::new(fx.ip);
    let sshd = fx.sshd(&ns, &fx.node_host_key());
    let (o, _) = run_bounded(fx.unlock(&ns, &[]), Duration::from_secs(60));
    assert_delivered(&fx, &o, &sshd);
    let (_, stderr) = text(&o);
    assert!(stderr.contains("sent worker2's passphrase"), "{stderr}");
}

#[test]
fn refuses_a_host_key_that_is_not_the_pinned_one() {
    let fx = Fixture::new();
    let other = fx.dir().join("other_host_key");
    keygen(&other);
    let ns = Netns::new(fx.ip);
    let _sshd = fx.sshd(&ns, &other);
    let (o, _) = run_bounded(fx.unlock(&ns, &[]), Duration::from_secs(60));
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    let pinned = plasmagen::luks::initrd_host_pub_path(&fx.secrets, NODE);
    assert!(
        stderr
            .contains("refusing to send the passphrase: host key does not match the one pinned in")
            && stderr.contains(&pinned.display().to_string()),
        "{stderr}"
    );
    assert_eq!(fx.received(), None);
    assert!(
        !fx.dir().join("logged-in").exists(),
        "the session got to the agent"
    );
}

#[test]
fn unreachable_fails_fast_and_wait_retries_until_sshd_is_up() {
    let fx = Fixture::new();
    let ns = Netns::new(fx.ip);
    let (o, took) = run_bounded(fx.unlock(&ns, &[]), Duration::from_secs(30));
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(69), "{stderr}");
    assert!(
        stderr.contains("unreachable") && stderr.contains(NODE),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // Right after an install reboot: nothing listens yet, sshd comes up ~6 s later.
    let cmd = fx.unlock(&ns, &["--wait", "12"]);
    let runner = thread::spawn(move || run_bounded(cmd, Duration::from_secs(60)));
    thread::sleep(Duration::from_secs(6));
    let sshd = fx.sshd(&ns, &fx.node_host_key());
    let (o, _) = runner.join().expect("unlock --wait");
    assert_delivered(&fx, &o, &sshd);
    let (_, stderr) = text(&o);
    assert!(
        stderr.contains("attempt 1:") && stderr.contains("retrying in 5s"),
        "{stderr}"
    );
}

#[test]
fn a_session_without_a_prompt_is_reported_not_retried_forever() {
    let fx = Fixture::new();
    fs::write(fx.dir().join("already-unlocked"), "").expect("marker");
    let ns = Netns::new(fx.ip);
    let sshd = fx.sshd(&ns, &fx.node_host_key());
    let (o, took) = run_bounded(fx.unlock(&ns, &[]), Duration::from_secs(60));
    let (_, stderr) = text(&o);
    assert_eq!(
        o.status.code(),
        Some(69),
        "{stderr}\nsshd:\n{}",
        sshd.log_text()
    );
    assert!(stderr.contains("asked for no passphrase"), "{stderr}");
    assert!(fx.dir().join("logged-in").exists());
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(fx.received(), None);
}

#[test]
fn refuses_nodes_it_cannot_unlock_naming_them() {
    let fx = Fixture::new();
    let out = fx.out.to_str().expect("utf-8 path");
    let run = |args: &[&str]| {
        let o = plasmagen().args(args).output().expect("run");
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stdout}{stderr}");
        stderr
    };
    let e = run(&["unlock", out, "wrker2"]);
    assert!(
        e.contains("`wrker2`") && e.contains("did you mean `worker2`"),
        "{e}"
    );
    let e = run(&["unlock", out, "cp1"]);
    assert!(e.contains("cp1") && e.contains("luks-lvm"), "{e}");
    let empty = fx.dir().join("empty-secrets");
    fs::create_dir_all(&empty).expect("mkdir");
    let e = run(&[
        "unlock",
        out,
        NODE,
        "--secrets",
        empty.to_str().expect("utf-8"),
    ]);
    assert!(
        e.contains("worker2.key") && e.contains("plasmagen generate"),
        "{e}"
    );
    fs::remove_file(plasmagen::luks::initrd_host_pub_path(&fx.secrets, NODE)).expect("rm");
    let e = run(&["unlock", out, NODE]);
    assert!(
        e.contains("worker2.initrd-ssh.pub") && e.contains("plasmagen generate"),
        "{e}"
    );
}

#[test]
fn dry_run_prints_the_pinned_command_and_never_the_passphrase() {
    let fx = Fixture::new();
    let o = plasmagen()
        .args(["unlock", "--dry-run"])
        .arg(&fx.out)
        .arg(NODE)
        .output()
        .expect("run");
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let pinned =
        fs::read_to_string(plasmagen::luks::initrd_host_pub_path(&fx.secrets, NODE)).expect("pub");
    assert!(
        stdout.contains(&format!("[{}]:2222 {}", fx.ip, pinned.trim())),
        "{stdout}"
    );
    for want in [
        "ssh -tt",
        "-p 2222",
        "StrictHostKeyChecking=yes",
        "BatchMode=yes",
    ] {
        assert!(stdout.contains(want), "{want}: {stdout}");
    }
    assert!(stdout.contains(&format!("root@{}", fx.ip)), "{stdout}");
    assert!(!stdout.contains(&fx.pass) && !stderr.contains(&fx.pass));
}

#[test]
fn under_a_real_terminal_it_neither_hangs_nor_reads_the_terminal() {
    let fx = Fixture::new();
    let ns = Netns::new(fx.ip);
    let sshd = fx.sshd(&ns, &fx.node_host_key());
    let inner = format!(
        "{} unlock {} {NODE} -i {}",
        env!("CARGO_BIN_EXE_plasmagen"),
        fx.out.display(),
        fx.client_key.display()
    );
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &ns.name,
        "script",
        "-qec",
        &inner,
        "/dev/null",
    ]);
    // The operator's keyboard: open, silent. Reading it for the passphrase would hang.
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let keyboard = child.stdin.take();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("plasmagen unlock hung on a terminal:\n{}", sshd.log_text());
        }
        thread::sleep(Duration::from_millis(50));
    };
    drop(keyboard);
    let transcript = read_all(child.stdout.take());
    let transcript = String::from_utf8_lossy(&transcript);
    assert!(
        status.success(),
        "{status}: {transcript}\nsshd:\n{}",
        sshd.log_text()
    );
    assert_eq!(fx.received().as_deref(), Some(fx.pass.as_str()));
    assert!(
        transcript.contains("Please enter passphrase"),
        "{transcript}"
    );
    assert!(
        !transcript.contains(&fx.pass),
        "the passphrase reached the terminal"
    );
}

#[test]
fn redactor_masks_whole_and_split_passphrases() {
    let redact = |secret: &str, chunks: &[&str]| {
        let mut r = Redactor::new(secret.as_bytes());
        let mut out = Vec::new();
        for c in chunks {
            out.extend(r.push(c.as_bytes()));
        }
        out.extend(r.finish());
        String::from_utf8(out).expect("utf-8")
    };
    assert_eq!(redact("abcdef12", &["x abcdef12\r\n"]), "x ********\r\n");
    assert_eq!(
        redact("abcdef12", &["x abc", "def", "12 y"]),
        "x ******** y"
    );
    assert_eq!(redact("abcdef12", &["ab", "x"]), "abx");
    assert_eq!(redact("abcdef12", &["tail abcdef"]), "tail ********");
}

#[test]
fn sorts_ssh_failures_and_pinned_keys() {
    let mismatch =
        "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.";
    assert!(matches!(
        classify_ssh_error(mismatch),
        Attempt::HostKeyMismatch(_)
    ));
    let refused = "ssh: connect to host 10.0.100.81 port 2222: Connection refused";
    assert!(matches!(
        classify_ssh_error(refused),
        Attempt::Unreachable(_)
    ));
    let denied = "root@10.0.100.81: Permission denied (publickey).";
    assert!(matches!(
        classify_ssh_error(denied),
        Attempt::AuthRefused(_)
    ));
    let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH6MC50fgd w2-initrd";
    assert_eq!(parse_pinned_key(&format!("\n{line}\n")), Some(line.into()));
    assert_eq!(
        parse_pinned_key("-----BEGIN OPENSSH PRIVATE KEY-----"),
        None
    );
}
