//! The agent's retry loops against response bodies over the caps (agent/src/http.rs), in-process
//! under tokio's paused clock: a refused body is a failed attempt like a 5xx (next join URL,
//! backoff, deadline), logged once per attempt. The simulator cluster is the healthy part.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use plasma_agent::Outcome;
use plasma_tests::agent::{self, Run};
use plasma_tests::sim::{Sim, SimOptions};
use plasma_tests::sink::ReportSink;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const REFUSED: &str = "response body over the cap: attempt failed";
/// Four times the members cap.
const SAFETY_STOP: usize = 16 << 20;

/// A plain-http server in the test's runtime that answers every request with 200 and a chunked
/// body that, for a capped client, never ends: it stops after `SAFETY_STOP` bytes only so that
/// a regression fails these tests instead of exhausting the machine.
struct Endless {
    url: String,
    hits: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Endless {
    async fn start() -> Endless {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let h = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(stream_forever(s, h.clone()));
            }
        });
        Endless { url, hits, task }
    }

    /// `"GET /health"`, ... in arrival order.
    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }

    fn count(&self, method_path: &str) -> usize {
        self.hits().iter().filter(|h| *h == method_path).count()
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn stream_forever(mut s: TcpStream, hits: Arc<Mutex<Vec<String>>>) {
    // The request head and its body (small JSON) arrive together: read until both are in.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let line = String::from_utf8_lossy(&buf[..head_end]);
    let mut words = line.split_whitespace();
    let hit = format!(
        "{} {}",
        words.next().unwrap_or(""),
        words.next().unwrap_or("")
    );
    hits.lock().unwrap().push(hit);
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    if s.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut frame = b"4000\r\n".to_vec();
    frame.extend_from_slice(&[b' '; 0x4000]);
    frame.extend_from_slice(b"\r\n");
    let mut sent = 0;
    while sent < SAFETY_STOP && s.write_all(&frame).await.is_ok() {
        sent += 0x4000;
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
}

/// node04 of the simulator (its local service is sim node 3), reporting to `collector`.
fn node04(sim: &Sim, join_urls: &[String], collector: &str) -> plasma_wire::ClusterConfig {
    agent::config(
        "node04",
        &sim.raft_addr(3),
        &sim.url(3),
        join_urls,
        &[],
        sim.pki.as_ref().unwrap().node_tls("node04"),
        collector,
    )
}

/// The `limit` field of every refusal line, in order.
fn refusals(run: &Run) -> Vec<u64> {
    run.logs
        .iter()
        .filter(|l| l["message"] == REFUSED)
        .map(|l| l["limit"].as_u64().unwrap())
        .collect()
}

fn error_line(run: &Run) -> String {
    run.logs.iter().find(|l| l["level"] == "ERROR").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(start_paused = true)]
async fn join_moves_past_a_join_url_whose_bodies_never_end() {
    let sim = Sim::start(SimOptions::default()).await;
    let sink = ReportSink::start(sim.pki.as_ref().map(|p| p.server_config())).await;
    let bad = Endless::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = node04(&sim, &[bad.url.clone(), sim.url(0)], &sink.url);
    let run = agent::join(
        &agent::write_config(dir.path(), &cfg),
        "chainfire",
        dir.path(),
    )
    .await;
    assert!(
        matches!(run.result, Ok(Outcome::Joined)),
        "{:?} {:#?}",
        run.result,
        run.messages()
    );
    // Membership: refused at 4 MiB, read from node01 instead; the add: refused at 64 KiB,
    // sent to node01 at once, as after a 5xx.
    assert_eq!(
        bad.hits(),
        ["GET /admin/cluster/members", "POST /admin/member/add"]
    );
    assert_eq!(refusals(&run), [4 << 20, 64 << 10]);
    let warn = run
        .line("Join request failed")
        .expect("the failed add attempt");
    let err = warn["error"].as_str().unwrap();
    assert!(err.contains("is over the 65536-byte cap"), "{err}");
    let adds: Vec<(usize, u16)> = sim.adds().iter().map(|h| (h.node, h.status)).collect();
    assert_eq!(adds, [(0, 201)]);
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
}

#[tokio::test(start_paused = true)]
async fn add_answers_over_the_cap_are_retried_with_backoff_until_the_deadline() {
    let sim = Sim::start(SimOptions::default()).await;
    let sink = ReportSink::start(sim.pki.as_ref().map(|p| p.server_config())).await;
    let bad = Endless::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = node04(&sim, std::slice::from_ref(&bad.url), &sink.url);
    cfg.join_timeout_secs = 60;
    let run = agent::join(
        &agent::write_config(dir.path(), &cfg),
        "chainfire",
        dir.path(),
    )
    .await;
    assert_eq!(run.exit_code, 75, "{:?}", run.result);
    let msg = error_line(&run);
    assert!(
        msg.starts_with("Join request failed")
            && msg.contains("is over the 65536-byte cap")
            && msg.contains("gave up after 60s"),
        "{msg}"
    );
    assert!(
        run.elapsed >= Duration::from_secs(45) && run.elapsed <= Duration::from_secs(61),
        "{:?}",
        run.elapsed
    );
    // Backoff 0.5 s doubling to 10 s (jitter d/2..d): about 8-15 attempts in 60 s, not a
    // tight loop, and every one of them ended at the cap.
    let posts = bad.count("POST /admin/member/add");
    assert!((5..=20).contains(&posts), "{posts} attempts");
    let failed = run
        .logs
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .unwrap()
                .starts_with("Join request failed")
        })
        .count();
    assert_eq!(
        failed,
        posts + 1,
        "one WARN per attempt, plus the final ERROR"
    );
    let mut want = vec![4u64 << 20];
    want.extend(std::iter::repeat_n(64 << 10, posts));
    assert_eq!(refusals(&run), want, "the membership read, then each add");
    assert!(sim.adds().is_empty());
}

#[tokio::test(start_paused = true)]
async fn health_over_the_cap_is_polled_with_backoff_until_the_deadline() {
    let sim = Sim::start(SimOptions::default()).await;
    let sink = ReportSink::start(sim.pki.as_ref().map(|p| p.server_config())).await;
    let bad = Endless::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = node04(&sim, &[sim.url(0)], &sink.url);
    cfg.services.get_mut("chainfire").unwrap().local_url = bad.url.clone();
    let run = agent::join(
        &agent::write_config(dir.path(), &cfg),
        "chainfire",
        dir.path(),
    )
    .await;
    assert_eq!(run.exit_code, 75, "{:?}", run.result);
    let msg = error_line(&run);
    assert!(
        msg.starts_with("Health check timeout after 120s")
            && msg.contains("is over the 65536-byte cap"),
        "{msg}"
    );
    assert!(
        run.elapsed >= Duration::from_secs(120) && run.elapsed < Duration::from_secs(126),
        "{:?}",
        run.elapsed
    );
    // The same schedule as a service answering 503: 0.5 s doubling to 5 s.
    let probes = bad.count("GET /health");
    assert!((20..=40).contains(&probes), "{probes} probes");
    assert_eq!(refusals(&run), vec![64 << 10; probes]);
    assert!(sim.hits().iter().all(|h| h.path != "/admin/member/add"));
}

#[tokio::test(start_paused = true)]
async fn collector_reply_over_the_cap_spools_the_reports() {
    let sim = Sim::start(SimOptions::default()).await;
    let bad = Endless::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = node04(&sim, &[sim.url(0)], &bad.url);
    let state = dir.path().join("state");
    let run = agent::join(&agent::write_config(dir.path(), &cfg), "chainfire", &state).await;
    assert!(
        matches!(run.result, Ok(Outcome::Joined)),
        "{:?}",
        run.result
    );
    // The first report's reply is refused: the collector counts as down, is tried again after
    // 1 s, 2 s, 4 s, … (each retry is one POST of the oldest spooled report), and at the end of
    // the run for at most DRAIN_BUDGET; every report stays spooled for the next run.
    let posts = bad.hits();
    assert!(posts.iter().all(|h| h == "POST /v1/reports"), "{posts:?}");
    assert!((2..=8).contains(&posts.len()), "{posts:?}");
    assert!(run.line("collector unreachable").is_some());
    assert!(run.line("reports stay spooled for the next run").is_some());
    let spool = plasma_agent::report::spool_path(&state, "chainfire");
    assert_eq!(plasma_agent::report::read_spool(&spool).len(), 5);
    let most = plasma_agent::report::DRAIN_BUDGET + Duration::from_secs(3);
    assert!(run.elapsed < most, "{:?}", run.elapsed);
}
