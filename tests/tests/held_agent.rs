//! What held when the agent's peers turned hostile (the issue's list, item 5): redirects the
//! HTTP client does not follow, redirects and leader hints the join refuses (https→http, other
//! schemes, loops), answers that drip a byte at a time (every call ends by its timeout), and
//! 409 answers (a member with another Raft address is a conflict, never "joined").
//!
//! Scripted raw HTTP/1.1 servers on 127.0.0.1, TLS with client certificates from plasma-pki
//! where the agent talks https. Real time (the drips must really drip); every wait is bounded.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plasma_agent::config::JoinPlan;
use plasma_agent::discover::{self, Backoff, PostConfig, PostError};
use plasma_agent::health::{self, HealthTimeout};
use plasma_agent::http::{Http, REQUEST_TIMEOUT};
use plasma_agent::join::{AddOutcome, JoinError, Joiner, MAX_HOPS, add_via};
use plasma_agent::members;
use plasma_agent::notify::Notifier;
use plasma_agent::report::{Reporter, read_spool, spool_path};
use plasma_tests::pki::TestPki;
use plasma_wire::admin::AddMember;
use plasma_wire::discover::{Cpu, DiscoverReport};
use plasma_wire::{Phase, Report, ReportStatus};
use reqwest::Url;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// How a scripted server answers one request.
#[derive(Debug, Clone)]
enum Reply {
    /// Status, extra header lines (`Name: value`), JSON body.
    Answer(u16, Vec<String>, String),
    /// A 200 head with `Content-Length: 1000`, then one body byte every [`DRIP`].
    DripBody,
    /// The status line and then one header byte every [`DRIP`]: the head never ends.
    DripHead,
}

const DRIP: Duration = Duration::from_millis(250);
/// A drip stops after this even if the client never hangs up (a regression fails the test's
/// own bounds instead of running forever).
const DRIP_STOP: Duration = Duration::from_secs(60);

fn answer(status: u16, headers: &[&str], body: &str) -> Reply {
    Reply::Answer(
        status,
        headers.iter().map(|h| h.to_string()).collect(),
        body.to_string(),
    )
}

type Route = dyn Fn(&str, &str, &str) -> Reply + Send + Sync;

/// An answer made from the server's own URL.
type MakeReply = fn(&str) -> Reply;

/// A raw HTTP/1.1 server whose `route(method, path, own_url)` picks each answer. It records
/// `"METHOD /path"` of every request it read.
struct Scripted {
    url: String,
    hits: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Scripted {
    async fn start(
        tls: Option<Arc<rustls::ServerConfig>>,
        route: impl Fn(&str, &str, &str) -> Reply + Send + Sync + 'static,
    ) -> Scripted {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", l.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let route: Arc<Route> = Arc::new(route);
        let acceptor = tls.map(TlsAcceptor::from);
        let (h, own) = (hits.clone(), url.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let _ = tcp.set_nodelay(true);
                let (route, h, own, acceptor) =
                    (route.clone(), h.clone(), own.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        None => serve(tcp, &*route, &h, &own).await,
                        Some(a) => {
                            if let Ok(s) = a.accept(tcp).await {
                                serve(s, &*route, &h, &own).await;
                            }
                        }
                    }
                });
            }
        });
        Scripted { url, hits, task }
    }

    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }

    fn url(&self) -> Url {
        self.url.parse().unwrap()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    route: &Route,
    hits: &Mutex<Vec<String>>,
    own: &str,
) {
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
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let mut words = head.split_whitespace();
    let (method, path) = (
        words.next().unwrap_or("").to_string(),
        words.next().unwrap_or("").to_string(),
    );
    hits.lock().unwrap().push(format!("{method} {path}"));
    let started = Instant::now();
    match route(&method, &path, own) {
        Reply::Answer(status, headers, body) => {
            let mut out = format!(
                "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for h in headers {
                out.push_str(&h);
                out.push_str("\r\n");
            }
            out.push_str("\r\n");
            out.push_str(&body);
            let _ = s.write_all(out.as_bytes()).await;
            let _ = s.shutdown().await;
        }
        Reply::DripBody => {
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n";
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            while started.elapsed() < DRIP_STOP {
                if s.write_all(b" ").await.is_err() || s.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(DRIP).await;
            }
        }
        Reply::DripHead => {
            if s.write_all(b"HTTP/1.1 200 OK\r\nx-slow: ").await.is_err() {
                return;
            }
            while started.elapsed() < DRIP_STOP {
                if s.write_all(b"a").await.is_err() || s.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(DRIP).await;
            }
        }
    }
}

/// A PKI for the https servers and node04's client certificate, and the agent's client.
struct Tls {
    pki: TestPki,
    http: Http,
}

fn tls() -> Tls {
    let pki = TestPki::new("held");
    let http = Http::new(&pki.node_tls("node04"), false, true).expect("agent HTTP client");
    Tls { pki, http }
}

impl Tls {
    fn server(&self) -> Option<Arc<rustls::ServerConfig>> {
        Some(self.pki.server_config())
    }
}

fn me() -> AddMember {
    AddMember {
        id: "node04".into(),
        raft_addr: "10.0.200.13:2380".into(),
    }
}

const ADD: &str = "POST /admin/member/add";
const MEMBERS: &str = "GET /admin/cluster/members";

fn retry_msg(o: AddOutcome) -> String {
    match o {
        AddOutcome::Retry(m) => m,
        other => panic!("want a failed attempt (Retry), got {other:?}"),
    }
}

fn a_report(message: &str) -> Report {
    Report {
        installation: None,
        node_id: "node04".into(),
        service: "chainfire".into(),
        phase: Phase::Joining,
        status: ReportStatus::InProgress,
        message: message.into(),
        at: "2026-11-24T05:00:00Z".into(),
    }
}

fn discover_report() -> DiscoverReport {
    DiscoverReport {
        primary_mac: "52:54:00:12:34:60".into(),
        nics: vec![],
        disks: vec![],
        memory_bytes: 8 << 30,
        cpu: Cpu {
            model: "QEMU Virtual CPU".into(),
            logical_cpus: 2,
        },
        hostname: None,
        firmware: None,
        bmc: None,
    }
}

/// `f`'s output and how long it took.
async fn timed<F: Future>(f: F) -> (F::Output, Duration) {
    let started = Instant::now();
    let out = f.await;
    (out, started.elapsed())
}

fn spooled(state: &Path) -> Vec<Report> {
    read_spool(&spool_path(state, "chainfire"))
}

// ---------------------------------------------------------------------------------------------
// Redirects and leader hints.
// ---------------------------------------------------------------------------------------------

/// An https member (it passed the TLS checks, so it holds a CA-signed certificate) tries to send
/// the add, with node04's client certificate in play, somewhere weaker: to plain http by a
/// 307, a 308, a 503 hint or a 421 hint, or to another scheme. Each attempt fails at once
/// naming the refused target, and the plain-http server never sees a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_refuses_https_to_http_downgrades_and_other_schemes() {
    let t = tls();
    let plain = Scripted::start(None, |_, _, _| answer(201, &[], "{}")).await;
    let down = format!("{}/admin/member/add", plain.url);
    let cases: Vec<(&str, Reply, String)> = vec![
        (
            "307 to http",
            answer(307, &[&format!("location: {down}")], ""),
            down.clone(),
        ),
        (
            "308 to http",
            answer(308, &[&format!("location: {down}")], ""),
            down.clone(),
        ),
        (
            "503 leader hint to http",
            answer(503, &[], &format!("{{\"leader\": \"{}\"}}", plain.url)),
            down.clone(),
        ),
        (
            "421 leader hint to http",
            answer(421, &[], &format!("{{\"leader\": \"{}\"}}", plain.url)),
            down.clone(),
        ),
        (
            "307 to file:",
            answer(307, &["location: file:///etc/shadow"], ""),
            "file:///etc/shadow".into(),
        ),
        (
            "503 leader hint to ftp:",
            answer(503, &[], "{\"leader\": \"ftp://127.0.0.1/\"}"),
            "ftp://127.0.0.1/admin/member/add".into(),
        ),
    ];
    for (what, reply, refused) in cases {
        let srv = Scripted::start(t.server(), move |_, _, _| reply.clone()).await;
        let started = Instant::now();
        let msg = retry_msg(add_via(&t.http, &srv.url(), &me()).await);
        assert!(
            msg.contains(&format!("refusing redirect to {refused}")),
            "{what}: {msg}"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "{what}");
        assert_eq!(srv.hits(), [ADD], "{what}: one request, no retry here");
    }
    assert!(plain.hits().is_empty(), "{:?}", plain.hits());

    // The whole join: a member that downgrades is never joined through; the join gives up by
    // its deadline with the refusal as the last error.
    let srv = Scripted::start(t.server(), {
        let down = down.clone();
        move |m, _, _| match m {
            "GET" => answer(200, &[], "{\"members\": []}"),
            _ => answer(307, &[&format!("location: {down}")], ""),
        }
    })
    .await;
    let plan = JoinPlan {
        service: "chainfire".into(),
        local_url: srv.url(),
        join_urls: vec![srv.url()],
        raft_addr: me().raft_addr,
        bootstrap_peers: vec![],
    };
    let joiner = Joiner {
        http: &t.http,
        node_id: "node04",
        plan: &plan,
        deadline: tokio::time::Instant::now() + Duration::from_secs(2),
        timeout_secs: 2,
    };
    let started = Instant::now();
    match tokio::time::timeout(Duration::from_secs(10), joiner.join())
        .await
        .expect("the join ends by its deadline")
    {
        Err(JoinError::Deadline(msg)) => {
            assert!(msg.contains("refusing redirect to http://"), "{msg}")
        }
        other => panic!("want a deadline error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(srv.hits().iter().filter(|h| *h == ADD).count() >= 2);
    assert!(plain.hits().is_empty(), "{:?}", plain.hits());
}

/// Redirects and hints that go nowhere: a 307 to itself, a leader hint naming itself, a 307
/// without Location, a hint that is not a URL. At most `MAX_HOPS` are followed, then the
/// attempt fails (the next join URL is tried); never a hang, never "added".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_and_leader_hint_loops_are_bounded() {
    let t = tls();
    let loops: Vec<(&str, MakeReply)> = vec![
        ("307 to itself", |own| {
            answer(307, &[&format!("location: {own}/admin/member/add")], "")
        }),
        ("a relative 308 to itself", |_| {
            answer(308, &["location: /admin/member/add"], "")
        }),
    ];
    for (what, reply) in loops {
        let srv = Scripted::start(t.server(), move |_, _, own| reply(own)).await;
        let started = Instant::now();
        let msg = retry_msg(add_via(&t.http, &srv.url(), &me()).await);
        assert!(
            msg.contains(&format!("more than {MAX_HOPS} redirects / leader hints")),
            "{what}: {msg}"
        );
        assert_eq!(srv.hits().len(), MAX_HOPS + 1, "{what}: {:?}", srv.hits());
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
    }
    // A hint that names the node that answered is the leader saying it is busy (one membership
    // change at a time, docs/admin-api.md): the attempt ends at once, nothing is followed.
    let busy: Vec<(&str, MakeReply)> = vec![
        ("503 leader hint naming itself", |own| {
            answer(503, &[], &format!("{{\"leader\": \"{own}\"}}"))
        }),
        ("421 leader hint naming itself", |own| {
            answer(421, &[], &format!("{{\"leader\": \"{own}/\"}}"))
        }),
    ];
    for (what, reply) in busy {
        let srv = Scripted::start(t.server(), move |_, _, own| reply(own)).await;
        let got = add_via(&t.http, &srv.url(), &me()).await;
        assert!(
            matches!(got, AddOutcome::Busy { leader: true, .. }),
            "{what}: {got:?}"
        );
        assert_eq!(srv.hits().len(), 1, "{what}: {:?}", srv.hits());
    }
    for (what, reply, says) in [
        (
            "307 without Location",
            answer(307, &[], ""),
            "HTTP 307 without a usable Location",
        ),
        (
            "308 with an unusable Location",
            answer(308, &["location: http://[::1"], ""),
            "HTTP 308 without a usable Location",
        ),
        (
            "503 whose hint is not a URL",
            answer(503, &[], "{\"leader\": \"node01 is the leader\"}"),
            "HTTP 503",
        ),
        (
            "503 without a hint",
            answer(503, &[], "{\"error\": \"no leader\"}"),
            "HTTP 503",
        ),
        (
            "a 302 (not a leader redirect)",
            answer(302, &["location: /x"], ""),
            "HTTP 302",
        ),
    ] {
        let srv = Scripted::start(t.server(), move |_, _, _| reply.clone()).await;
        let msg = retry_msg(add_via(&t.http, &srv.url(), &me()).await);
        assert!(msg.contains(says), "{what}: {msg}");
        assert_eq!(srv.hits(), [ADD], "{what}: not followed");
    }
}

/// The HTTP client itself follows no redirect: a membership read, a health probe, a progress
/// report and the discovery POST that get a 3xx to a server that would answer perfectly never
/// reach that server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_client_follows_no_redirect() {
    let t = tls();
    let target = Scripted::start(t.server(), |m, p, _| match (m, p) {
        ("GET", "/admin/cluster/members") => answer(
            200,
            &[],
            "{\"members\": [{\"id\": \"node04\", \"raft_addr\": \"10.0.200.13:2380\", \"status\": \"healthy\", \"role\": \"follower\"}]}",
        ),
        ("GET", _) => answer(200, &[], "{\"status\": \"healthy\"}"),
        _ => answer(200, &[], "{\"status\": \"stored\"}"),
    })
    .await;
    let to = target.url.clone();
    let redirecting = Scripted::start(t.server(), move |_, p, _| {
        answer(307, &[&format!("location: {to}{p}")], "")
    })
    .await;
    let base = redirecting.url();

    let e = members::fetch(&t.http, &base)
        .await
        .expect_err("a redirect is not a membership list");
    assert!(e.contains("HTTP 307"), "{e}");

    let health_url: Url = format!("{}/health", redirecting.url).parse().unwrap();
    let e: HealthTimeout = health::wait_healthy(
        &t.http,
        &health_url,
        &[],
        Duration::from_secs(1),
        &Notifier::disabled(),
    )
    .await
    .expect_err("a redirect is not healthy");
    assert!(e.last_seen.starts_with("HTTP 307"), "{}", e.last_seen);

    let dir = tempfile::tempdir().unwrap();
    let reporter = Reporter::new(t.http.clone(), &base, dir.path(), "chainfire")
        .with_timeout(Duration::from_secs(2));
    reporter.send(a_report("one")).await;
    // Not delivered, so kept for the next run.
    assert_eq!(spooled(dir.path()).len(), 1);

    assert!(target.hits().is_empty(), "{:?}", target.hits());
    // Each call reached the redirecting server (health probes repeat until their budget).
    let hits = redirecting.hits();
    for want in [MEMBERS, "GET /health", "POST /v1/reports"] {
        assert!(hits.iter().any(|h| h == want), "{want} missing: {hits:?}");
    }
}

/// A TLS config for 127.0.0.1 that asks for no client certificate (the collector's discovery
/// endpoint as a netbooted machine sees it).
fn server_without_client_auth(pki: &TestPki) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let issued = pki
        .ca
        .issue(
            &plasma_pki::LeafSpec::pxe_server(std::net::Ipv4Addr::LOCALHOST.into(), 30),
            None,
        )
        .unwrap();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(cfg)
}

/// `plasma-agent discover` follows no redirect, like every other request of the agent (it used
/// reqwest's default policy, up to 10 redirects, https→http included, so a 307 from the
/// collector URL sent the hardware report wherever the Location said).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_follows_no_redirect() {
    let t = tls();
    let target =
        Scripted::start(None, |_, _, _| answer(200, &[], "{\"status\": \"stored\"}")).await;
    let cfg = |ca_file| PostConfig {
        timeout: Duration::from_millis(600),
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(200),
        },
        ca_file,
    };
    let mut followed = Vec::new();
    for (what, tls_cfg, ca) in [
        ("http -> http", None, None),
        (
            "https -> http (a downgrade)",
            Some(server_without_client_auth(&t.pki)),
            Some(t.pki.ca_path.clone()),
        ),
    ] {
        let to = target.url.clone();
        let redirecting = Scripted::start(tls_cfg, move |_, p, _| {
            answer(307, &[&format!("location: {to}{p}")], "")
        })
        .await;
        let before = target.hits().len();
        let res = discover::post_report(&redirecting.url, &discover_report(), &cfg(ca)).await;
        assert!(
            !redirecting.hits().is_empty(),
            "{what}: never reached the redirecting collector ({res:?})"
        );
        if target.hits().len() > before {
            followed.push(format!("{what}: {res:?}"));
        }
    }
    assert!(followed.is_empty(), "redirects followed: {followed:#?}");
}

// ---------------------------------------------------------------------------------------------
// Slow drips.
// ---------------------------------------------------------------------------------------------

/// Peers that answer a byte at a time (a body that never completes, a head that never ends):
/// every kind of call ends by its own timeout as a failed attempt, never hangs, never counts
/// as success. All run at once so the test takes one request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_drip_answers_end_by_the_timeouts() {
    let t = tls();
    let body = Scripted::start(t.server(), |_, _, _| Reply::DripBody).await;
    let head = Scripted::start(t.server(), |_, _, _| Reply::DripHead).await;
    let plain_head = Scripted::start(None, |_, _, _| Reply::DripHead).await;
    let dir = tempfile::tempdir().unwrap();
    let bound = REQUEST_TIMEOUT + Duration::from_secs(3);

    let add_body = timed(async { format!("{:?}", add_via(&t.http, &body.url(), &me()).await) });
    let add_head = timed(async { format!("{:?}", add_via(&t.http, &head.url(), &me()).await) });
    let members_body = timed(async { format!("{:?}", members::fetch(&t.http, &body.url()).await) });
    let health_head = timed(async {
        let url: Url = format!("{}/health", head.url).parse().unwrap();
        let r = health::wait_healthy(
            &t.http,
            &url,
            &[],
            Duration::from_secs(2),
            &Notifier::disabled(),
        )
        .await;
        format!("{:?}", r.map_err(|e| e.last_seen))
    });
    let report_body = timed(async {
        let reporter = Reporter::new(t.http.clone(), &body.url(), dir.path(), "chainfire")
            .with_timeout(Duration::from_secs(1));
        reporter.send(a_report("first")).await;
        // The collector now counts as down: the second report goes straight to the spool.
        reporter.send(a_report("second")).await;
        format!("{} spooled", spooled(dir.path()).len())
    });
    let discover_head = timed(async {
        let cfg = PostConfig {
            timeout: Duration::from_secs(1),
            backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_millis(200),
            },
            ca_file: None,
        };
        match discover::post_report(&plain_head.url, &discover_report(), &cfg).await {
            Err(PostError::Timeout { last, .. }) => format!("Timeout: {last}"),
            other => format!("{other:?}"),
        }
    });
    let (a, b, c, d, e, f) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(
            add_body,
            add_head,
            members_body,
            health_head,
            report_body,
            discover_head
        )
    })
    .await
    .expect("every call ended");
    for (what, (out, took), max) in [
        ("add, body dripping", &a, bound),
        ("add, head dripping", &b, bound),
        ("members, body dripping", &c, bound),
        (
            "health (2 s budget), head dripping",
            &d,
            Duration::from_secs(4),
        ),
        (
            "two reports (1 s timeout), body dripping",
            &e,
            Duration::from_secs(3),
        ),
        (
            "discover (1 s budget), head dripping",
            &f,
            Duration::from_secs(3),
        ),
    ] {
        println!("{what}: {took:?}: {out}");
        assert!(*took < max, "{what}: took {took:?}: {out}");
        if what.starts_with("two reports") {
            assert_eq!(out, "2 spooled", "{what}");
        } else {
            assert!(out.contains("timed out"), "{what}: {out}");
        }
    }
    assert!(a.0.starts_with("Retry"), "{}", a.0);
    assert!(b.0.starts_with("Retry"), "{}", b.0);
    assert!(c.0.starts_with("Err"), "{}", c.0);
    assert!(d.0.starts_with("Err"), "{}", d.0);
    assert!(f.0.starts_with("Timeout"), "{}", f.0);
    assert_eq!(
        body.hits()
            .iter()
            .filter(|h| *h == "POST /v1/reports")
            .count(),
        1,
        "after the first timeout the collector is not tried again this run"
    );
}

// ---------------------------------------------------------------------------------------------
// 409.
// ---------------------------------------------------------------------------------------------

/// A 409 naming a member with another Raft address is a conflict (retrying cannot fix it, so
/// the join ends at once instead of at its deadline); a 409 with this node's address, or with
/// no member in it, is "already a member".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_409_are_conflicts_or_already_a_member() {
    let t = tls();
    let member = |raft: &str| {
        format!(
            "{{\"error\": \"exists\", \"member\": {{\"id\": \"node04\", \"raft_addr\": \"{raft}\", \"status\": \"healthy\", \"role\": \"follower\"}}}}"
        )
    };
    let other = member("10.0.200.99:2380");
    let srv = Scripted::start(t.server(), move |_, _, _| answer(409, &[], &other)).await;
    match add_via(&t.http, &srv.url(), &me()).await {
        AddOutcome::Conflict(m) => assert!(
            m.contains("already a member with raft_addr 10.0.200.99:2380")
                && m.contains("10.0.200.13:2380"),
            "{m}"
        ),
        o => panic!("want a conflict, got {o:?}"),
    }
    // Through a redirect first: still the conflict, from the leader it came from.
    let to = srv.url.clone();
    let follower = Scripted::start(t.server(), move |_, _, _| {
        answer(307, &[&format!("location: {to}/admin/member/add")], "")
    })
    .await;
    assert!(matches!(
        add_via(&t.http, &follower.url(), &me()).await,
        AddOutcome::Conflict(_)
    ));

    let same = member("10.0.200.13:2380");
    for (what, body) in [
        ("the same Raft address", same),
        ("no member", "{\"error\": \"exists\"}".to_string()),
        ("not JSON", "<html>conflict</html>".to_string()),
    ] {
        let srv = Scripted::start(t.server(), move |_, _, _| answer(409, &[], &body)).await;
        match add_via(&t.http, &srv.url(), &me()).await {
            AddOutcome::AlreadyMember(at) => assert_eq!(at, srv.url(), "{what}"),
            o => panic!("{what}: want already-a-member, got {o:?}"),
        }
    }

    // The whole join ends with the conflict at once, long before its 30 s deadline.
    let other = member("10.0.200.99:2380");
    let leader = Scripted::start(t.server(), move |m, _, _| match m {
        "GET" => answer(200, &[], "{\"members\": []}"),
        _ => answer(409, &[], &other),
    })
    .await;
    let plan = JoinPlan {
        service: "chainfire".into(),
        local_url: leader.url(),
        join_urls: vec![leader.url()],
        raft_addr: me().raft_addr,
        bootstrap_peers: vec![],
    };
    let joiner = Joiner {
        http: &t.http,
        node_id: "node04",
        plan: &plan,
        deadline: tokio::time::Instant::now() + Duration::from_secs(30),
        timeout_secs: 30,
    };
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(10), joiner.join())
        .await
        .expect("a conflict ends the join");
    assert!(matches!(r, Err(JoinError::Conflict(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(leader.hits(), [MEMBERS, ADD]);

    // The collector answering 409 to a report: refused, not resent and not spooled (a 4xx
    // says resending cannot help); the collector still counts as up for the next report.
    let collector = Scripted::start(t.server(), |_, _, _| {
        answer(409, &[], "{\"error\": \"conflict\"}")
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let reporter = Reporter::new(t.http.clone(), &collector.url(), dir.path(), "chainfire");
    reporter.send(a_report("one")).await;
    reporter.send(a_report("two")).await;
    assert_eq!(collector.hits(), ["POST /v1/reports", "POST /v1/reports"]);
    assert!(spooled(dir.path()).is_empty());
}
