//! Calling the collector's API in-process (`app()` + tower `oneshot`), with the caller's
//! identity set the way the TLS listener sets it.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use plasmagen::collector::auth::{CertIdentity, Peer};
use plasmagen::collector::{self, AppState};
use serde_json::{Value, json};
use tower::ServiceExt;

pub fn node_peer(host: &str) -> Peer {
    let fqdn = format!("{host}.example.com");
    Peer {
        addr: Some("10.0.100.50:40000".parse().unwrap()),
        cert: Some(CertIdentity {
            common_name: fqdn.clone(),
            dns_names: vec![fqdn, host.to_string(), "localhost".into()],
        }),
        lab: false,
    }
}

pub fn operator_peer() -> Peer {
    Peer {
        addr: Some("10.0.100.10:40000".parse().unwrap()),
        cert: Some(CertIdentity {
            common_name: "operator".into(),
            dns_names: vec![],
        }),
        lab: false,
    }
}

pub async fn call(
    s: &AppState,
    method: &str,
    uri: &str,
    peer: Option<Peer>,
    ct: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, Vec<u8>) {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(ct) = ct {
        b = b.header("content-type", ct);
    }
    if let Some(p) = peer {
        b = b.extension(p);
    }
    let resp = collector::app(s.clone())
        .oneshot(b.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    (
        status,
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

pub async fn post_json(
    s: &AppState,
    uri: &str,
    peer: Option<Peer>,
    body: &Value,
) -> (StatusCode, Value) {
    let (st, b) = call(
        s,
        "POST",
        uri,
        peer,
        Some("application/json"),
        body.to_string(),
    )
    .await;
    (st, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

/// A fleet read, as the operator (reads need the viewer or operator certificate).
pub async fn get_json<T: serde::de::DeserializeOwned>(s: &AppState, uri: &str) -> T {
    let (st, b) = call(s, "GET", uri, Some(operator_peer()), None, Body::empty()).await;
    assert_eq!(st, StatusCode::OK, "{uri}: {}", String::from_utf8_lossy(&b));
    serde_json::from_slice(&b).unwrap()
}

pub fn discover_json(mac: &str) -> Value {
    json!({
        "primary_mac": mac,
        "nics": [{"name": "eno1", "mac": mac, "speed_mbps": 10000, "carrier": true}],
        "disks": [{"name": "nvme0n1", "size_bytes": 960197124096u64,
                   "by_id": ["/dev/disk/by-id/nvme-SAMSUNG_MZQL2960HCJR-00A07_S64FNE0R123456"],
                   "model": "SAMSUNG MZQL2960HCJR-00A07", "rotational": false}],
        "memory_bytes": 274877906944u64,
        "cpu": {"model": "AMD EPYC 7313P 16-Core Processor", "logical_cpus": 32},
        "hostname": "nixos"
    })
}
