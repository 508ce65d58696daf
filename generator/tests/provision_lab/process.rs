//! Processes and files of the lab: bounded runs, keys, namespaces' addresses.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::common::{repo_root, require_tool};

/// The run's output, bounded: a hang fails the test instead of blocking it.
pub fn run_bounded(cmd: Command, limit: Duration) -> Output {
    crate::common::run_bounded(cmd, limit).0
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn bmc_python() -> PathBuf {
    let python = std::env::var_os("PLASMA_BMC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/bmc-venv/bin/python"));
    assert!(
        python.is_file(),
        "{}: the BMC emulators' venv is missing: run the tests through scripts/test.sh",
        python.display()
    );
    python
}

pub fn require_root_and_tools() {
    let uid = fs::metadata("/proc/self").expect("/proc/self").uid();
    assert_eq!(
        uid, 0,
        "the provisioning lab needs root (network namespace, sshd)"
    );
    for (tool, package) in [
        ("sshd", "openssh-server"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
        ("ip", "iproute2"),
        ("ipmitool", "ipmitool"),
        ("curl", "curl"),
        ("script", "bsdutils"),
    ] {
        require_tool(tool, package);
    }
}

pub fn copy_exec(from: &Path, to: &Path) {
    fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn keygen(path: &Path) {
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "operator", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

pub fn ip_cmd(args: &[&str]) {
    let o = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        o.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Starts a helper that announces itself with one line on stdout (its port, "ready") and lives
/// as long as its stdin stays open; the rest of its stdout is drained.
pub fn spawn_announced(mut cmd: Command, what: &str) -> (Child, ChildStdin, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        for _ in lines {}
    });
    let first = rx.recv_timeout(Duration::from_secs(15)).unwrap_or_default();
    (child, stdin, first)
}
