//! `plasma-agent discover` delivery: POST to a loopback HTTP server that answers with a
//! scripted sequence of statuses, recording every request it receives.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plasma_agent::discover::{
    self, Backoff, CollectorSource, DiscoverRun, PostConfig, PostError, RunError,
};
use plasma_wire::discover::{Cpu, DiscoverReport, Nic};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// Answers the i-th request with `statuses[i]`, then 200 forever.
async fn serve(listener: TcpListener, statuses: Vec<u16>) -> Arc<Mutex<Vec<Seen>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let index = log.lock().unwrap().len();
            let status = statuses.get(index).copied().unwrap_or(200);
            if let Some(req) = handle(stream, status).await {
                log.lock().unwrap().push(req);
            }
        }
    });
    seen
}

async fn handle<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, status: u16) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_owned();
    let mut content_length = 0usize;
    let mut content_type = None;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = v.trim().parse().ok()?,
                "content-type" => content_type = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    while buf.len() < header_end + content_length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[header_end..header_end + content_length].to_vec();
    let reason = format!("scripted {status}");
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reason}",
        reason.len()
    );
    stream.write_all(response.as_bytes()).await.ok()?;
    stream.shutdown().await.ok();
    Some(Seen {
        request_line,
        content_type,
        body,
    })
}

fn report() -> DiscoverReport {
    DiscoverReport {
        primary_mac: "52:54:00:12:34:56".into(),
        nics: vec![Nic {
            name: "eno1".into(),
            mac: "52:54:00:12:34:56".into(),
            speed_mbps: Some(1000),
            carrier: Some(true),
            driver: None,
        }],
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

const FAST: Backoff = Backoff {
    initial: Duration::from_millis(10),
    max: Duration::from_millis(40),
};

fn fast(timeout: Duration) -> PostConfig {
    PostConfig {
        timeout,
        backoff: FAST,
        ca_file: None,
    }
}

async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

#[tokio::test]
async fn retries_5xx_until_accepted() {
    let (l, url) = listener().await;
    let seen = serve(l, vec![503, 500, 201]).await;

    let delivered = discover::post_report(&url, &report(), &fast(Duration::from_secs(10)))
        .await
        .unwrap();

    assert_eq!(delivered.status, 201);
    assert_eq!(delivered.attempts, 3);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for req in &seen {
        assert_eq!(req.request_line, "POST /v1/discover HTTP/1.1");
        assert_eq!(req.content_type.as_deref(), Some("application/json"));
        let body: DiscoverReport = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body, report());
    }
}

#[tokio::test]
async fn client_error_is_not_retried() {
    let (l, url) = listener().await;
    let seen = serve(l, vec![422]).await;

    let err = discover::post_report(
        &format!("{url}/"),
        &report(),
        &fast(Duration::from_secs(10)),
    )
    .await
    .unwrap_err();

    match err {
        PostError::Rejected { status, ref body } => {
            assert_eq!(status, 422);
            assert_eq!(body, "scripted 422");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn gives_up_after_the_timeout() {
    let (l, url) = listener().await;
    let seen = serve(l, vec![503; 1000]).await;
    let timeout = Duration::from_millis(400);

    let started = std::time::Instant::now();
    let err = discover::post_report(&url, &report(), &fast(timeout))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();

    match err {
        PostError::Timeout { attempts, last, .. } => {
            assert!(attempts >= 3, "only {attempts} attempts");
            assert!(last.contains("503"), "last error: {last}");
            assert_eq!(attempts as usize, seen.lock().unwrap().len());
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[tokio::test]
async fn waits_for_a_collector_that_starts_late() {
    // Reserve a port, close it, and only listen there again after a while: the first attempts
    // see connection refused.
    let (l, url) = listener().await;
    let addr = l.local_addr().unwrap();
    drop(l);
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        serve(TcpListener::bind(addr).await.unwrap(), vec![]).await
    });

    let delivered = discover::post_report(&url, &report(), &fast(Duration::from_secs(10)))
        .await
        .unwrap();

    assert!(delivered.attempts >= 2, "attempts: {}", delivered.attempts);
    assert_eq!(late.await.unwrap().lock().unwrap().len(), 1);
}

fn minimal_tree(root: &Path, cmdline: &str) {
    let files = [
        ("sys/class/net/eth0/address", "52:54:00:aa:bb:cc\n"),
        ("sys/class/net/eth1/address", "52:54:00:aa:bb:cd\n"),
        ("sys/block/vda/size", "41943040\n"),
        ("proc/meminfo", "MemTotal: 2048000 kB\n"),
        (
            "proc/cpuinfo",
            "processor : 0\nmodel name : QEMU Virtual CPU\n",
        ),
        ("proc/cmdline", cmdline),
    ];
    for (rel, text) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::create_dir_all(root.join("sys/class/net/eth0/device")).unwrap();
    std::fs::create_dir_all(root.join("sys/class/net/eth1/device")).unwrap();
}

#[tokio::test]
async fn run_reads_collector_and_mac_from_cmdline() {
    let (l, url) = listener().await;
    let seen = serve(l, vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    minimal_tree(
        dir.path(),
        &format!("init=/x/init plasmacloud.collector={url} plasmacloud.mac=52:54:00:AA:BB:CD\n"),
    );

    let (sent, delivered) = discover::run(&DiscoverRun {
        root: dir.path().to_owned(),
        collector: CollectorSource::Cmdline,
        mac: None,
        post: fast(Duration::from_secs(10)),
    })
    .await
    .unwrap();

    assert_eq!(delivered.attempts, 1);
    assert_eq!(sent.primary_mac, "52:54:00:aa:bb:cd");
    assert_eq!(sent.disks.len(), 1);
    assert_eq!(sent.disks[0].size_bytes, 41943040 * 512);
    let received: DiscoverReport = serde_json::from_slice(&seen.lock().unwrap()[0].body).unwrap();
    assert_eq!(received, sent);
}

#[tokio::test]
async fn run_without_collector_on_cmdline_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    minimal_tree(dir.path(), "init=/x/init quiet\n");
    let err = discover::run(&DiscoverRun {
        root: dir.path().to_owned(),
        collector: CollectorSource::Cmdline,
        mac: None,
        post: fast(Duration::from_secs(1)),
    })
    .await
    .unwrap_err();
    assert!(matches!(err, RunError::NoCollector));
    assert_eq!(err.exit_code(), 2);
}

#[tokio::test]
async fn unreachable_collector_exits_tempfail() {
    let (l, url) = listener().await;
    drop(l);
    let dir = tempfile::tempdir().unwrap();
    minimal_tree(dir.path(), "quiet\n");
    let err = discover::run(&DiscoverRun {
        root: dir.path().to_owned(),
        collector: CollectorSource::Url(url),
        mac: None,
        post: fast(Duration::from_millis(200)),
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, RunError::Post(PostError::Timeout { .. })),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 75);
}

#[tokio::test]
async fn unreadable_ca_is_a_config_error_without_any_request() {
    let (l, url) = listener().await;
    let seen = serve(l, vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate\n").unwrap();
    let cfg = PostConfig {
        ca_file: Some(ca.clone()),
        ..fast(Duration::from_secs(1))
    };

    let err = discover::post_report(&url, &report(), &cfg)
        .await
        .unwrap_err();

    match &err {
        PostError::Ca { path, .. } => assert_eq!(path, &ca),
        other => panic!("expected a CA error, got {other:?}"),
    }
    assert_eq!(RunError::Post(err).exit_code(), 2);
    assert!(seen.lock().unwrap().is_empty());
}

/// A CA written to `dir/ca.pem` and a server config whose certificate (for 127.0.0.1) it signed.
fn tls_fixture(dir: &Path) -> (std::path::PathBuf, Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "discover test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    (ca_path, Arc::new(cfg))
}

/// Like [`serve`] over TLS; always answers 200. Counts handshakes that reached HTTP.
async fn serve_tls(listener: TcpListener, cfg: Arc<rustls::ServerConfig>) -> Arc<Mutex<Vec<Seen>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let Ok(tls) = acceptor.accept(stream).await else {
                continue;
            };
            if let Some(req) = handle(tls, 200).await {
                log.lock().unwrap().push(req);
            }
        }
    });
    seen
}

#[tokio::test]
async fn https_collector_is_trusted_through_the_given_ca_only() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_path, server_cfg) = tls_fixture(dir.path());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", l.local_addr().unwrap());
    let seen = serve_tls(l, server_cfg).await;

    // Without the site CA the certificate is not trusted: no request ever reaches HTTP.
    let err = discover::post_report(&url, &report(), &fast(Duration::from_millis(300)))
        .await
        .unwrap_err();
    match err {
        PostError::Timeout { last, .. } => {
            assert!(
                last.to_lowercase().contains("certificate"),
                "last error: {last}"
            )
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(seen.lock().unwrap().is_empty());

    let cfg = PostConfig {
        ca_file: Some(ca_path),
        ..fast(Duration::from_secs(10))
    };
    let delivered = discover::post_report(&url, &report(), &cfg).await.unwrap();
    assert_eq!(delivered.attempts, 1);
    let body: DiscoverReport = serde_json::from_slice(&seen.lock().unwrap()[0].body).unwrap();
    assert_eq!(body, report());
}
