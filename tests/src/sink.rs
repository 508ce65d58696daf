//! A tiny collector stand-in for agent tests: `POST /v1/reports` stores the report.
//! Plus the two ways a collector can be down: a closed port and a socket that never answers.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use plasma_wire::Report;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::net::{ConnFaults, ConnMeta, FaultyListener};

pub struct ReportSink {
    pub url: String,
    reports: Arc<Mutex<Vec<Report>>>,
    task: JoinHandle<()>,
}

impl ReportSink {
    /// `tls`: server config (client certificates required), or plain http.
    pub async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> ReportSink {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().unwrap();
        let url = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
        let reports = Arc::new(Mutex::new(Vec::new()));
        let listener = FaultyListener::new(
            tcp,
            tls,
            Arc::new(Mutex::new(ConnFaults::default())),
            Arc::new(AtomicBool::new(false)),
        );
        let app = axum::Router::new()
            .route("/v1/reports", post(store))
            .with_state(reports.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<ConnMeta>(),
            )
            .await;
        });
        ReportSink { url, reports, task }
    }

    pub fn reports(&self) -> Vec<Report> {
        self.reports.lock().unwrap().clone()
    }
}

impl Drop for ReportSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn store(State(r): State<Arc<Mutex<Vec<Report>>>>, Json(report): Json<Report>) -> StatusCode {
    r.lock().unwrap().push(report);
    StatusCode::ACCEPTED
}

/// A URL whose port refuses connections (bound, then released).
pub async fn closed_port_url(scheme: &str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("{scheme}://{addr}")
}

/// Accepts connections and never answers: requests to it can only time out.
pub struct Blackhole {
    pub addr: SocketAddr,
    held: Arc<Mutex<Vec<TcpStream>>>,
    task: JoinHandle<()>,
}

impl Blackhole {
    pub async fn start() -> Blackhole {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().unwrap();
        let held = Arc::new(Mutex::new(Vec::new()));
        let h = held.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                h.lock().unwrap().push(s);
            }
        });
        Blackhole { addr, held, task }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    pub fn connections(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}
