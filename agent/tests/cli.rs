//! The built binary: exit codes, --help, JSON on stdout, sd-notify. The simulator scenarios
//! live in the plasma-tests crate (tests/tests/agent_*.rs) and drive the library in-process.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Output};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_plasma-agent");

/// A plain-http server answering every request with `status` and `body` (Connection: close).
fn serve(status: &'static str, body: &'static str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    url
}

fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

fn write_config(dir: &std::path::Path, health_timeout_secs: u64) -> std::path::PathBuf {
    let cfg = serde_json::json!({
        "node_id": "node01", "node_role": "control-plane", "bootstrap": false,
        "cluster_name": "c", "leader_url": "http://127.0.0.1:9", "raft_addr": "10.0.200.10:2380",
        "services": {},
        "tls": {"ca": "/nonexistent/ca.pem", "cert": "/nonexistent/c.pem", "key": "/nonexistent/k.pem"},
        "collector_url": closed_port(),
        "health_timeout_secs": health_timeout_secs
    });
    let p = dir.join("cluster-config.json");
    std::fs::write(&p, cfg.to_string()).unwrap();
    p
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn notify_socket(dir: &std::path::Path) -> (UnixDatagram, std::path::PathBuf) {
    let p = dir.join("notify.sock");
    let s = UnixDatagram::bind(&p).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    (s, p)
}

fn drain(s: &UnixDatagram) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    got
}

#[test]
fn help_documents_exit_codes() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "Exit codes",
        "0   done",
        "2   bad configuration",
        "75  temporary failure",
        "join",
        "wait-healthy",
    ] {
        assert!(text.contains(want), "{want:?} missing from --help:\n{text}");
    }
}

#[test]
fn bad_config_exits_2_with_a_json_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 120);
    let out = Command::new(BIN)
        .args([
            "join",
            "--config",
            cfg.to_str().unwrap(),
            "--service",
            "chainfire",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let lines = json_lines(&out);
    let err = lines
        .iter()
        .find(|l| l["level"] == "ERROR")
        .expect("an ERROR line");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("services.chainfire"),
        "{err}"
    );

    let out = Command::new(BIN)
        .args([
            "join",
            "--config",
            "/nonexistent.json",
            "--service",
            "chainfire",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Configuration file not found"));

    let out = Command::new(BIN)
        .args(["join", "--config", "x", "--service", "etcd"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage errors are exit 2 too");
}

#[test]
fn wait_healthy_notifies_systemd_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 30);
    let url = serve(
        "200 OK",
        r#"{"status":"healthy","database":"connected","version":"1.0.0"}"#,
    );
    let (sock, path) = notify_socket(dir.path());
    let out = Command::new(BIN)
        .args([
            "wait-healthy",
            "--config",
            cfg.to_str().unwrap(),
            "--url",
            &format!("{url}/health"),
        ])
        .args(["--expect", "database=connected", "--state-dir"])
        .arg(dir.path().join("state"))
        .env("NOTIFY_SOCKET", &path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines = json_lines(&out);
    let healthy = lines
        .iter()
        .find(|l| l["message"] == "Local iam healthy")
        .expect("healthy line");
    assert_eq!(healthy["node_id"], "node01");
    assert_eq!(healthy["service"], "iam");
    assert_eq!(healthy["phase"], "local-healthy");
    let msgs = drain(&sock);
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("STATUS=iam waiting-local")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("STATUS=iam local-healthy")),
        "{msgs:?}"
    );
    // The collector port is closed: the report is spooled, not lost.
    let spool = std::fs::read_to_string(dir.path().join("state/reports-iam.jsonl")).unwrap();
    assert_eq!(spool.lines().count(), 2, "{spool}");
}

#[test]
fn never_healthy_exits_75_and_extends_the_start_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 2);
    let url = serve(
        "200 OK",
        r#"{"status":"healthy","database":"disconnected"}"#,
    );
    let (sock, path) = notify_socket(dir.path());
    let started = std::time::Instant::now();
    let out = Command::new(BIN)
        .args([
            "wait-healthy",
            "--config",
            cfg.to_str().unwrap(),
            "--url",
            &format!("{url}/health"),
        ])
        .args(["--expect", "database=connected", "--state-dir"])
        .arg(dir.path().join("state"))
        .env("NOTIFY_SOCKET", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75));
    assert!(started.elapsed() < Duration::from_secs(10));
    let lines = json_lines(&out);
    let err = lines.iter().find(|l| l["level"] == "ERROR").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        err.contains("Health check timeout after 2s")
            && err.contains("\"database\" is \"disconnected\""),
        "{err}"
    );
    let msgs = drain(&sock);
    assert!(
        msgs.iter().any(|m| m.starts_with("EXTEND_TIMEOUT_USEC=")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.starts_with("STATUS=iam failed")),
        "{msgs:?}"
    );
}
