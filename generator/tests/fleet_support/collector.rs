//! The real collector as a child process on a fixed port, so it can be killed with SIGKILL and
//! started again where the agents expect it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use plasmagen::collector::store::rusqlite;

pub struct Collector {
    bin: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    pub url: String,
    pub db: PathBuf,
    pub restarts: u32,
}

impl Collector {
    pub fn start(bin: &Path, work: &Path, inventory: &Path, secrets: &Path) -> Collector {
        // A port the agents' configurations can name before the collector runs, kept across
        // restarts (the listener sets SO_REUSEADDR, so a killed one's port binds again).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let db = work.join("collector.db");
        let args = vec![
            "collector".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--db".into(),
            db.display().to_string(),
            "--inventory".into(),
            inventory.display().to_string(),
            "--secrets".into(),
            secrets.display().to_string(),
            // The browser that measures the dashboard has no client certificate.
            "--public-dashboard".into(),
        ];
        let mut c = Collector {
            bin: bin.to_owned(),
            args,
            child: None,
            url: format!("https://127.0.0.1:{port}"),
            db,
            restarts: 0,
        };
        c.spawn();
        c
    }

    fn spawn(&mut self) {
        let mut child = Command::new(&self.bin)
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn plasmagen collector");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if line.starts_with("collector: api listening on ") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the collector printed its listening line");
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown, no flush beyond what each commit already did.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.restarts += 1;
        self.spawn();
    }

    /// Every `service` report row: (node, phase, sent_at, message).
    pub fn stored_reports(&self, service: &str) -> Vec<(String, String, String, String)> {
        let c = rusqlite::Connection::open_with_flags(
            &self.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open collector.db");
        let mut q = c
            .prepare(
                "SELECT node, phase, sent_at, message FROM history
                 WHERE kind = 'report' AND service = ?1 ORDER BY id",
            )
            .expect("query");
        q.query_map([service], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .expect("rows")
        .map(Result::unwrap)
        .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}
