//! Listeners: accept TCP, (optionally) terminate TLS, tag each request with its [`Peer`] and
//! hand it to the router. Client certificates are optional at the TLS layer so that a request
//! without one gets a clear 401 JSON answer instead of a handshake failure; a certificate that
//! does not chain to the cluster CA still fails the handshake.
//!
//! Every listener holds at most its cap of connections ([`limits`]); each connection lives
//! under a handshake, request and idle timeout (`conn`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::TlsFiles;
use super::auth::{CertIdentity, Peer};
use super::error::CollectorError;

mod conn;
mod limiter;
pub mod limits;

use limiter::{ConnLimiter, Slot};
pub use limits::{Limits, ListenerLimits, StreamSlots};

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

/// Take the next connection the limiter has a place for. A connection refused because every
/// place is busy is closed at once (dropped); no more than the cap plus
/// [`limits::ACCEPT_AHEAD`] are ever open.
async fn accept(
    listener: &TcpListener,
    limiter: &Arc<ConnLimiter>,
    limits: &ListenerLimits,
) -> Option<(TcpStream, SocketAddr, Slot)> {
    let file = limiter.file().await?;
    let (s, a) = match listener.accept().await {
        Ok(sa) => sa,
        Err(e) => {
            // EMFILE and friends: back off instead of spinning.
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            return None;
        }
    };
    let slot = limiter.admit(file)?;
    let _ = s.set_nodelay(true);
    // A peer that stops acknowledging (powered off, unplugged) fails the next write after this
    // instead of after the kernel's ~15 minutes of retransmissions: a dead event-stream
    // subscriber is dropped when its next keep-alive comment goes unanswered.
    let ms = u32::try_from(limits.idle_timeout.as_millis()).unwrap_or(u32::MAX);
    let _ = rustix::net::sockopt::set_tcp_user_timeout(&s, ms);
    Some((s, a, slot))
}

/// Serve `router` over TLS with the default API limits until the task is dropped.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    cfg: Arc<rustls::ServerConfig>,
) -> Result<(), CollectorError> {
    serve_tls_with(listener, router, cfg, ListenerLimits::default()).await
}

/// Serve `router` over TLS under `limits` until the task is dropped.
pub async fn serve_tls_with(
    listener: TcpListener,
    router: Router,
    cfg: Arc<rustls::ServerConfig>,
    limits: ListenerLimits,
) -> Result<(), CollectorError> {
    let acceptor = TlsAcceptor::from(cfg);
    let limiter = ConnLimiter::new(limits.name, limits.max_connections);
    let http = conn::http(&limits);
    let limits = Arc::new(limits);
    loop {
        let Some((tcp, addr, slot)) = accept(&listener, &limiter, &limits).await else {
            continue;
        };
        let (acceptor, router, http, limits) = (
            acceptor.clone(),
            router.clone(),
            http.clone(),
            limits.clone(),
        );
        tokio::spawn(async move {
            let state = slot.state().clone();
            let serve = async {
                let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp))
                    .await
                {
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
                conn::serve(tls, &http, router, peer, state.clone(), &limits).await;
            };
            tokio::select! {
                () = state.evicted() => {
                    tracing::debug!(peer = %addr, "closed: its place went to a newer connection");
                }
                () = serve => {}
            }
            drop(slot);
        });
    }
}

/// Serve `router` over plain HTTP with the default API limits. `lab`: the API in lab mode
/// (claims trusted); false for the boot listener, which needs no identity.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    lab: bool,
) -> Result<(), CollectorError> {
    serve_plain_with(listener, router, lab, ListenerLimits::default()).await
}

/// Serve `router` over plain HTTP under `limits` (see [`serve_plain`]).
pub async fn serve_plain_with(
    listener: TcpListener,
    router: Router,
    lab: bool,
    limits: ListenerLimits,
) -> Result<(), CollectorError> {
    let limiter = ConnLimiter::new(limits.name, limits.max_connections);
    let http = conn::http(&limits);
    let limits = Arc::new(limits);
    loop {
        let Some((tcp, addr, slot)) = accept(&listener, &limiter, &limits).await else {
            continue;
        };
        let (router, http, limits) = (router.clone(), http.clone(), limits.clone());
        tokio::spawn(async move {
            let state = slot.state().clone();
            let peer = Peer {
                addr: Some(addr),
                cert: None,
                lab,
            };
            tokio::select! {
                () = state.evicted() => {
                    tracing::debug!(peer = %addr, "closed: its place went to a newer connection");
                }
                () = conn::serve(tcp, &http, router, peer, state.clone(), &limits) => {}
            }
            drop(slot);
        });
    }
}
