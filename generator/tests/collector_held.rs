//! What held when the collector was attacked (the issue's list), each shown over real sockets on
//! 127.0.0.1 with certificates from plasma-pki, where the existing tests covered it only
//! in-process or not at all:
//!
//! 1. mTLS: client certificates the cluster CA does not vouch for *now and for client use*
//!    (expired, not yet valid, serverAuth only, another CA, a certificate without its key) fail
//!    the handshake, and no request of theirs is ever stored; node and viewer certificates get
//!    403 for every operator action, and 403 reporting for another node.
//! 2. Size and schema limits on the mTLS listener: a 10 GiB Content-Length is refused before
//!    any body byte, a chunked body over 64 KiB is cut off, an over-long message is 422.
//! 3. Hostile file names on the boot listener: JSON errors, never a netboot script. (Requests
//!    the HTTP parser refuses before any route runs, i.e. control bytes, raw non-ASCII, a
//!    target over 64 KiB, get hyper's empty 400 / 414: no script, but no JSON either.)
//! 4. SIGKILL in the middle of concurrent traffic: every acknowledged report is there after the
//!    restart, three times over on the same database.
//!
//! Every network step is bounded by a timeout.

mod collector_support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plasma_pki::{Ca, KeyAlgorithm, LeafSpec, LeafUsage};
use plasma_wire::Phase;
use plasmagen::collector::Config;
use plasmagen::collector::view::NodeView;
use plasmagen::inventory::Inventory;
use plasmagen::render::pxe;
use reqwest::StatusCode;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use collector_support::{
    As, client, foreign_secrets, machine_report, report, runbook, runbook_copy, runbook_path,
    secrets_for, serve_boot, serve_tls, spawn_collector, state,
};

/// Bound of one request / handshake in these tests.
const STEP: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn addr_of(url: &str) -> SocketAddr {
    url.split("://")
        .nth(1)
        .expect("scheme")
        .parse()
        .expect("host:port")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("certificate PEM")
}

/// A certificate chain and a private key (PEM), not necessarily belonging together.
#[derive(Clone)]
struct Presented {
    cert: String,
    key: String,
}

impl Presented {
    fn files(cert: &Path, key: &Path) -> Presented {
        Presented {
            cert: read(cert),
            key: read(key),
        }
    }

    fn node(secrets: &Path, host: &str) -> Presented {
        let d = secrets.join(format!("nodes/{host}/etc/nixos/secrets"));
        Presented::files(
            &d.join(format!("{host}-cert.pem")),
            &d.join(format!("{host}-key.pem")),
        )
    }

    fn leaf(secrets: &Path, name: &str) -> Presented {
        Presented::files(
            &secrets.join(format!("{name}/{name}-cert.pem")),
            &secrets.join(format!("{name}/{name}-key.pem")),
        )
    }
}

/// A TLS client trusting only the cluster CA of `secrets`, presenting `who` (no certificate
/// when `None`). The key is not checked against the certificate: an attacker's client would
/// not check either.
fn connector(secrets: &Path, who: Option<&Presented>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(&read(&secrets.join("ca/ca-cert.pem"))) {
        roots.add(c).expect("CA");
    }
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut cfg = match who {
        None => builder.with_no_client_auth(),
        Some(p) => {
            let key = provider
                .key_provider
                .load_private_key(PrivateKeyDer::from_pem_slice(p.key.as_bytes()).expect("key"))
                .expect("usable key");
            let certified = CertifiedKey::new(certs(&p.cert), key);
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)))
        }
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(cfg))
}

fn loopback() -> ServerName<'static> {
    ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into())
}

/// An HTTP/1.1 answer read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The header block, lower-cased.
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not a JSON body ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn parse_answer(got: &[u8]) -> Option<Answer> {
    let end = got.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    let status = head.strip_prefix("http/1.1 ")?.get(..3)?.parse().ok()?;
    Some(Answer {
        status,
        head,
        body: got[end + 4..].to_vec(),
    })
}

/// Writes `request` (which says `Connection: close`) and reads until the peer closes. A write
/// error is ignored (the peer may answer before reading everything); a read error after some
/// bytes counts as the end (a TLS peer closing without close_notify).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    request: &[u8],
) -> Result<Vec<u8>, String> {
    let _ = s.write_all(request).await;
    let _ = s.flush().await;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if got.is_empty() => return Err(format!("read: {e}")),
            Err(_) => return Ok(got),
        }
    }
}

/// One request over a fresh TLS connection presenting `who`: the answer, or what failed
/// (the handshake, or the first read: TLS 1.3 clients learn of a refused certificate there).
async fn over_tls(addr: SocketAddr, tls: &TlsConnector, request: &[u8]) -> Result<Answer, String> {
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut s = tls
            .connect(loopback(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let got = exchange(&mut s, request).await?;
        parse_answer(&got)
            .ok_or_else(|| format!("no HTTP answer: {:?}", String::from_utf8_lossy(&got)))
    };
    tokio::time::timeout(STEP, attempt)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// One request over plain TCP.
async fn over_tcp(addr: SocketAddr, request: &[u8]) -> Answer {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        exchange(&mut s, request).await.expect("an answer")
    };
    let got = tokio::time::timeout(STEP, attempt)
        .await
        .expect("answered in time");
    parse_answer(&got)
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&got)))
}

fn post_request(path: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn report_request(node: &str, message: &str) -> Vec<u8> {
    let r = report(node, "chainfire", Phase::Joining, message);
    post_request(
        "/v1/reports",
        "application/json",
        &serde_json::to_string(&r).unwrap(),
    )
}

/// A reqwest client trusting the cluster CA of `secrets`, presenting `cert`/`key`.
fn client_with(secrets: &Path, cert: &Path, key: &Path) -> reqwest::Client {
    let ca = std::fs::read(secrets.join("ca/ca-cert.pem")).expect("CA");
    let mut pem = std::fs::read(cert).expect("cert");
    pem.push(b'\n');
    pem.extend(std::fs::read(key).expect("key"));
    reqwest::Client::builder()
        .no_proxy()
        .timeout(STEP)
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).expect("CA PEM"))
        .identity(reqwest::Identity::from_pem(&pem).expect("identity"))
        .build()
        .expect("client")
}

fn viewer(secrets: &Path) -> reqwest::Client {
    client_with(
        secrets,
        &secrets.join("viewer/viewer-cert.pem"),
        &secrets.join("viewer/viewer-key.pem"),
    )
}

/// `node`'s history as the operator reads it, oldest first.
async fn history(secrets: &Path, base: &str, node: &str) -> Vec<(String, String)> {
    let resp = client(secrets, secrets, As::Operator)
        .get(format!("{base}/v1/nodes/{node}?limit=1000"))
        .send()
        .await
        .expect("node read");
    assert_eq!(resp.status(), StatusCode::OK);
    let view: NodeView = resp.json().await.expect("node view");
    view.history
        .expect("history")
        .into_iter()
        .map(|e| (e.kind, e.message))
        .collect()
}

/// The cluster CA of `secrets`, able to issue.
fn cluster_ca(secrets: &Path) -> Ca {
    Ca::from_pem(
        &read(&secrets.join("ca/ca-cert.pem")),
        &read(&secrets.join("ca/ca-key.pem")),
    )
    .expect("cluster CA")
}

/// node01's certificate as the generator issues it, with `usage`, issued as if at `now`.
fn node01_cert(ca: &Ca, inv: &Inventory, usage: LeafUsage, now: OffsetDateTime) -> Presented {
    let n = inv.node("node01").unwrap();
    let mut spec = LeafSpec::node(
        &n.hostname,
        &inv.fqdn(n),
        &[IpAddr::V4(n.production_ip), IpAddr::V4(n.provisioning_ip)],
        30,
    );
    spec.usage = usage;
    let issued = ca
        .issue_at(&spec, None, KeyAlgorithm::EcdsaP256, now)
        .expect("issue");
    Presented {
        cert: issued.cert_pem,
        key: issued.key_pem,
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Authentication and authorisation.
// ---------------------------------------------------------------------------------------------

/// Each refused certificate fails the TLS handshake with the alert that names the reason, and
/// the report it carried is never stored; the same request with node01's real certificate is
/// answered 200, so the harness itself is not what fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_not_valid_now_for_client_use_fail_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let inv = runbook();
    let secrets = secrets_for(&inv, dir.path());
    let foreign = foreign_secrets(&inv, dir.path());
    let base = serve_tls(state(inv.clone(), dir.path(), Config::default()), &secrets).await;
    let addr = addr_of(&base);
    let ca = cluster_ca(&secrets);
    let now = OffsetDateTime::now_utc();
    let real = Presented::node(&secrets, "node01");
    let operator = Presented::leaf(&secrets, "operator");
    let another_key = Presented::node(&secrets, "node02").key;

    let expired_operator = {
        let issued = ca
            .issue_at(
                &LeafSpec::operator(30),
                None,
                KeyAlgorithm::EcdsaP256,
                now - time::Duration::days(400),
            )
            .unwrap();
        Presented {
            cert: issued.cert_pem,
            key: issued.key_pem,
        }
    };
    // (what, presented, the alert the collector must send)
    let cases: Vec<(&str, Presented, &[&str])> = vec![
        (
            "expired (ended 370 days ago)",
            node01_cert(
                &ca,
                &inv,
                LeafUsage::ServerAndClient,
                now - time::Duration::days(400),
            ),
            &["CertificateExpired"],
        ),
        (
            "not yet valid (starts in 30 days)",
            node01_cert(
                &ca,
                &inv,
                LeafUsage::ServerAndClient,
                now + time::Duration::days(30),
            ),
            &["CertificateExpired"],
        ),
        (
            "serverAuth only, no clientAuth EKU",
            node01_cert(&ca, &inv, LeafUsage::Server, now),
            &["UnsupportedCertificate"],
        ),
        (
            "the pxe-server's own certificate (serverAuth only)",
            Presented::leaf(&secrets, "pxe-server"),
            &["UnsupportedCertificate"],
        ),
        (
            "the expired operator certificate",
            expired_operator,
            &["CertificateExpired"],
        ),
        (
            "node01 of another CA with the same names",
            Presented::node(&foreign, "node01"),
            &["DecryptError", "UnknownCA", "BadCertificate"],
        ),
        (
            "the operator certificate of another CA",
            Presented::leaf(&foreign, "operator"),
            &["DecryptError", "UnknownCA", "BadCertificate"],
        ),
        (
            "node01's real certificate without its key (node02's key)",
            Presented {
                cert: real.cert.clone(),
                key: another_key,
            },
            &["DecryptError", "BadSignature", "HandshakeFailure"],
        ),
        (
            "the CA certificate itself as a client certificate",
            Presented {
                cert: read(&secrets.join("ca/ca-cert.pem")),
                key: read(&secrets.join("ca/ca-key.pem")),
            },
            &[
                "BadCertificate",
                "CertificateUnknown",
                "UnsupportedCertificate",
            ],
        ),
    ];
    for (what, presented, alerts) in &cases {
        let res = over_tls(
            addr,
            &connector(&secrets, Some(presented)),
            &report_request("node01", what),
        )
        .await;
        let err = match res {
            Err(e) => e,
            Ok(a) => panic!("{what}: answered {} {}", a.status, a.text()),
        };
        println!("{what}: refused: {err}");
        assert!(
            alerts.iter().any(|a| err.contains(a)),
            "{what}: want one of {alerts:?}, got {err}"
        );
    }
    // The operator certificate is refused a report (403), so it is still valid: the expired one
    // above was refused for its dates alone.
    let a = over_tls(
        addr,
        &connector(&secrets, Some(&operator)),
        &report_request("node01", "op"),
    )
    .await
    .expect("the operator's handshake");
    assert_eq!(a.status, 403, "{}", a.text());
    // The control: the same request with node01's certificate is stored.
    let a = over_tls(
        addr,
        &connector(&secrets, Some(&real)),
        &report_request("node01", "real"),
    )
    .await
    .expect("node01's handshake");
    assert_eq!(a.status, 200, "{}", a.text());
    // Without any certificate the handshake completes and the HTTP layer says 401.
    let a = over_tls(
        addr,
        &connector(&secrets, None),
        &report_request("node01", "nobody"),
    )
    .await
    .expect("a handshake without a certificate");
    assert_eq!(
        (a.status, a.json()["error"].clone()),
        (401, json!("no_certificate"))
    );

    let h = history(&secrets, &base, "node01").await;
    assert_eq!(
        h,
        [("report".to_string(), "real".to_string())],
        "only the real report"
    );
}

async fn post_as(cl: &reqwest::Client, url: &str, body: &Value) -> (StatusCode, Value) {
    let resp = cl.post(url).json(body).send().await.expect("answered");
    let st = resp.status();
    (st, resp.json().await.unwrap_or(Value::Null))
}

/// Every operator action over the mTLS listener: no certificate 401, node certificates (its
/// own node or another) and the read-only viewer 403 `not_operator`; nothing changed (history,
/// boot script, inventory file). The operator then gets 200 for each: the routes are real.
/// And every node certificate reporting as another node, the operator's and the viewer's
/// reporting at all: 403 `identity_mismatch`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_operator_certificate_performs_operator_actions_over_mtls() {
    let dir = tempfile::tempdir().unwrap();
    let (inv_path, inv) = runbook_copy(dir.path());
    let secrets = secrets_for(&inv, dir.path());
    let original = read(&inv_path);
    let s = state(inv.clone(), dir.path(), Config::default());
    let base = serve_tls(s.clone(), &secrets).await;
    let boot = serve_boot(s).await;
    let mac = "52:54:00:aa:bb:cc";
    let (st, v) = post_as(
        &client(&secrets, &secrets, As::Nobody),
        &format!("{base}/v1/discover"),
        &serde_json::to_value(machine_report(mac)).unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let n1 = inv.node("node01").unwrap();
    let netboot = pxe::netboot_script(&inv, n1).unwrap();
    let boot_url = format!("{boot}/boot/{}.ipxe", n1.mac.dashed());
    let plain = reqwest::Client::builder()
        .no_proxy()
        .timeout(STEP)
        .build()
        .unwrap();
    let boot_script = || async {
        plain
            .get(&boot_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };

    let actions: Vec<(String, Value)> = vec![
        (format!("{base}/v1/nodes/node01/installed"), json!({})),
        (format!("{base}/v1/nodes/node01/reprovision"), json!({})),
        (format!("{base}/v1/nodes/node02/installed"), json!({})),
        (
            format!("{base}/v1/nodes/node01/provision"),
            json!({"step": "install", "ok": true, "message": "nixos-anywhere"}),
        ),
        (
            format!("{base}/v1/discovered/{mac}/enlist"),
            json!({"role": "worker"}),
        ),
    ];
    let callers: Vec<(&str, reqwest::Client, StatusCode, &str)> = vec![
        (
            "no certificate",
            client(&secrets, &secrets, As::Nobody),
            StatusCode::UNAUTHORIZED,
            "no_certificate",
        ),
        (
            "node01 (its own node)",
            client(&secrets, &secrets, As::Node("node01")),
            StatusCode::FORBIDDEN,
            "not_operator",
        ),
        (
            "node02",
            client(&secrets, &secrets, As::Node("node02")),
            StatusCode::FORBIDDEN,
            "not_operator",
        ),
        (
            "viewer",
            viewer(&secrets),
            StatusCode::FORBIDDEN,
            "not_operator",
        ),
    ];
    for (who, cl, status, code) in &callers {
        for (url, body) in &actions {
            let (st, v) = post_as(cl, url, body).await;
            assert_eq!(
                (st, v["error"].as_str()),
                (*status, Some(*code)),
                "{who} POST {url}: {v}"
            );
        }
    }
    // Nothing happened.
    assert_eq!(read(&inv_path), original, "the inventory file was edited");
    assert!(history(&secrets, &base, "node01").await.is_empty());
    assert!(history(&secrets, &base, "node02").await.is_empty());
    assert_eq!(boot_script().await, netboot);

    // Reporting for another node: 403 for every node certificate, and for the operator's and
    // the viewer's; 401 without one.
    let hosts: Vec<String> = inv.nodes.iter().map(|n| n.hostname.clone()).collect();
    let url = format!("{base}/v1/reports");
    for (i, me) in hosts.iter().enumerate() {
        let other = &hosts[(i + 1) % hosts.len()];
        let r =
            serde_json::to_value(report(other, "chainfire", Phase::Joined, "not mine")).unwrap();
        let (st, v) = post_as(&client(&secrets, &secrets, As::Node(me)), &url, &r).await;
        assert_eq!(
            (st, v["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("identity_mismatch")),
            "{me} reporting as {other}: {v}"
        );
    }
    let r = serde_json::to_value(report("node03", "chainfire", Phase::Joined, "x")).unwrap();
    for (who, cl, status, code) in [
        (
            "operator",
            client(&secrets, &secrets, As::Operator),
            StatusCode::FORBIDDEN,
            "identity_mismatch",
        ),
        (
            "viewer",
            viewer(&secrets),
            StatusCode::FORBIDDEN,
            "identity_mismatch",
        ),
        (
            "nobody",
            client(&secrets, &secrets, As::Nobody),
            StatusCode::UNAUTHORIZED,
            "no_certificate",
        ),
    ] {
        let (st, v) = post_as(&cl, &url, &r).await;
        assert_eq!(
            (st, v["error"].as_str()),
            (status, Some(code)),
            "{who}: {v}"
        );
    }
    for h in &hosts {
        assert!(history(&secrets, &base, h).await.is_empty(), "{h}");
    }

    // The operator may do each of them.
    let op = client(&secrets, &secrets, As::Operator);
    for (url, body) in &actions {
        let (st, v) = post_as(&op, url, body).await;
        assert_eq!(st, StatusCode::OK, "operator POST {url}: {v}");
    }
    assert_ne!(
        read(&inv_path),
        original,
        "the operator's enlist edits the file"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Size and schema limits on the mTLS listener.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_and_schema_limits_hold_on_the_mtls_listener() {
    let dir = tempfile::tempdir().unwrap();
    let inv = runbook();
    let secrets = secrets_for(&inv, dir.path());
    let base = serve_tls(state(inv, dir.path(), Config::default()), &secrets).await;
    let addr = addr_of(&base);
    let node01 = Presented::node(&secrets, "node01");
    let tls = connector(&secrets, Some(&node01));
    let cl = client(&secrets, &secrets, As::Node("node01"));
    let url = format!("{base}/v1/reports");
    let good = serde_json::to_value(report("node01", "chainfire", Phase::Joining, "m")).unwrap();
    let with = |k: &str, v: Value| {
        let mut r = good.clone();
        r[k] = v;
        r.to_string()
    };

    // (what, content type, body, status, error code)
    let cases: Vec<(&str, Option<&str>, String, u16, &str)> = vec![
        (
            "text/plain",
            Some("text/plain"),
            good.to_string(),
            415,
            "unsupported_media_type",
        ),
        (
            "form encoded",
            Some("application/x-www-form-urlencoded"),
            good.to_string(),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            None,
            good.to_string(),
            415,
            "unsupported_media_type",
        ),
        (
            "malformed JSON",
            Some("application/json"),
            "{\"node_id\": \"node01\",".into(),
            400,
            "malformed_json",
        ),
        (
            "a JSON array",
            Some("application/json"),
            "[]".into(),
            422,
            "invalid_body",
        ),
        (
            "an unknown field",
            Some("application/json"),
            with("admin", json!(true)),
            422,
            "invalid_body",
        ),
        (
            "an unknown phase",
            Some("application/json"),
            with("phase", json!("pwned")),
            422,
            "invalid_body",
        ),
        (
            "a number for the message",
            Some("application/json"),
            with("message", json!(5)),
            422,
            "invalid_body",
        ),
        (
            "an unknown service",
            Some("application/json"),
            with("service", json!("sshd")),
            422,
            "invalid_report",
        ),
        (
            "a timestamp that is not RFC 3339",
            Some("application/json"),
            with("at", json!("now")),
            422,
            "invalid_report",
        ),
        (
            "a message of 8 KiB + 1 byte",
            Some("application/json"),
            with("message", json!("x".repeat(8 * 1024 + 1))),
            422,
            "invalid_report",
        ),
        (
            "an installation id that is not 32 hex digits",
            Some("application/json"),
            with("installation", json!("../../etc/machine-id")),
            422,
            "invalid_report",
        ),
    ];
    for (what, ct, body, status, code) in cases {
        let mut req = cl.post(&url).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.expect("answered");
        let st = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (st, v["error"].as_str()),
            (status, Some(code)),
            "{what}: {v}"
        );
        assert!(v["message"].is_string(), "{what}: {v}");
    }

    // A 70 KiB body: 413. Sent raw: the collector answers without reading the body, so a
    // client still writing it may see the connection close under it (reqwest then reports a
    // broken pipe instead of the answer); the answer is there to read.
    let big = with("message", json!("x".repeat(70 * 1024)));
    let a = over_tls(
        addr,
        &tls,
        &post_request("/v1/reports", "application/json", &big),
    )
    .await
    .expect("an answer");
    assert_eq!(
        (a.status, a.json()["error"].clone()),
        (413, json!("body_too_large"))
    );
    // A 10 GiB Content-Length and no body: refused at once, before any body byte.
    let t = Instant::now();
    let head = b"POST /v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 10737418240\r\nConnection: close\r\n\r\n";
    let a = over_tls(addr, &tls, head).await.expect("an answer");
    assert_eq!(
        (a.status, a.json()["error"].clone()),
        (413, json!("body_too_large"))
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // Chunked, no Content-Length, 80 KiB: cut off at 64 KiB.
    let mut chunked = b"POST /v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..20 {
        chunked.extend_from_slice(b"1000\r\n");
        chunked.extend_from_slice(&[b' '; 4096]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let a = over_tls(addr, &tls, &chunked).await.expect("an answer");
    assert_eq!(
        (a.status, a.json()["error"].clone()),
        (413, json!("body_too_large"))
    );

    // Exactly 8 KiB of message is stored: the limit is the documented one, not lower.
    let (st, v) = post_as(
        &cl,
        &url,
        &serde_json::from_str(&with("message", json!("y".repeat(8 * 1024)))).unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // Discovery reports (no certificate needed) have their own limits.
    let anyone = client(&secrets, &secrets, As::Nobody);
    let durl = format!("{base}/v1/discover");
    let mut long_name = serde_json::to_value(machine_report("52:54:00:aa:bb:01")).unwrap();
    long_name["cpu"]["model"] = json!("c".repeat(513));
    let mut many_nics = serde_json::to_value(machine_report("52:54:00:aa:bb:02")).unwrap();
    let nic = many_nics["nics"][0].clone();
    many_nics["nics"] = json!(vec![nic; 65]);
    let mut multicast = serde_json::to_value(machine_report("52:54:00:aa:bb:03")).unwrap();
    multicast["primary_mac"] = json!("ff:ff:ff:ff:ff:ff");
    for (what, body) in [
        ("a 513-byte CPU model", long_name),
        ("65 NICs", many_nics),
        ("a broadcast primary MAC", multicast),
    ] {
        let (st, v) = post_as(&anyone, &durl, &body).await;
        assert_eq!(
            (st, v["error"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_discover")),
            "{what}: {v}"
        );
    }
    // Provisioning steps: a message over 1 KiB.
    let op = client(&secrets, &secrets, As::Operator);
    let (st, v) = post_as(
        &op,
        &format!("{base}/v1/nodes/node01/provision"),
        &json!({"step": "install", "ok": true, "message": "z".repeat(1025)}),
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_step")),
        "{v}"
    );

    // Only the 8 KiB report was stored; the collector still serves.
    let h = history(&secrets, &base, "node01").await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0].1.len(), 8 * 1024);
}

// ---------------------------------------------------------------------------------------------
// 3. Hostile MACs on the boot listener.
// ---------------------------------------------------------------------------------------------

fn boot_get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: 10.0.100.1\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Raw requests (no client normalises the path): every hostile name that reaches the router
/// gets a JSON error, never a script; valid MACs of no node get the discovery script, never a
/// node's netboot script; what the HTTP parser refuses gets its empty 400 / 414; the listener
/// keeps serving node01 its own script throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_boot_file_names_get_json_errors_and_never_a_netboot_script() {
    let dir = tempfile::tempdir().unwrap();
    let inv = runbook();
    let boot = serve_boot(state(inv.clone(), dir.path(), Config::default())).await;
    let addr = addr_of(&boot);
    let node_scripts: Vec<String> = inv
        .nodes
        .iter()
        .flat_map(|n| {
            [
                pxe::netboot_script(&inv, n).unwrap(),
                pxe::local_boot_script(n).unwrap(),
            ]
        })
        .collect();
    let discovery = pxe::discovery_script(&inv).unwrap();
    let n1 = inv.node("node01").unwrap();
    let n1_script = pxe::netboot_script(&inv, n1).unwrap();
    let n1_get = boot_get(&format!("/boot/{}.ipxe", n1.mac.dashed()));

    let m = "52-54-00-12-34-56"; // node01
    let long_mac = m.repeat(1000); // 17 KB
    let cases: Vec<String> = vec![
        "/boot/not-a-mac.ipxe".into(),
        format!("/boot/{m}"),
        format!("/boot/{m}.ipxe.ipxe"),
        format!("/boot/{m}.txt"),
        format!("/boot/{m}x.ipxe"),
        format!("/boot/x{m}.ipxe"),
        format!("/boot/%20{m}.ipxe"),
        format!("/boot/{m}%20.ipxe"),
        format!("/boot/{m}%00.ipxe"),
        format!("/boot/%00{m}.ipxe"),
        format!("/boot/{m}%0d%0aX-Injected:%20yes.ipxe"),
        format!("/boot/%E2%80%AE{m}.ipxe"),
        format!("/boot/{m}-78.ipxe"),
        "/boot/52-54-00-12-34-5.ipxe".into(),
        "/boot/52-54-00-12-34-567.ipxe".into(),
        "/boot/525400123456.ipxe".into(),
        "/boot/5254.0012.3456.ipxe".into(),
        "/boot/52_54_00_12_34_56.ipxe".into(),
        "/boot/+2-54-00-12-34-56.ipxe".into(),
        "/boot/%EF%BC%95%EF%BC%92-54-00-12-34-56.ipxe".into(),
        "/boot/ff-ff-ff-ff-ff-ff.ipxe".into(),
        "/boot/01-00-5e-00-00-01.ipxe".into(),
        "/boot/%ff%fe.ipxe".into(),
        "/boot/%C0%AE%C0%AE%C0%AF.ipxe".into(),
        "/boot/%3Cscript%3Ealert(1)%3C%2Fscript%3E.ipxe".into(),
        "/boot/%23!ipxe%0Achain%20http%3A%2F%2Fevil%2Fx.ipxe".into(),
        "/boot/..%2F..%2Fetc%2Fpasswd.ipxe".into(),
        "/boot/%2e%2e%2f%2e%2e%2fetc%2fpasswd".into(),
        "/boot/%252e%252e%252f52-54-00-12-34-56.ipxe".into(),
        format!("/boot/..%2F{m}.ipxe"),
        "/boot/../../etc/passwd".into(),
        format!("/boot/../boot/{m}.ipxe/.."),
        format!("/boot/{m}.ipxe/extra"),
        format!("/boot//{m}.ipxe"),
        "/boot/".into(),
        "/boot".into(),
        format!("/BOOT/{m}.ipxe"),
        format!("/v1/nodes/{m}.ipxe"),
        format!("/boot/{}.ipxe", "a".repeat(4096)),
        format!("/boot/{long_mac}.ipxe"),
        format!("/boot/{}.ipxe", "9".repeat(60 * 1024)),
    ];
    for target in &cases {
        let a = over_tcp(addr, &boot_get(target)).await;
        let shown = if target.len() > 80 {
            format!("{}... ({} bytes)", &target[..80], target.len())
        } else {
            target.clone()
        };
        assert!(
            (400..500).contains(&a.status),
            "{shown}: {} {}",
            a.status,
            a.text()
        );
        assert!(
            a.head.contains("content-type: application/json"),
            "{shown}: {}",
            a.head
        );
        let v = a.json();
        assert!(
            v["error"].is_string() && v["message"].is_string(),
            "{shown}: {v}"
        );
        assert!(!a.text().starts_with("#!ipxe"), "{shown}");
        assert!(
            !node_scripts.contains(&a.text()),
            "{shown}: a node's script"
        );
        assert!(!a.head.contains("x-injected"), "{shown}: {}", a.head);
    }

    // Valid MACs of no node: discovery, never a node's script.
    for mac in [
        "00-00-00-00-00-00",
        "02-00-00-00-00-01",
        "52-54-00-12-34-5b",
        "52-54-00-12-35-56",
        "AA-BB-CC-DD-EE-FE",
    ] {
        let a = over_tcp(addr, &boot_get(&format!("/boot/{mac}.ipxe"))).await;
        assert_eq!(a.status, 200, "{mac}: {}", a.text());
        assert_eq!(a.text(), discovery, "{mac}");
        assert!(!node_scripts.contains(&a.text()), "{mac}");
    }

    // Bytes the HTTP parser itself refuses in a request target (control characters, raw
    // non-ASCII, a space): 400 before any route runs, still no script.
    for raw in [
        &b"GET /boot/\x01.ipxe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
        &b"GET /boot/\xff\xfe.ipxe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
        &b"GET /boot/52-54-00-12-34-56 .ipxe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
        &b"GET /boot/52-54-00-12-34-56.ipxe\r\nHTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
    ] {
        let a = over_tcp(addr, raw).await;
        let shown = String::from_utf8_lossy(raw);
        assert_eq!(a.status, 400, "{shown:?}: {}", a.text());
        // hyper's own answer: no body at all (so not JSON either), and never a script.
        assert!(a.body.is_empty(), "{shown:?}: {}", a.text());
        assert!(
            a.head.contains("connection: close"),
            "{shown:?}: {}",
            a.head
        );
    }

    // Beyond the HTTP parser's 64 KiB request-target limit: refused by it (414, empty body:
    // hyper answers before any route runs, so not JSON), still no script.
    let a = over_tcp(
        addr,
        &boot_get(&format!("/boot/{}.ipxe", "7".repeat(70 * 1024))),
    )
    .await;
    assert_eq!(a.status, 414, "{}", a.text());
    assert!(a.body.is_empty(), "{}", a.text());

    // Still serving node01 its own script.
    let a = over_tcp(addr, &n1_get).await;
    assert_eq!((a.status, a.text()), (200, n1_script));
}

// ---------------------------------------------------------------------------------------------
// 4. SIGKILL in the middle of traffic.
// ---------------------------------------------------------------------------------------------

/// What one sender saw: the messages acknowledged with 200, and the one whose request was
/// cut off by the kill (it may or may not have been committed).
struct Sent {
    acked: Vec<String>,
    cut_off: Option<String>,
}

/// Three rounds on one database: a collector process, five nodes sending reports
/// concurrently, SIGKILL while they are still sending. After the last restart every node's
/// history holds, per round, exactly its acknowledged reports in order, plus at most the one
/// request the kill cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_reports_survive_sigkill_in_the_middle_of_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let inv = runbook();
    let secrets = secrets_for(&inv, dir.path());
    let db = dir.path().join("c.db");
    let inv_path: PathBuf = runbook_path();
    let args = [
        "--db",
        db.to_str().unwrap(),
        "--inventory",
        inv_path.to_str().unwrap(),
        "--secrets",
        secrets.to_str().unwrap(),
    ];
    let hosts: Vec<String> = inv.nodes.iter().map(|n| n.hostname.clone()).collect();
    const ROUNDS: usize = 3;
    // At most 3 x 60 (+ cut-offs) reports per node even if one sender got them all: under the
    // collector's default history retention (200 per node and service), so every one is kept.
    const KILL_AFTER: usize = 60;
    let mut sent: BTreeMap<(usize, String), Sent> = BTreeMap::new();
    for round in 0..ROUNDS {
        let mut c = spawn_collector(&args);
        let acks = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for h in &hosts {
            let cl = client(&secrets, &secrets, As::Node(h));
            let url = format!("{}/v1/reports", c.api);
            let (h, acks) = (h.clone(), acks.clone());
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0.. {
                    let msg = format!("round {round} report {i}");
                    let r = report(&h, "chainfire", Phase::Joining, &msg);
                    match cl.post(&url).json(&r).send().await {
                        Ok(resp) => {
                            assert_eq!(resp.status(), StatusCode::OK, "{h}: {msg}");
                            acked.push(msg);
                            acks.fetch_add(1, Ordering::SeqCst);
                            let _ = resp.bytes().await;
                        }
                        Err(_) => {
                            return (
                                h,
                                Sent {
                                    acked,
                                    cut_off: Some(msg),
                                },
                            );
                        }
                    }
                }
                unreachable!()
            }));
        }
        let t = Instant::now();
        while acks.load(Ordering::SeqCst) < KILL_AFTER {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "round {round}: only {} reports acknowledged",
                acks.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        c.child.kill().unwrap();
        assert!(!c.child.wait().unwrap().success());
        drop(c);
        for task in tasks {
            let (h, s) = tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("every sender stops once the collector is gone")
                .unwrap();
            assert!(
                !s.acked.is_empty(),
                "round {round}: {h} got nothing through"
            );
            sent.insert((round, h), s);
        }
    }

    let c = spawn_collector(&args);
    let (mut total, mut committed_cut_offs) = (0, 0);
    for h in &hosts {
        let reports: Vec<String> = history(&secrets, &c.api, h)
            .await
            .into_iter()
            .filter(|(kind, _)| kind == "report")
            .map(|(_, m)| m)
            .collect();
        for round in 0..ROUNDS {
            let s = &sent[&(round, h.clone())];
            let prefix = format!("round {round} ");
            let got: Vec<&String> = reports.iter().filter(|m| m.starts_with(&prefix)).collect();
            let acked: Vec<&String> = s.acked.iter().collect();
            let mut with_cut = acked.clone();
            with_cut.extend(s.cut_off.iter());
            assert!(
                got == acked || got == with_cut,
                "{h} round {round}: {} acknowledged, {} stored; first missing: {:?}",
                acked.len(),
                got.len(),
                acked.iter().find(|m| !got.contains(m))
            );
            total += acked.len();
            committed_cut_offs += usize::from(got.len() > acked.len());
        }
    }
    println!(
        "{total} acknowledged reports over {ROUNDS} SIGKILLs, none lost; {committed_cut_offs} of {} cut-off requests were committed",
        ROUNDS * hosts.len()
    );
    assert!(total >= ROUNDS * KILL_AFTER);
}
