//! The built agent against admin-API endpoints that stream endless bodies: it must refuse each
//! body at its cap, retry like for a 5xx, give up by its deadline, and its peak RSS (VmHWM)
//! must stay under `RSS_BOUND`. Before the caps, the same run grew to gigabytes.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Answer, FakeServer, closed_port_url};

/// The debug build; `PLASMA_AGENT_BIN=target/release/plasma-agent` measures another one.
const BIN: &str = env!("CARGO_BIN_EXE_plasma-agent");
/// Peak RSS allowed: the 4 MiB members cap plus a debug binary's baseline (~8 MiB), with room.
const RSS_BOUND_KIB: u64 = 32 * 1024;
/// Kill switch: stop a runaway agent long before it hurts the machine.
const RUNAWAY_KIB: u64 = 1024 * 1024;

struct Measured {
    exit: Option<i32>,
    elapsed: Duration,
    hwm_kib: u64,
    logs: Vec<serde_json::Value>,
}

impl Measured {
    fn error(&self) -> String {
        self.logs
            .iter()
            .rev()
            .find(|l| l["level"] == "ERROR")
            .and_then(|l| l["message"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    fn refusals(&self) -> usize {
        self.logs
            .iter()
            .filter(|l| l["message"] == "response body over the cap: attempt failed")
            .count()
    }
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the agent, sampling VmHWM every 10 ms; the last sample before exit is the peak.
fn measure(args: &[&str], dir: &Path) -> Measured {
    let out = dir.join(format!("stdout-{}.jsonl", args[0]));
    let started = Instant::now();
    let bin = std::env::var("PLASMA_AGENT_BIN").unwrap_or_else(|_| BIN.to_owned());
    let mut child = Command::new(bin)
        .args(args)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut hwm = 0;
    let status = loop {
        if let Some(kib) = status_kib(child.id(), "VmHWM:") {
            hwm = hwm.max(kib);
        }
        if hwm > RUNAWAY_KIB {
            let _ = child.kill();
            let _ = child.wait();
            panic!("agent passed {hwm} KiB RSS: killed (the body caps do not hold)");
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "agent hangs");
        std::thread::sleep(Duration::from_millis(10));
    };
    let logs = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    Measured {
        exit: status.code(),
        elapsed: started.elapsed(),
        hwm_kib: hwm,
        logs,
    }
}

fn write_config(dir: &Path, local: &str, join_urls: &[String]) -> PathBuf {
    let cfg = serde_json::json!({
        "node_id": "node04", "node_role": "control-plane", "bootstrap": false,
        "cluster_name": "c", "leader_url": local, "raft_addr": "10.0.200.20:2380",
        "services": {"chainfire": {
            "local_url": local, "join_urls": join_urls, "raft_addr": "10.0.200.20:2380"}},
        "tls": {"ca": "/nonexistent/ca.pem", "cert": "/nonexistent/c.pem", "key": "/nonexistent/k.pem"},
        "collector_url": closed_port_url(),
        "health_timeout_secs": 3,
        "join_timeout_secs": 5
    });
    let p = dir.join("cluster-config.json");
    std::fs::write(&p, cfg.to_string()).unwrap();
    p
}

fn assert_bounded(what: &str, m: &Measured) {
    eprintln!(
        "{what}: VmHWM {} KiB, exit {:?}, {:?}, {} refusals; {}",
        m.hwm_kib,
        m.exit,
        m.elapsed,
        m.refusals(),
        m.error()
    );
    assert!(m.hwm_kib > 0, "{what}: VmHWM never sampled");
    assert!(
        m.hwm_kib < RSS_BOUND_KIB,
        "{what}: peak RSS {} KiB ≥ {RSS_BOUND_KIB} KiB",
        m.hwm_kib
    );
    assert_eq!(m.exit, Some(75), "{what}: {}", m.error());
}

#[test]
fn endless_health_body_keeps_wait_healthy_small_until_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let srv = FakeServer::start(|_, _| Answer::Endless);
    let cfg = write_config(dir.path(), &srv.url, std::slice::from_ref(&srv.url));
    let health = format!("{}/health", srv.url);
    let state = dir.path().join("state");
    let m = measure(
        &[
            "wait-healthy",
            "--config",
            cfg.to_str().unwrap(),
            "--url",
            &health,
            "--state-dir",
            state.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_bounded("wait-healthy", &m);
    let err = m.error();
    assert!(
        err.starts_with("Health check timeout after 3s") && err.contains("65536-byte cap"),
        "{err}"
    );
    // Probes at 0, 0.5, 1.5 and 3 s: each one refused at the cap, none ran into the 5 s
    // request timeout (which would also bound the run, but at gigabytes).
    let probes = srv.count("GET /health");
    assert!((3..=5).contains(&probes), "{probes} probes");
    assert_eq!(m.refusals(), probes, "one refusal line per attempt");
    assert!(m.elapsed < Duration::from_secs(6), "{:?}", m.elapsed);
}

#[test]
fn endless_members_and_add_bodies_keep_join_small_until_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let srv = FakeServer::start(|method, path| match (method, path) {
        ("GET", "/health") => Answer::Body(br#"{"status":"healthy"}"#.to_vec()),
        ("POST", "/b/admin/member/add") => {
            Answer::Body(br#"{"id":"node04","raft_addr":"10.0.200.20:2380"}"#.to_vec())
        }
        // Members on both join URLs and the add through the first one never end.
        _ => Answer::Endless,
    });
    let joins = [format!("{}/a", srv.url), format!("{}/b", srv.url)];
    let cfg = write_config(dir.path(), &srv.url, &joins);
    let state = dir.path().join("state");
    let m = measure(
        &[
            "join",
            "--config",
            cfg.to_str().unwrap(),
            "--service",
            "chainfire",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_bounded("join", &m);
    let err = m.error();
    assert!(
        err.starts_with("Node node04 not healthy in cluster membership after 5s")
            && err.contains("4194304-byte cap"),
        "{err}"
    );
    assert_eq!(
        srv.count("POST /a/admin/member/add"),
        1,
        "{:?}",
        srv.requests()
    );
    assert_eq!(srv.count("POST /b/admin/member/add"), 1);
    // Membership was read again and again (4 MiB refused each time) until the deadline.
    let members = srv
        .requests()
        .iter()
        .filter(|r| r.ends_with("/admin/cluster/members"))
        .count();
    assert!(members >= 6, "{members} membership reads");
    assert_eq!(m.refusals(), members + 1, "one refusal line per attempt");
    assert!(
        m.elapsed >= Duration::from_secs(3) && m.elapsed < Duration::from_secs(8),
        "{:?}",
        m.elapsed
    );
}
