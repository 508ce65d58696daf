//! The emulated BMC of tests/ipmi.rs: fake_bmc.py (pyghmi's IPMI 2.0 BMC server) on a free
//! loopback UDP port, run by the venv python that scripts/test.sh makes.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

#[path = "../venv.rs"]
mod venv;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The venv python with pyghmi.
pub fn bmc_python() -> PathBuf {
    venv::bmc_python()
}

/// A running emulator; killed on drop, and it exits by itself once its stdin closes (the test
/// process died).
pub struct FakeBmc {
    child: Child,
    _stdin: ChildStdin,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeBmc {
    pub fn start(user: &str, password: &str) -> FakeBmc {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/bmc/fake_bmc.py");
        let mut child = Command::new(bmc_python())
            .arg(&script)
            .arg(&log)
            // Through the environment: the test checks that no argv shows the password.
            .env("FAKE_BMC_USER", user)
            .env("FAKE_BMC_PASSWORD", password)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start fake_bmc.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(15)).unwrap_or_default();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let mut stderr = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
            panic!("fake_bmc.py did not start (stdout {line:?}):\n{stderr}");
        };
        FakeBmc {
            child,
            _stdin: stdin,
            port,
            log,
            _dir: dir,
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every call the emulator received, in order.
    pub fn calls(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// The calls named `name` since the `from`th call.
    pub fn calls_named(&self, from: usize, name: &str) -> Vec<Value> {
        let calls = self.calls();
        calls
            .into_iter()
            .skip(from)
            .filter(|c| c["call"] == name)
            .collect()
    }
}

impl Drop for FakeBmc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
