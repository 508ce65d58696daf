//! Reading the fleet at its size: `GET /v1/nodes` (bytes, latency) and the dashboard in
//! headless Chromium (first render, one live update).

use std::time::{Duration, Instant};

use plasma_wire::{Phase, Report, ReportStatus};

use super::FleetOptions;
use super::big_fleet::BigFleet;
use super::dashboard_scale::{DashboardFigures, measure_dashboard, row_contains};

#[derive(Debug, Default, Clone)]
pub struct Reads {
    pub nodes_bytes: usize,
    pub nodes_listed: usize,
    pub nodes_p50_ms: f64,
    pub nodes_p99_ms: f64,
    pub dashboard_render_ms: f64,
    pub dashboard_update_ms: f64,
    pub dashboard: Option<DashboardFigures>,
}

fn client(fleet: &BigFleet, cert: &str, key: &str) -> reqwest::Client {
    let s = &fleet.secrets;
    let ca = std::fs::read(s.join("ca/ca-cert.pem")).expect("CA");
    let mut pem = std::fs::read(s.join(cert)).expect("cert");
    pem.push(b'\n');
    pem.extend(std::fs::read(s.join(key)).expect("key"));
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).expect("CA PEM"))
        .identity(reqwest::Identity::from_pem(&pem).expect("identity"))
        .build()
        .expect("client")
}

pub fn measure(
    rt: &tokio::runtime::Runtime,
    opts: &FleetOptions,
    fleet: &BigFleet,
    url: &str,
) -> Reads {
    let op = client(
        fleet,
        "operator/operator-cert.pem",
        "operator/operator-key.pem",
    );
    let mut reads = rt.block_on(async {
        let mut took = Vec::new();
        let (mut bytes, mut listed) = (0, 0);
        for _ in 0..20 {
            let t = Instant::now();
            let body = op
                .get(format!("{url}/v1/nodes"))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .expect("GET /v1/nodes")
                .bytes()
                .await
                .expect("body");
            took.push(t.elapsed());
            bytes = body.len();
            let v: serde_json::Value = serde_json::from_slice(&body).expect("fleet JSON");
            listed = v["nodes"].as_array().map_or(0, Vec::len);
        }
        took.sort();
        let ms = |p: f64| took[((took.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
        Reads {
            nodes_bytes: bytes,
            nodes_listed: listed,
            nodes_p50_ms: ms(0.5),
            nodes_p99_ms: ms(0.99),
            ..Reads::default()
        }
    });
    if opts.dashboard {
        let host = fleet.hosts.last().expect("a node").clone();
        let d = &format!("nodes/{host}/etc/nixos/secrets");
        let node = client(
            fleet,
            &format!("{d}/{host}-cert.pem"),
            &format!("{d}/{host}-key.pem"),
        );
        let message = "fleet bench: one live update";
        let report = Report {
            node_id: host.clone(),
            service: "flaredb".into(),
            phase: Phase::Joining,
            status: ReportStatus::InProgress,
            message: message.into(),
            at: plasma_agent::progress::now_rfc3339(),
            installation: None,
        };
        let handle = rt.handle().clone();
        let post = format!("{url}/v1/reports");
        let figures = measure_dashboard(
            &opts.work.join("browser"),
            &format!("{url}/"),
            fleet.hosts.len(),
            &row_contains(&host, message),
            move || {
                handle.block_on(async {
                    node.post(&post)
                        .json(&report)
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status)
                        .expect("the update's report");
                });
            },
        );
        eprintln!("fleet: {figures}");
        reads.dashboard_render_ms = figures.render.render_ms;
        reads.dashboard_update_ms = figures.update.update_ms;
        reads.dashboard = Some(figures);
    }
    reads
}
