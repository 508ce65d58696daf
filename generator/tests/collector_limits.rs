//! Bounded connections (issue 14): a `plasmagen collector` child started the way systemd starts
//! the pxe-server module's unit by default (1,024 open files, soft and hard, run through
//! `prlimit`) keeps answering `/health`, node reports and boot scripts while floods of idle
//! connections are held against it; idle connections are closed after the timeouts; event
//! stream subscribers are capped and their slots come back; the open-files limit is raised and
//! the caps fit in it. Loopback only; each test stops its collector (killed on drop).
//!
//! The floods print their measured latencies (`cargo test ... -- --nocapture`).

mod collector_support;

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use plasma_wire::Phase;
use plasmagen::collector::server::limits::ACCEPT_AHEAD;
use plasmagen::inventory::Inventory;
use plasmagen::render::pxe;
use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use collector_support::{As, client, identity_files, report, runbook, runbook_path, secrets_for};

/// Every request made while a flood is held must be answered within this (the figures
/// measured are far below; the margin is for a loaded test machine).
const BOUND: Duration = Duration::from_secs(3);

/// The floods measure latencies on a 2-core machine: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A collector child under `prlimit --nofile=SOFT:HARD`; killed on drop.
struct Collector {
    child: Child,
    api: String,
    boot: Option<String>,
    /// Its stdout up to the listening lines.
    lines: Vec<String>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Collector {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn api_addr(&self) -> SocketAddr {
        addr_of(&self.api)
    }

    fn boot_addr(&self) -> SocketAddr {
        addr_of(self.boot.as_deref().expect("boot listener"))
    }

    /// Open file descriptors of the collector now.
    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("/proc/PID/fd")
            .count()
    }

    /// (soft, hard) RLIMIT_NOFILE of the collector.
    fn nofile(&self) -> (u64, u64) {
        nofile_of(&format!("/proc/{}/limits", self.pid()))
    }
}

fn addr_of(url: &str) -> SocketAddr {
    url.split("://")
        .nth(1)
        .expect("scheme")
        .parse()
        .expect("host:port")
}

fn nofile_of(limits_file: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(limits_file).expect("limits");
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

fn spawn_limited(nofile: &str, args: &[String]) -> Collector {
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile={nofile}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_plasmagen"))
        .arg("collector")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run prlimit (util-linux) with plasmagen collector");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let want_boot = args.iter().any(|a| a == "--boot-listen");
    let (mut api, mut boot, mut lines) = (None, None, Vec::new());
    while api.is_none() || (want_boot && boot.is_none()) {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("collector printed its listening lines");
        if let Some(u) = line.strip_prefix("collector: api listening on ") {
            api = Some(u.to_string());
        } else if let Some(u) = line.strip_prefix("collector: boot listening on ") {
            boot = Some(u.to_string());
        }
        lines.push(line);
    }
    Collector {
        child,
        api: api.expect("api url"),
        boot,
        lines,
    }
}

/// This test process holds the flood's client sockets: make sure it may.
fn ensure_open_files(need: u64) {
    let (soft, hard) = nofile_of("/proc/self/limits");
    if soft >= need {
        return;
    }
    assert!(
        hard >= need,
        "this test needs {need} open files, the hard limit is {hard}"
    );
    let ok = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={hard}:{hard}"))
        .status()
        .expect("prlimit");
    assert!(ok.success());
}

struct Fleet {
    dir: tempfile::TempDir,
    inv: Inventory,
    secrets: PathBuf,
}

fn fleet() -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let inv = runbook();
    let secrets = secrets_for(&inv, dir.path());
    Fleet { dir, inv, secrets }
}

impl Fleet {
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--db".into(),
            self.dir.path().join("c.db").display().to_string(),
            "--inventory".into(),
            runbook_path().display().to_string(),
            "--secrets".into(),
            self.secrets.display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }
}

/// A client that opens a new connection for every request (the case that needs a free place
/// in the listener), trusting only the cluster CA, presenting `who`.
fn fresh_client(secrets: &Path, who: As<'_>) -> reqwest::Client {
    let ca = std::fs::read(secrets.join("ca/ca-cert.pem")).expect("CA");
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).expect("CA PEM"));
    if let Some((cert, key)) = identity_files(secrets, who) {
        let mut pem = std::fs::read(cert).expect("cert");
        pem.push(b'\n');
        pem.extend(std::fs::read(key).expect("key"));
        b = b.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
    }
    b.build().expect("client")
}

/// A bare TLS client (no certificate) offering `alpn`.
fn tls_connector(secrets: &Path, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(secrets.join("ca/ca-cert.pem")).expect("CA") {
        roots.add(c.expect("CA PEM")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

fn loopback() -> ServerName<'static> {
    ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into())
}

/// Latencies of one kind of request.
#[derive(Default)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn max(&self) -> Duration {
        self.0.iter().copied().max().unwrap_or_default()
    }

    fn summary(&self) -> String {
        let mut v = self.0.clone();
        v.sort();
        let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
        format!(
            "n={} p50={:.1}ms p99={:.1}ms max={:.1}ms",
            v.len(),
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            self.max().as_secs_f64() * 1e3
        )
    }
}

async fn timed<F: Future>(lat: &mut Latencies, f: F) -> F::Output {
    let t = Instant::now();
    let out = f.await;
    lat.0.push(t.elapsed());
    out
}

async fn health_ok(client: &reqwest::Client, api: &str) {
    let resp = client
        .get(format!("{api}/health"))
        .send()
        .await
        .expect("/health answered");
    assert_eq!(resp.status(), StatusCode::OK);
}

/// Whether the peer closed `s` (EOF or an error within a moment).
async fn closed_by_peer<S: AsyncRead + Unpin>(s: &mut S) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_millis(20), s.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[test]
fn an_idle_flood_of_the_boot_listener_starves_neither_listener() {
    let _one_at_a_time = serial();
    const FLOOD: usize = 1_100;
    ensure_open_files(FLOOD as u64 + 512);
    let f = fleet();
    let c = spawn_limited("1024:1024", &f.args(&["--boot-listen", "127.0.0.1:0"]));
    assert_eq!(c.nofile(), (1024, 1024), "the module's default, kept");
    let base_fds = c.open_fds();
    let node = f.inv.node("node01").unwrap();
    let want_script = pxe::netboot_script(&f.inv, node).unwrap();
    let boot_url = format!(
        "{}/boot/{}.ipxe",
        c.boot.as_ref().unwrap(),
        node.mac.dashed()
    );

    // The flood: 1,100 connections that never send a byte, all held until the end.
    let opened = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let boot_addr = c.boot_addr();
    let flood = {
        let (opened, stop) = (opened.clone(), stop.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let held: Vec<TcpStream> = (0..FLOOD)
                .map(|_| {
                    TcpStream::connect_timeout(&boot_addr, Duration::from_secs(5))
                        .expect("the kernel accepts every flood connection")
                })
                .collect();
            let took = started.elapsed();
            opened.store(true, Ordering::SeqCst);
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            (held, took)
        })
    };

    let (mut boot_lat, mut health_lat, mut max_fds) =
        (Latencies::default(), Latencies::default(), 0);
    runtime().block_on(async {
        let plain = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let tls = fresh_client(&f.secrets, As::Nobody);
        let mut after = 0;
        // While the flood opens, then 30 rounds while it is held.
        while after < 30 {
            if opened.load(Ordering::SeqCst) {
                after += 1;
            }
            let script = timed(&mut boot_lat, async {
                let r = plain.get(&boot_url).send().await.expect("boot answered");
                assert_eq!(r.status(), StatusCode::OK);
                r.text().await.unwrap()
            })
            .await;
            assert_eq!(script, want_script);
            timed(&mut health_lat, health_ok(&tls, &c.api)).await;
            max_fds = max_fds.max(c.open_fds());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    stop.store(true, Ordering::SeqCst);
    let (held, took) = flood.join().unwrap();
    // The collector kept at most its cap of them: the rest were closed for newer ones.
    let closed = held
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).unwrap();
            matches!((&**s).read(&mut [0u8; 8]), Ok(0))
        })
        .count();
    println!(
        "boot flood: {FLOOD} idle connections opened in {:.2}s and held; collector fds {base_fds} -> max {max_fds}; {closed} closed by the collector",
        took.as_secs_f64()
    );
    println!("boot flood: GET /boot/<mac>.ipxe {}", boot_lat.summary());
    println!(
        "boot flood: GET /health (api, TLS) {}",
        health_lat.summary()
    );
    assert!(
        max_fds <= base_fds + 256 + ACCEPT_AHEAD + 8,
        "fds grew past the boot cap: {base_fds} -> {max_fds}"
    );
    assert!(
        closed >= FLOOD - 256,
        "only {closed} flood connections closed"
    );
    assert!(boot_lat.max() < BOUND, "{}", boot_lat.summary());
    assert!(health_lat.max() < BOUND, "{}", health_lat.summary());
}

#[test]
fn a_flood_of_silent_tls_connections_keeps_health_and_reports_answering() {
    let _one_at_a_time = serial();
    const FLOOD: usize = 1_010;
    ensure_open_files(FLOOD as u64 + 512);
    let f = fleet();
    let c = spawn_limited("1024:1024", &f.args(&[]));
    assert_eq!(c.nofile(), (1024, 1024));
    let base_fds = c.open_fds();
    let (mut health_lat, mut report_lat, mut kept_lat, mut max_fds) = (
        Latencies::default(),
        Latencies::default(),
        Latencies::default(),
        0,
    );
    runtime().block_on(async {
        // A node already connected before the flood keeps its connection: it sent requests,
        // the flood's connections never did.
        let kept = client(&f.secrets, &f.secrets, As::Node("node02"));
        let post = |client: &reqwest::Client, node: &str, i: usize| {
            let r = report(node, "chainfire", Phase::Joining, &format!("flood {i}"));
            client.post(format!("{}/v1/reports", c.api)).json(&r).send()
        };
        let stored = |resp: reqwest::Result<reqwest::Response>| async {
            let resp = resp.expect("report answered");
            assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
        };
        stored(post(&kept, "node02", 0).await).await;
        let connector = tls_connector(&f.secrets, &[b"http/1.1"]);
        let addr = c.api_addr();
        let done = Arc::new(AtomicBool::new(false));
        // 1,010 connections that finish the handshake and send nothing, 16 handshakes at a time.
        let flood = {
            let done = done.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let held: Vec<_> = futures_util::stream::iter(0..FLOOD)
                    .map(|_| {
                        let connector = connector.clone();
                        async move {
                            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
                            connector
                                .connect(loopback(), tcp)
                                .await
                                .expect("the handshake completes")
                        }
                    })
                    .buffer_unordered(16)
                    .collect()
                    .await;
                done.store(true, Ordering::SeqCst);
                (held, started.elapsed())
            })
        };
        let anyone = fresh_client(&f.secrets, As::Nobody);
        let node01 = fresh_client(&f.secrets, As::Node("node01"));
        let mut after = 0;
        let mut i = 0;
        while after < 30 {
            if done.load(Ordering::SeqCst) {
                after += 1;
            }
            i += 1;
            timed(&mut health_lat, health_ok(&anyone, &c.api)).await;
            stored(timed(&mut report_lat, post(&node01, "node01", i)).await).await;
            stored(timed(&mut kept_lat, post(&kept, "node02", i)).await).await;
            max_fds = max_fds.max(c.open_fds());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (mut held, took) = flood.await.unwrap();
        let mut closed = 0;
        for s in &mut held {
            closed += usize::from(closed_by_peer(s).await);
        }
        println!(
            "tls flood: {FLOOD} connections finished the handshake in {:.2}s and stayed silent; collector fds {base_fds} -> max {max_fds}; {closed} closed by the collector",
            took.as_secs_f64()
        );
        assert!(closed >= FLOOD - 512, "only {closed} flood connections closed");
    });
    println!("tls flood: GET /health {}", health_lat.summary());
    println!(
        "tls flood: POST /v1/reports (mTLS, new connection each) {}",
        report_lat.summary()
    );
    println!(
        "tls flood: POST /v1/reports (mTLS, one keep-alive connection) {}",
        kept_lat.summary()
    );
    assert!(
        max_fds <= base_fds + 512 + ACCEPT_AHEAD + 8,
        "fds grew past the api cap: {base_fds} -> {max_fds}"
    );
    assert!(health_lat.max() < BOUND, "{}", health_lat.summary());
    assert!(report_lat.max() < BOUND, "{}", report_lat.summary());
    assert!(kept_lat.max() < BOUND, "{}", kept_lat.summary());
}

#[test]
fn event_stream_subscribers_are_capped_and_their_slots_come_back() {
    let _one_at_a_time = serial();
    let f = fleet();
    let c = spawn_limited("1024:1024", &f.args(&["--max-event-streams", "4"]));
    runtime().block_on(async {
        let url = format!("{}/v1/events", c.api);
        let subscribe = || async {
            // One client each: one connection each.
            fresh_client(&f.secrets, As::Operator)
                .get(&url)
                .send()
                .await
                .expect("events answered")
        };
        let open_all = || async {
            let mut subs = Vec::new();
            for _ in 0..4 {
                let mut r = subscribe().await;
                assert_eq!(r.status(), StatusCode::OK);
                let first = r.chunk().await.unwrap().expect("first event");
                assert!(String::from_utf8_lossy(&first).contains("event: changed"));
                subs.push(r);
            }
            let refused = subscribe().await;
            assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
            let body: Value = refused.json().await.unwrap();
            assert_eq!(body["error"], "too_many_streams", "{body}");
            subs
        };
        let subs = open_all().await;
        drop(subs);
        // Closed connections end their streams: all four places come back.
        let t = Instant::now();
        loop {
            let r = subscribe().await;
            if r.status() == StatusCode::OK {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no slot came back after the subscribers left"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let back = t.elapsed();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let subs = open_all().await;
        println!(
            "events: 4 of 4 open, the 5th 503; slots back {:.0} ms after the subscribers closed",
            back.as_secs_f64() * 1e3
        );
        drop(subs);
    });
}

/// Read until the peer closes; returns how long that took and what it sent.
async fn until_closed<S: AsyncRead + Unpin>(s: &mut S, limit: Duration) -> (Duration, Vec<u8>) {
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t.elapsed()), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (t.elapsed(), got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("still open after {limit:?}"),
        }
    }
}

/// HTTP/2 frame types in `bytes` (a stream of whole frames).
fn h2_frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len =
            (usize::from(bytes[0]) << 16) | (usize::from(bytes[1]) << 8) | usize::from(bytes[2]);
        types.push(bytes[3]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    types
}

#[test]
fn idle_connections_are_closed_after_the_timeouts() {
    let _one_at_a_time = serial();
    let f = fleet();
    let c = spawn_limited(
        "1024:1024",
        &f.args(&[
            "--boot-listen",
            "127.0.0.1:0",
            "--idle-timeout",
            "1s",
            "--handshake-timeout",
            "1s",
            "--request-timeout",
            "1s",
        ]),
    );
    let (api, boot) = (c.api_addr(), c.boot_addr());
    let mac = f.inv.node("node01").unwrap().mac.dashed();
    let limit = Duration::from_secs(5);
    let window = |what: &str, took: Duration| {
        println!(
            "idle: {what} closed after {:.0} ms",
            took.as_secs_f64() * 1e3
        );
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "{what}: closed after {took:?}, expected about 1 s"
        );
    };
    runtime().block_on(async {
        let connector = tls_connector(&f.secrets, &[b"http/1.1"]);
        let h2 = tls_connector(&f.secrets, &[b"h2"]);
        let silent_tcp = async {
            let mut s = tokio::net::TcpStream::connect(boot).await.unwrap();
            until_closed(&mut s, limit).await.0
        };
        let after_a_request = async {
            let mut s = tokio::net::TcpStream::connect(boot).await.unwrap();
            let req = format!("GET /boot/{mac}.ipxe HTTP/1.1\r\nHost: x\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // The answer, then silence until the collector closes.
            while !String::from_utf8_lossy(&got).contains("#!ipxe") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed before answering");
                got.extend_from_slice(&buf[..n]);
            }
            assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
            until_closed(&mut s, limit).await.0
        };
        let trickled_header = async {
            let mut s = tokio::net::TcpStream::connect(boot).await.unwrap();
            let t = Instant::now();
            let mut buf = [0u8; 64];
            for b in b"GET /boot/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter().cycle() {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                if let Ok(Ok(0) | Err(_)) =
                    tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await
                {
                    break;
                }
                assert!(t.elapsed() < limit, "a trickled header kept it open");
            }
            t.elapsed()
        };
        let no_client_hello = async {
            let mut s = tokio::net::TcpStream::connect(api).await.unwrap();
            until_closed(&mut s, limit).await.0
        };
        // Timed from the connect: the idle clock starts when the collector accepts.
        let silent_tls = async {
            let t = Instant::now();
            let tcp = tokio::net::TcpStream::connect(api).await.unwrap();
            let mut s = connector.connect(loopback(), tcp).await.unwrap();
            until_closed(&mut s, limit).await;
            t.elapsed()
        };
        let silent_h2 = async {
            let t = Instant::now();
            let tcp = tokio::net::TcpStream::connect(api).await.unwrap();
            let mut s = h2.connect(loopback(), tcp).await.unwrap();
            assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            // The client preface and an empty SETTINGS frame, then nothing.
            s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
                .await
                .unwrap();
            let (_, got) = until_closed(&mut s, limit).await;
            (t.elapsed(), got)
        };
        let slow_body = async {
            let tcp = tokio::net::TcpStream::connect(api).await.unwrap();
            let mut s = connector.connect(loopback(), tcp).await.unwrap();
            s.write_all(
                b"POST /v1/discover HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"primary_mac\"",
            )
            .await
            .unwrap();
            let t = Instant::now();
            let (_, got) = until_closed(&mut s, limit).await;
            (t.elapsed(), String::from_utf8_lossy(&got).into_owned())
        };
        let (silent_tcp, after_a_request, trickled, no_hello, silent_tls, (h2_took, h2_bytes), (slow_took, slow)) = tokio::join!(
            silent_tcp,
            after_a_request,
            trickled_header,
            no_client_hello,
            silent_tls,
            silent_h2,
            slow_body
        );
        window("boot: a connection that never sends", silent_tcp);
        window("boot: a keep-alive connection after its request", after_a_request);
        window("boot: a header trickled a byte per 100 ms", trickled);
        window("api: a TCP connection without a ClientHello (handshake timeout)", no_hello);
        window("api: a TLS connection silent after the handshake", silent_tls);
        window("api: an HTTP/2 connection silent after its preface", h2_took);
        let types = h2_frame_types(&h2_bytes);
        assert!(types.contains(&7), "no GOAWAY before the close: frame types {types:?}");
        window("api: a request body that stops (request timeout)", slow_took);
        assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
        assert!(slow.contains("request_timeout"), "{slow}");
    });
}

#[test]
fn the_open_files_limit_is_raised_and_the_caps_fit_in_it() {
    let _one_at_a_time = serial();
    let f = fleet();
    // A soft limit below the hard one is raised to it.
    let c = spawn_limited("256:4096", &f.args(&[]));
    assert_eq!(c.nofile(), (4096, 4096));
    assert!(
        c.lines
            .iter()
            .any(|l| l == "collector: open files limit 4096 (soft was 256, hard 4096)"),
        "{:?}",
        c.lines
    );
    assert!(
        c.lines
            .iter()
            .any(|l| l == "collector: connection caps api 512, boot 256"),
        "{:?}",
        c.lines
    );
    drop(c);
    // Caps that do not fit the hard limit are lowered in proportion, room kept for the rest.
    let c = spawn_limited("512:512", &f.args(&["--boot-listen", "127.0.0.1:0"]));
    assert!(
        c.lines
            .iter()
            .any(|l| l == "collector: connection caps api 277, boot 138"),
        "{:?}",
        c.lines
    );
    // ... and enforced: 300 idle connections leave the boot listener holding 138.
    let base_fds = c.open_fds();
    let held: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(c.boot_addr()).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let fds = c.open_fds();
    assert!(
        fds <= base_fds + 138 + ACCEPT_AHEAD,
        "{base_fds} -> {fds} with {} held",
        held.len()
    );
    assert!(
        fds >= base_fds + 100,
        "the connections were not served: {fds}"
    );
}
