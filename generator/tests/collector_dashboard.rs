//! The dashboard in Debian's headless Chromium, driven over the DevTools protocol
//! (`--remote-debugging-pipe`, through two FIFOs): the runbook fleet's rows are rendered, and a
//! report committed while the page is open shows up without a reload. A screenshot is saved to
//! target/dashboard.png for review.

mod collector_support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plasma_wire::Phase;
use plasma_wire::discover::{Cpu, DiscoverReport, Disk, Nic};
use plasmagen::collector::Config;
use plasmagen::collector::store::WriteOp;
use serde_json::{Value, json};

use collector_support::{repo_root, report, runbook, secrets_for, serve_tls, state};

struct Browser {
    child: Child,
    to: std::fs::File,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require_chromium() {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("chromium").is_file()));
    assert!(
        found,
        "`chromium` not found: install the Debian package `chromium`"
    );
}

impl Browser {
    fn launch(dir: &Path) -> Browser {
        require_chromium();
        let (inp, out) = (dir.join("cdp-in"), dir.join("cdp-out"));
        for f in [&inp, &out] {
            let st = Command::new("mkfifo").arg(f).status().expect("mkfifo");
            assert!(st.success());
        }
        // fd 3: commands to the browser, fd 4: its answers (what --remote-debugging-pipe uses).
        let script = format!(
            "exec chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
             --disable-component-update --disable-sync --no-first-run --ignore-certificate-errors \
             --window-size=1400,760 --user-data-dir='{ud}' --remote-debugging-pipe about:blank 3<'{i}' 4>'{o}'",
            ud = dir.join("profile").display(),
            i = inp.display(),
            o = out.display()
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let to = std::fs::OpenOptions::new()
            .write(true)
            .open(&inp)
            .expect("open cdp-in");
        let mut from_file = std::fs::File::open(&out).expect("open cdp-out");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                let n = match from_file.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(pos) = buf.iter().position(|b| *b == 0) {
                    let msg: Vec<u8> = buf.drain(..=pos).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg[..msg.len() - 1])
                        && tx.send(v).is_err()
                    {
                        return;
                    }
                }
            }
        });
        Browser {
            child,
            to,
            from: rx,
            next_id: 0,
            session: None,
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method}"));
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    fn open(&mut self, url: &str) {
        let target = self.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = self.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        self.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        self.call("Page.enable", json!({}));
        self.call("Page.navigate", json!({"url": url}));
    }

    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    /// Evaluate until `pred` holds (the page updates itself; we never reload).
    fn wait_for(&mut self, what: &str, expr: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.eval(expr);
            if pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last value {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_fleet_and_updates_live() {
    let dir = tempfile::tempdir().unwrap();
    let inv = runbook();
    let secrets = secrets_for(&inv, dir.path());
    let s = state(inv.clone(), dir.path(), Config::default());
    // Some history before the page opens.
    for (n, svc, p) in [
        ("node01", "chainfire", Phase::Bootstrapped),
        ("node01", "flaredb", Phase::Bootstrapped),
        ("node02", "chainfire", Phase::Joining),
        ("node03", "chainfire", Phase::Failed),
    ] {
        s.store
            .write(WriteOp::Report(report(n, svc, p, "<b>not markup</b>")))
            .await
            .unwrap();
    }
    s.store
        .write(WriteOp::Discover {
            mac: "aa:bb:cc:dd:ee:01".into(),
            report: DiscoverReport {
                primary_mac: "aa:bb:cc:dd:ee:01".into(),
                nics: vec![Nic {
                    name: "eno1".into(),
                    mac: "aa:bb:cc:dd:ee:01".into(),
                    speed_mbps: Some(25000),
                    carrier: Some(true),
                    driver: None,
                }],
                disks: vec![Disk {
                    name: "nvme0n1".into(),
                    size_bytes: 1_920_383_410_176,
                    by_id: vec!["/dev/disk/by-id/nvme-MZQL21T9HCJR_S64G".into()],
                    model: None,
                    rotational: Some(false),
                    removable: None,
                }],
                memory_bytes: 549_755_813_888,
                cpu: Cpu {
                    model: "AMD EPYC 9354P".into(),
                    logical_cpus: 64,
                },
                hostname: Some("nixos".into()),
                firmware: None,
                bmc: None,
            },
            remote: Some("10.0.100.150".into()),
        })
        .await
        .unwrap();
    let base = serve_tls(s.clone(), &secrets).await;

    let browser_dir = dir.path().join("browser");
    std::fs::create_dir_all(&browser_dir).unwrap();
    let mut b = tokio::task::spawn_blocking({
        let url = format!("{base}/");
        move || {
            let mut b = Browser::launch(&browser_dir);
            b.open(&url);
            b
        }
    })
    .await
    .unwrap();

    let rows = tokio::task::spawn_blocking(move || {
        let rows = b.wait_for(
            "the fleet rows",
            "Array.from(document.querySelectorAll('#nodes tbody tr')).map(r => r.id + '|' + r.dataset.state)",
            |v| v.as_array().is_some_and(|a| a.len() == 5),
        );
        (b, rows)
    })
    .await
    .unwrap();
    let (mut b, rows) = rows;
    assert_eq!(
        rows,
        json!([
            "node-node01|joined",
            "node-node02|in-progress",
            "node-node03|failed",
            "node-node04|pending",
            "node-node05|pending"
        ])
    );
    // A window property survives only if the page is never reloaded.
    b.eval("window.__noReload = 'still-here'");
    let (mut b, checks) = tokio::task::spawn_blocking(move || {
        let failed_bg =
            b.eval("getComputedStyle(document.getElementById('node-node03')).backgroundColor");
        let escaped =
            b.eval("document.getElementById('node-node01').innerHTML.includes('&lt;b&gt;')");
        let unknown = b.eval(
            "Array.from(document.querySelectorAll('#unknown tbody tr')).map(r => r.dataset.mac)",
        );
        let role = b.eval("document.querySelector('#node-node04 td:nth-child(2)').textContent");
        (b, (failed_bg, escaped, unknown, role))
    })
    .await
    .unwrap();
    assert_ne!(checks.0, json!("rgba(0, 0, 0, 0)"), "failed rows stand out");
    assert_eq!(
        checks.1,
        json!(true),
        "messages are shown as text, not markup"
    );
    assert_eq!(checks.2, json!(["aa:bb:cc:dd:ee:01"]));
    assert_eq!(checks.3, json!("worker"));

    // A report arrives while the page is open.
    s.store
        .write(WriteOp::Report(report(
            "node04",
            "chainfire",
            Phase::Joined,
            "joined the cluster",
        )))
        .await
        .unwrap();
    let (mut b, updated) = tokio::task::spawn_blocking(move || {
        let v = b.wait_for(
            "node04 to show as joined",
            "document.getElementById('node-node04').dataset.state + '|' + \
             document.querySelector('#node-node04 .badge[data-service=chainfire]').dataset.phase + '|' + window.__noReload",
            |v| v.as_str().is_some_and(|s| s.starts_with("joined")),
        );
        (b, v)
    })
    .await
    .unwrap();
    assert_eq!(updated, json!("joined|joined|still-here"));

    // A refused report for an unknown node is listed, also without a reload.
    let resp = collector_support::client(&secrets, &secrets, collector_support::As::Node("node01"))
        .post(format!("{base}/v1/reports"))
        .json(&report("node99", "chainfire", Phase::Booted, "who am i"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::FORBIDDEN);
    let (b, rejected) = tokio::task::spawn_blocking(move || {
        let v = b.wait_for(
            "the refused node id to be listed",
            "Array.from(document.querySelectorAll('#rejected tbody tr td:first-child')).map(td => td.textContent).join(',') + '|' + window.__noReload",
            |v| v.as_str().is_some_and(|s| s.starts_with("node99")),
        );
        (b, v)
    })
    .await
    .unwrap();
    assert_eq!(rejected, json!("node99|still-here"));
    let mut b = b;

    let shot = tokio::task::spawn_blocking(move || {
        let r = b.call("Page.captureScreenshot", json!({"format": "png"}));
        base64_decode(r["data"].as_str().unwrap())
    })
    .await
    .unwrap();
    assert!(shot.starts_with(b"\x89PNG"), "screenshot is a PNG");
    let path = target_dir().join("dashboard.png");
    std::fs::write(&path, shot).unwrap();
    eprintln!("dashboard screenshot: {}", path.display());
}
