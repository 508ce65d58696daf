//! Accept loop with fault injection at the connection level, shared by the simulator and the
//! report sink: plain or TLS, connections dropped at accept, connections held open without an
//! answer, and a per-connection "kill" switch a handler can flip to lose its response.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Connection-level faults and observations of one listening socket.
#[derive(Default)]
pub struct ConnFaults {
    /// Close the next N accepted connections at once (client sees a reset / EOF).
    pub drop_next: u32,
    /// Keep the next N connections open without ever answering (client times out).
    pub hang_next: u32,
    /// Set by `kill`: every connection errors from now on.
    pub dead: bool,
    /// Held-open connections (see `hang_next`).
    pub hung: Vec<TcpStream>,
    /// TLS handshakes that failed, with rustls' reason (e.g. missing client certificate).
    pub tls_failures: Vec<String>,
    pub accepted: u64,
}

pub type SharedFaults = Arc<Mutex<ConnFaults>>;

/// What a handler sees of its connection (`ConnectInfo<ConnMeta>`).
#[derive(Clone, Debug)]
pub struct ConnMeta {
    pub peer: SocketAddr,
    /// Flip to make the connection fail before the response is written.
    pub kill: Arc<AtomicBool>,
}

impl Connected<IncomingStream<'_, FaultyListener>> for ConnMeta {
    fn connect_info(stream: IncomingStream<'_, FaultyListener>) -> Self {
        stream.remote_addr().clone()
    }
}

pub struct FaultyListener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    faults: SharedFaults,
    dead: Arc<AtomicBool>,
}

impl FaultyListener {
    pub fn new(
        tcp: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        faults: SharedFaults,
        dead: Arc<AtomicBool>,
    ) -> Self {
        FaultyListener {
            tcp,
            tls: tls.map(TlsAcceptor::from),
            faults,
            dead,
        }
    }
}

impl Listener for FaultyListener {
    type Io = FaultyIo;
    type Addr = ConnMeta;

    async fn accept(&mut self) -> (FaultyIo, ConnMeta) {
        loop {
            let Ok((stream, peer)) = self.tcp.accept().await else {
                continue;
            };
            // Like real servers: without it, small TLS records wait for delayed ACKs (40 ms).
            let _ = stream.set_nodelay(true);
            {
                let mut f = self.faults.lock().unwrap();
                f.accepted += 1;
                if f.drop_next > 0 {
                    f.drop_next -= 1;
                    let _ = stream.set_zero_linger();
                    drop(stream);
                    continue;
                }
                if f.hang_next > 0 {
                    f.hang_next -= 1;
                    f.hung.push(stream);
                    continue;
                }
            }
            let inner = match &self.tls {
                None => Inner::Plain(stream),
                // Inline handshake: the fixture serves one agent at a time per node.
                Some(acc) => match acc.accept(stream).await {
                    Ok(s) => Inner::Tls(Box::new(s)),
                    Err(e) => {
                        self.faults.lock().unwrap().tls_failures.push(e.to_string());
                        continue;
                    }
                },
            };
            let kill = Arc::new(AtomicBool::new(false));
            let io = FaultyIo {
                inner,
                kill: kill.clone(),
                dead: self.dead.clone(),
            };
            return (io, ConnMeta { peer, kill });
        }
    }

    fn local_addr(&self) -> io::Result<ConnMeta> {
        Ok(ConnMeta {
            peer: self.tcp.local_addr()?,
            kill: Arc::new(AtomicBool::new(false)),
        })
    }
}

enum Inner {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

pub struct FaultyIo {
    inner: Inner,
    kill: Arc<AtomicBool>,
    dead: Arc<AtomicBool>,
}

impl FaultyIo {
    fn broken(&self) -> bool {
        self.kill.load(Ordering::SeqCst) || self.dead.load(Ordering::SeqCst)
    }
}

fn reset() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "simulated connection loss")
}

impl AsyncRead for FaultyIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.broken() {
            return Poll::Ready(Err(reset()));
        }
        match &mut this.inner {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for FaultyIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.broken() {
            return Poll::Ready(Err(reset()));
        }
        match &mut this.inner {
            Inner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.broken() {
            return Poll::Ready(Err(reset()));
        }
        match &mut this.inner {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
