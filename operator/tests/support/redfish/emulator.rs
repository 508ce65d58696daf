//! The real sushy-tools Redfish emulator (fake driver) on a free 127.0.0.1 port, started from
//! the venv scripts/test.sh makes ($PLASMA_BMC_PYTHON), with HTTP Basic authentication and
//! optionally HTTPS and change notifications. Killed when dropped, panics included.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

#[path = "../venv.rs"]
mod venv;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::Value;

pub const UEFI_ID: &str = "3c1f6a52-8a4e-4f0c-9d7e-1a2b3c4d5e01";
pub const LEGACY_ID: &str = "3c1f6a52-8a4e-4f0c-9d7e-1a2b3c4d5e02";
pub const USER: &str = "plasma-admin";
pub const PASSWORD: &str = "Pw-7f3a9c-never-printed";

const SUPPORT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/redfish");

/// The venv's python, checked once to import sushy_tools.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let python = venv::bmc_python();
            let status = Command::new(&python)
                .args(["-c", "import sushy_tools.emulator.main, bcrypt"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "{} cannot import sushy_tools: run scripts/test.sh, which installs sushy-tools \
                 into target/bmc-venv",
                Path::new(&python).display()
            );
            python
        })
        .clone()
}

#[derive(Default)]
pub struct Options {
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Keep the system change notifications sushy PUTs (fakedriver `external_notifier`).
    pub notify: bool,
    /// Only this system (`node-uefi` or `node-legacy`).
    pub only: Option<&'static str>,
}

pub struct Emulator {
    child: Child,
    pub base: String,
    raw: Client,
    notifications: Option<Notifications>,
    dir: tempfile::TempDir,
}

impl Emulator {
    pub fn start(options: Options) -> Emulator {
        let python = python();
        let mut dir = tempfile::tempdir().unwrap();
        let auth = dir.path().join("htpasswd");
        let mut hash = Command::new(&python)
            .arg(Path::new(SUPPORT).join("htpasswd.py"))
            .arg(USER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        hash.stdin
            .take()
            .unwrap()
            .write_all(PASSWORD.as_bytes())
            .unwrap();
        let out = hash.wait_with_output().unwrap();
        assert!(out.status.success(), "htpasswd.py failed");
        std::fs::write(&auth, &out.stdout).unwrap();

        let notifications = options.notify.then(Notifications::listen);
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        // The service's own view, independent of the driver (any certificate, no proxy).
        let raw = Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        for _attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log = std::fs::File::create(dir.path().join("emulator.log")).unwrap();
            let mut command = Command::new(&python);
            command
                .args(["-m", "sushy_tools.emulator.main", "--config"])
                .arg(Path::new(SUPPORT).join("sushy.conf.py"))
                .current_dir(dir.path())
                .env("PLASMA_SUSHY_PORT", port.to_string())
                .env("PLASMA_SUSHY_STATE_DIR", dir.path().join("state"))
                .env("PLASMA_SUSHY_AUTH_FILE", &auth)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            if let Some((cert, key)) = &options.tls {
                command
                    .env("PLASMA_SUSHY_SSL_CERT", cert)
                    .env("PLASMA_SUSHY_SSL_KEY", key);
            }
            if let Some(n) = &notifications {
                command.env(
                    "PLASMA_SUSHY_NOTIFY_URL",
                    format!("http://127.0.0.1:{}/", n.port),
                );
            }
            if let Some(only) = options.only {
                command.env("PLASMA_SUSHY_ONLY", only);
            }
            let mut emulator = Emulator {
                child: command.spawn().unwrap(),
                base: format!("{scheme}://127.0.0.1:{port}"),
                raw: raw.clone(),
                notifications: None,
                dir,
            };
            match emulator.wait_ready() {
                Ok(()) => {
                    emulator.notifications = notifications;
                    return emulator;
                }
                // Another process took the port between our probe and the emulator's bind.
                Err(log) if log.contains("Address already in use") => dir = emulator.take_dir(),
                Err(log) => panic!("sushy-emulator did not start:\n{log}"),
            }
        }
        panic!("sushy-emulator found no free port in 3 attempts");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return Err(self.log());
            }
            let root = self.raw.get(format!("{}/redfish/v1/", self.base)).send();
            if root.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err(format!("not answering after 15 s\n{}", self.log()))
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        self.stop();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default()
    }

    /// The system as the emulator reports it, read without the driver.
    pub fn system(&self, id: &str) -> Value {
        let url = format!("{}/redfish/v1/Systems/{id}", self.base);
        let response = self
            .raw
            .get(&url)
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        response.json().unwrap()
    }

    /// Polls the emulator until system `id` reports `PowerState` `want`.
    pub fn wait_power(&self, id: &str, want: &str, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let state = self.system(id)["PowerState"].clone();
            if state == want {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "system {id} still reports PowerState {state} after {within:?}, not {want}"
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The change notifications received so far (systems as the fake driver stores them).
    pub fn notifications(&self) -> Vec<Value> {
        let n = self.notifications.as_ref().expect("started without notify");
        n.received.lock().unwrap().clone()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A one-route HTTP server taking the emulator's PUTs of changed systems.
struct Notifications {
    port: u16,
    received: Arc<Mutex<Vec<Value>>>,
    done: Arc<AtomicBool>,
}

impl Notifications {
    fn listen() -> Notifications {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (into, stop) = (received.clone(), done.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(Some(body)) = stream.map(read_put) {
                    into.lock().unwrap().push(body);
                }
            }
        });
        Notifications {
            port,
            received,
            done,
        }
    }
}

impl Drop for Notifications {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads one request, answers 200 and returns its JSON body.
fn read_put(stream: TcpStream) -> Option<Value> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    stream.write_all(ok.as_bytes()).ok()?;
    serde_json::from_slice(&body).ok()
}
