//! A Redfish BMC for a lab node: sushy-tools' emulator (fake driver, one UEFI system, Basic
//! auth, HTTPS with a certificate of the lab's own CA; operator/tests/support/redfish's
//! configuration) inside the lab's namespace, and redfish_machine.py, which starts the node's
//! machine when the emulator's system powers on, booting its override target.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::process::spawn_announced;
use super::{BMC_PASSWORD, BMC_USER, HERE, Lab, LabNode};
use crate::common::repo_root;

/// The fake driver's UEFI system (sushy.conf.py).
pub const SYSTEM_ID: &str = "3c1f6a52-8a4e-4f0c-9d7e-1a2b3c4d5e01";

pub struct RedfishBmc {
    pub port: u16,
    pub ca: PathBuf,
    pub password_file: PathBuf,
    sushy: Child,
    watcher: Option<(Child, ChildStdin)>,
    log: PathBuf,
}

impl Drop for RedfishBmc {
    fn drop(&mut self) {
        if let Some((w, _)) = &mut self.watcher {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = self.sushy.kill();
        let _ = self.sushy.wait();
    }
}

impl RedfishBmc {
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Lab {
    pub(super) fn start_redfish(&self, n: &LabNode, port: u16, python: &Path) -> RedfishBmc {
        let dir = self.dir.path().join(format!("redfish-{}", n.hostname));
        fs::create_dir_all(&dir).unwrap();
        let (ca, cert, key) = certificates(&dir);
        let password_file = dir.join("password");
        fs::write(&password_file, format!("{BMC_PASSWORD}\n")).unwrap();
        let support = repo_root().join("operator/tests/support/redfish");
        let mut hash = Command::new(python)
            .arg(support.join("htpasswd.py"))
            .arg(BMC_USER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        hash.stdin
            .take()
            .unwrap()
            .write_all(BMC_PASSWORD.as_bytes())
            .unwrap();
        let out = hash.wait_with_output().unwrap();
        assert!(out.status.success(), "htpasswd.py failed");
        fs::write(dir.join("htpasswd"), &out.stdout).unwrap();
        let log = dir.join("sushy.log");
        let logf = fs::File::create(&log).unwrap();
        let sushy = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(python)
            .args(["-m", "sushy_tools.emulator.main", "--config"])
            .arg(support.join("sushy.conf.py"))
            .current_dir(&dir)
            .env("PLASMA_SUSHY_PORT", port.to_string())
            .env("PLASMA_SUSHY_STATE_DIR", dir.join("state"))
            .env("PLASMA_SUSHY_AUTH_FILE", dir.join("htpasswd"))
            .env("PLASMA_SUSHY_SSL_CERT", &cert)
            .env("PLASMA_SUSHY_SSL_KEY", &key)
            .env("PLASMA_SUSHY_ONLY", "node-uefi")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("start sushy-emulator");
        let mut bmc = RedfishBmc {
            port,
            ca,
            password_file,
            sushy,
            watcher: None,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.redfish_get(&bmc, "/redfish/v1/").is_none() {
            assert!(
                Instant::now() < deadline,
                "sushy-emulator not answering:\n{}",
                bmc.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let hook = self.dir.path().join("machine.sh");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(python)
            .arg(Path::new(HERE).join("redfish_machine.py"))
            .arg(format!(
                "https://127.0.0.1:{port}/redfish/v1/Systems/{SYSTEM_ID}"
            ))
            .arg(&bmc.ca)
            .arg(BMC_USER)
            .arg(&bmc.password_file)
            .arg("--")
            .arg(hook)
            .arg(self.dir.path())
            .arg(&n.hostname)
            .arg(&n.ip)
            .stderr(Stdio::null());
        let (watcher, stdin, first) = spawn_announced(cmd, "redfish_machine.py");
        assert_eq!(first, "watching", "redfish_machine.py did not start");
        bmc.watcher = Some((watcher, stdin));
        bmc
    }

    /// A GET on a node's emulated Redfish service (curl in the namespace, the lab CA).
    pub fn redfish_get(&self, bmc: &RedfishBmc, path: &str) -> Option<Value> {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns, "curl", "-sf", "--max-time", "5"])
            .arg("--cacert")
            .arg(&bmc.ca)
            .args(["-u", &format!("{BMC_USER}:{BMC_PASSWORD}")])
            .arg(format!("https://127.0.0.1:{}{path}", bmc.port))
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| serde_json::from_slice(&o.stdout).ok())
            .flatten()
    }

    /// The node's ComputerSystem as its emulated BMC reports it.
    pub fn redfish_system(&self, node: &str) -> Value {
        let bmc = &self.redfish[node];
        self.redfish_get(bmc, &format!("/redfish/v1/Systems/{SYSTEM_ID}"))
            .expect("GET the ComputerSystem")
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it (openssl; the extensions file of the
/// operator's Redfish tests makes it X.509 v3, as rustls requires).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ext = repo_root().join("operator/tests/support/redfish/bmc-cert.ext");
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let steps = [
        format!(
            "req -x509 {ec} -days 2 -keyout ca.key -out ca.pem -subj /CN=lab-BMC-CA \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign"
        ),
        format!("req -new {ec} -keyout bmc.key -out bmc.csr -subj /CN=127.0.0.1"),
        format!(
            "x509 -req -in bmc.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out bmc.pem -extfile {}",
            ext.display()
        ),
    ];
    for step in steps {
        let o = Command::new("openssl")
            .args(step.split_whitespace())
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            o.status.success(),
            "openssl {step}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    (dir.join("ca.pem"), dir.join("bmc.pem"), dir.join("bmc.key"))
}
