//! Real TLS handshakes over 127.0.0.1 with rustls: the certificates work where they are used.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use plasma_pki::store::{NodeIdentity, StoreInput, apply};
use plasma_pki::{Ca, Issued, KeyAlgorithm, LeafSpec};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Explicit provider: no dependence on which rustls crypto features the workspace unifies.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn key(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn roots(ca_pem: &str) -> Arc<RootCertStore> {
    let mut r = RootCertStore::empty();
    for c in certs(ca_pem) {
        r.add(c).unwrap();
    }
    Arc::new(r)
}

struct Pair {
    cert: String,
    key: String,
}

impl From<&Issued> for Pair {
    fn from(i: &Issued) -> Self {
        Pair {
            cert: i.cert_pem.clone(),
            key: i.key_pem.clone(),
        }
    }
}

/// One handshake: a server on 127.0.0.1:0 presenting `server`, optionally requiring a client
/// certificate issued by `client_ca`; a client trusting only `trust`, verifying `name`,
/// optionally presenting `client`. Ok((server's view of the client CN, echoed bytes)) or the
/// first error of either side.
async fn handshake(
    server: &Pair,
    client_ca: Option<&str>,
    trust: &str,
    name: &str,
    client: Option<&Pair>,
) -> Result<Option<String>, String> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots(ca), provider())
                .build()
                .unwrap(),
        ),
        None => builder.with_no_client_auth(),
    };
    let server_cfg = builder
        .with_single_cert(certs(&server.cert), key(&server.key))
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server_cfg));
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor
            .accept(tcp)
            .await
            .map_err(|e| format!("server: {e}"))?;
        let peer_cn = tls.get_ref().1.peer_certificates().map(|c| {
            let (_, x) = x509_parser::parse_x509_certificate(&c[0]).unwrap();
            x.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        });
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf)
            .await
            .map_err(|e| format!("server read: {e}"))?;
        tls.write_all(&buf)
            .await
            .map_err(|e| format!("server write: {e}"))?;
        tls.shutdown().await.ok();
        Ok::<_, String>(peer_cn)
    });

    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(trust));
    let client_cfg = match client {
        Some(c) => builder
            .with_client_auth_cert(certs(&c.cert), key(&c.key))
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = TlsConnector::from(Arc::new(client_cfg));
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let client_side = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut tls = connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("client: {e}"))?;
        tls.write_all(b"ping")
            .await
            .map_err(|e| format!("client write: {e}"))?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf)
            .await
            .map_err(|e| format!("client read: {e}"))?;
        assert_eq!(&buf, b"ping");
        Ok::<_, String>(())
    };
    let outcome = tokio::time::timeout(Duration::from_secs(20), client_side)
        .await
        .map_err(|_| "client timed out".to_string())?;
    if let Err(e) = outcome {
        server_task.abort();
        return Err(e);
    }
    tokio::time::timeout(Duration::from_secs(20), server_task)
        .await
        .map_err(|_| "server timed out".to_string())?
        .unwrap()
}

/// A cluster laid out by the store, read back from disk as a node would.
struct Cluster {
    _tmp: tempfile::TempDir,
    ca: String,
    node01: Pair,
    node02: Pair,
    pxe: Pair,
    operator: Pair,
}

fn cluster() -> Cluster {
    let tmp = tempfile::tempdir().unwrap();
    let secrets = secrets_dir(&tmp);
    apply(&secrets, &input(), OffsetDateTime::now_utc()).unwrap();
    let pair = |c: std::path::PathBuf, k: std::path::PathBuf| Pair {
        cert: read(c),
        key: read(k),
    };
    Cluster {
        // The node's own copy of the CA: what services on the node trust.
        ca: read(secrets.join("nodes/node01/etc/nixos/secrets/ca-cert.pem")),
        node01: pair(node_cert(&secrets, "node01"), node_key(&secrets, "node01")),
        node02: pair(node_cert(&secrets, "node02"), node_key(&secrets, "node02")),
        pxe: pair(
            secrets.join("pxe-server/pxe-server-cert.pem"),
            secrets.join("pxe-server/pxe-server-key.pem"),
        ),
        operator: pair(
            secrets.join("operator/operator-cert.pem"),
            secrets.join("operator/operator-key.pem"),
        ),
        _tmp: tmp,
    }
}

#[tokio::test]
async fn node_cert_is_accepted_for_fqdn_production_ip_and_localhost() {
    let c = cluster();
    // input(): node01 has production 10.0.200.11 and provisioning 10.0.100.51.
    for name in [
        "node01.example.com",
        "node01",
        "10.0.200.11",
        "10.0.100.51",
        "localhost",
        "127.0.0.1",
        "::1",
    ] {
        let r = handshake(&c.node01, None, &c.ca, name, None).await;
        assert!(r.is_ok(), "handshake for {name}: {r:?}");
    }
}

#[tokio::test]
async fn node_cert_is_rejected_for_names_not_in_its_sans() {
    let c = cluster();
    for name in ["node02.example.com", "evil.example.com", "10.0.200.12"] {
        let err = handshake(&c.node01, None, &c.ca, name, None)
            .await
            .unwrap_err();
        assert!(err.contains("not valid for name"), "{name}: {err}");
    }
}

#[tokio::test]
async fn client_trusting_another_ca_rejects_the_node() {
    let c = cluster();
    let other = Ca::generate("prod-cluster", 3650, KeyAlgorithm::EcdsaP256).unwrap();
    let err = handshake(
        &c.node01,
        None,
        other.cert_pem(),
        "node01.example.com",
        None,
    )
    .await
    .unwrap_err();
    // Same subject as the real CA, other key: the signature check fails.
    assert!(err.contains("BadSignature"), "{err}");
    let stranger = Ca::generate("other-cluster", 3650, KeyAlgorithm::EcdsaP256).unwrap();
    let err = handshake(
        &c.node01,
        None,
        stranger.cert_pem(),
        "node01.example.com",
        None,
    )
    .await
    .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn mtls_between_members_and_operator_succeeds() {
    let c = cluster();
    // node02 calls node01 (mutual TLS between members).
    let peer = handshake(
        &c.node01,
        Some(&c.ca),
        &c.ca,
        "node01.example.com",
        Some(&c.node02),
    )
    .await
    .unwrap();
    assert_eq!(peer.as_deref(), Some("node02.example.com"));
    // The operator calls the collector on the provisioning server by IP.
    let peer = handshake(&c.pxe, Some(&c.ca), &c.ca, "10.0.100.1", Some(&c.operator))
        .await
        .unwrap();
    assert_eq!(peer.as_deref(), Some("operator"));
    // A node reports to the collector with its own certificate.
    let peer = handshake(&c.pxe, Some(&c.ca), &c.ca, "10.0.100.1", Some(&c.node02))
        .await
        .unwrap();
    assert_eq!(peer.as_deref(), Some("node02.example.com"));
}

#[tokio::test]
async fn mtls_rejects_a_client_cert_from_another_ca() {
    let c = cluster();
    let other = Ca::generate("prod-cluster", 3650, KeyAlgorithm::EcdsaP256).unwrap();
    let intruder = other
        .issue(
            &LeafSpec::node("node02", "node02.example.com", &[ip("10.0.200.12")], 30),
            None,
        )
        .unwrap();
    let err = handshake(
        &c.node01,
        Some(&c.ca),
        &c.ca,
        "node01.example.com",
        Some(&(&intruder).into()),
    )
    .await
    .unwrap_err();
    // TLS 1.3: the client learns of the rejection on its first read.
    // Same subject as the real CA, so the server finds "its" issuer and the signature fails.
    assert!(err.contains("fatal alert: DecryptError"), "{err}");
    // And without any client certificate at all.
    let err = handshake(&c.node01, Some(&c.ca), &c.ca, "node01.example.com", None)
        .await
        .unwrap_err();
    assert!(err.contains("CertificateRequired"), "{err}");
}

#[tokio::test]
async fn eku_limits_where_each_certificate_works() {
    let c = cluster();
    // The operator certificate is client-only: a server presenting it is refused.
    let err = handshake(&c.operator, None, &c.ca, "operator", None)
        .await
        .unwrap_err();
    assert!(err.contains("extended key usage"), "{err}");
    // The pxe-server certificate is server-only: a client presenting it is refused.
    let err = handshake(
        &c.node01,
        Some(&c.ca),
        &c.ca,
        "node01.example.com",
        Some(&c.pxe),
    )
    .await
    .unwrap_err();
    assert!(err.contains("UnsupportedCertificate"), "{err}");
}

#[tokio::test]
async fn reissued_cert_for_a_new_ip_works_with_the_same_key() {
    let tmp = tempfile::tempdir().unwrap();
    let secrets = secrets_dir(&tmp);
    let mut input: StoreInput = input();
    apply(&secrets, &input, OffsetDateTime::now_utc()).unwrap();
    let old_key = read(node_key(&secrets, "node03"));
    input.nodes[2] = NodeIdentity {
        ips: vec![ip("10.0.200.99"), ip("10.0.100.53")],
        ..input.nodes[2].clone()
    };
    apply(&secrets, &input, OffsetDateTime::now_utc()).unwrap();
    let node03 = Pair {
        cert: read(node_cert(&secrets, "node03")),
        key: read(node_key(&secrets, "node03")),
    };
    assert_eq!(node03.key, old_key);
    let ca = read(secrets.join("ca/ca-cert.pem"));
    handshake(&node03, None, &ca, "10.0.200.99", None)
        .await
        .unwrap();
    let err = handshake(&node03, None, &ca, "10.0.200.13", None)
        .await
        .unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
}
