//! Listeners: accept TCP, (optionally) terminate TLS, tag each request with its [`Peer`] and
//! hand it to the router. Client certificates are optional at the TLS layer so that a request
//! without one gets a clear 401 JSON answer instead of a handshake failure; a certificate that
//! does not chain to the cluster CA still fails the handshake.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::TlsFiles;
use super::auth::{CertIdentity, Peer};
use super::error::CollectorError;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn bind(addr: &str) -> Result<TcpListener, CollectorError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| CollectorError::Listen {
            addr: addr.to_string(),
            source,
        })
}

fn tls_err(path: &Path, message: impl Into<String>) -> CollectorError {
    CollectorError::Tls {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CollectorError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_err(path, format!("cannot read certificates: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(path, format!("malformed PEM: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(path, "no certificate in the file"));
    }
    Ok(certs)
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Server certificate and key, and the CA client certificates must chain to.
pub fn tls_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, CollectorError> {
    let chain = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| tls_err(&files.key, format!("cannot read the private key: {e}")))?;
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&files.client_ca)? {
        roots
            .add(ca)
            .map_err(|e| tls_err(&files.client_ca, format!("unusable CA certificate: {e}")))?;
    }
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls_err(&files.client_ca, e.to_string()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CollectorError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls_err(&files.cert, format!("certificate and key do not fit: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    b
}

async fn serve_conn<I>(io: I, router: Router, peer: Peer)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        router.clone().oneshot(req.map(axum::body::Body::new))
    });
    if let Err(e) = builder()
        .serve_connection_with_upgrades(TokioIo::new(io), svc)
        .await
    {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn accept(listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
    match listener.accept().await {
        Ok((s, a)) => {
            let _ = s.set_nodelay(true);
            Some((s, a))
        }
        Err(e) => {
            // EMFILE and friends: back off instead of spinning.
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// Serve `router` over TLS until the task is dropped.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    cfg: Arc<rustls::ServerConfig>,
) -> Result<(), CollectorError> {
    let acceptor = TlsAcceptor::from(cfg);
    loop {
        let Some((tcp, addr)) = accept(&listener).await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::info!(peer = %addr, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::info!(peer = %addr, "TLS handshake timed out");
                    return;
                }
            };
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| CertIdentity::from_der(c));
            let peer = Peer {
                addr: Some(addr),
                cert,
                lab: false,
            };
            serve_conn(tls, router, peer).await;
        });
    }
}

/// Serve `router` over plain HTTP. `lab`: the API in lab mode (claims trusted); false for the
/// boot listener, which needs no identity.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    lab: bool,
) -> Result<(), CollectorError> {
    loop {
        let Some((tcp, addr)) = accept(&listener).await else {
            continue;
        };
        let router = router.clone();
        tokio::spawn(serve_conn(
            tcp,
            router,
            Peer {
                addr: Some(addr),
                cert: None,
                lab,
            },
        ));
    }
}
