//! `POST /v1/discovered/{mac}/enlist` in-process (`app()` + tower `oneshot`, the caller's
//! identity set the way the listeners set it), on a copy of examples/runbook.toml: the operator
//! enlists a discovered machine, the file gets one `[[nodes]]` block (every other byte kept),
//! the collector serves the new node at once; every refusal leaves the file byte for byte.

mod collector_support;

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use plasmagen::collector::auth::{CertIdentity, Peer};
use plasmagen::collector::view::{FleetView, NodeView};
use plasmagen::collector::{self, AppState, Config};
use serde_json::{Value, json};
use tower::ServiceExt;

use collector_support::{machine_report, runbook_copy, state};

const MAC: &str = "52:54:00:aa:bb:cc";

fn peer(addr: &str, cert: Option<(&str, Vec<String>)>, lab: bool) -> Peer {
    Peer {
        addr: Some(addr.parse().unwrap()),
        cert: cert.map(|(cn, dns_names)| CertIdentity {
            common_name: cn.into(),
            dns_names,
        }),
        lab,
    }
}

fn operator() -> Peer {
    peer("10.0.100.10:40000", Some(("operator", vec![])), false)
}

fn node01() -> Peer {
    let names = vec!["node01.example.com".into(), "node01".into()];
    peer(
        "10.0.100.50:40000",
        Some(("node01.example.com", names)),
        false,
    )
}

async fn call(
    s: &AppState,
    method: &str,
    uri: &str,
    peer: Option<Peer>,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    call_with(s, method, uri, peer, body, &[]).await
}

async fn call_with(
    s: &AppState,
    method: &str,
    uri: &str,
    peer: Option<Peer>,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    if let Some(p) = peer {
        b = b.extension(p);
    }
    let body = body.map_or_else(Body::empty, |v| Body::from(v.to_string()));
    let resp = collector::app(s.clone())
        .oneshot(b.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn discover(s: &AppState, mac: &str) {
    let report = serde_json::to_value(machine_report(mac)).unwrap();
    let (st, b) = call(s, "POST", "/v1/discover", None, Some(&report)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
}

async fn enlist(s: &AppState, mac: &str, who: Option<Peer>, body: Value) -> (StatusCode, Value) {
    call(
        s,
        "POST",
        &format!("/v1/discovered/{mac}/enlist"),
        who,
        Some(&body),
    )
    .await
}

async fn fleet(s: &AppState) -> FleetView {
    let (st, b) = call(s, "GET", "/v1/nodes", Some(operator()), None).await;
    assert_eq!(st, StatusCode::OK);
    serde_json::from_value(b).unwrap()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[tokio::test]
async fn the_operator_enlists_a_discovered_machine_and_the_fleet_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, inv) = runbook_copy(dir.path());
    let original = read(&path);
    let s = state(inv, dir.path(), Config::default());
    discover(&s, MAC).await;
    let before = fleet(&s).await;
    assert_eq!(before.nodes.len(), 5);
    assert_eq!(before.unknown_discovered[0].mac, MAC);

    // Any spelling of the MAC names the machine.
    let (st, b) = enlist(
        &s,
        "52-54-00-AA-BB-CC",
        Some(operator()),
        json!({"role": "worker"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "enlisted");
    assert_eq!(b["entry"]["hostname"], "node06");
    assert_eq!(b["entry"]["provisioning_ip"], "10.0.100.80");
    assert!(
        b["next"]
            .as_str()
            .unwrap()
            .contains(&format!("plasmagen generate {}", path.display())),
        "{b}"
    );
    assert_eq!(b["node"]["hostname"], "node06");

    // The file: the runbook's bytes (comments included) and one block after them.
    let edited = read(&path);
    assert!(edited.starts_with(&original), "{edited}");
    assert!(original.starts_with("# The runbook's fleet"));
    let added = &edited[original.len()..];
    assert_eq!(added.matches("[[nodes]]").count(), 1, "{added}");
    for line in [
        "hostname = \"node06\"",
        "role = \"worker\"",
        "mac = \"52:54:00:aa:bb:cc\"",
        "disks = [\"/dev/disk/by-id/ata-SSD_525400aabbcc\"]",
    ] {
        assert!(added.lines().any(|l| l == line), "{line:?} in:\n{added}");
    }
    plasmagen::inventory::load(&path).unwrap_or_else(|e| panic!("{e:?}"));

    // Served at once: a fleet row, off the discovered list, the node's history, its boot script.
    let after = fleet(&s).await;
    let hosts: Vec<&str> = after.nodes.iter().map(|n| n.hostname.as_str()).collect();
    assert_eq!(
        hosts,
        ["node01", "node02", "node03", "node04", "node05", "node06"]
    );
    let n6 = &after.nodes[5];
    assert_eq!((n6.role.as_str(), n6.mac.as_str()), ("worker", MAC));
    assert_eq!(n6.state.as_str(), "pending");
    assert!(
        n6.last_message
            .as_deref()
            .is_some_and(|m| m.contains("plasmagen generate")),
        "{n6:?}"
    );
    assert!(after.unknown_discovered.is_empty());
    let (st, b) = call(&s, "GET", "/v1/nodes/node06", Some(operator()), None).await;
    assert_eq!(st, StatusCode::OK);
    let view: NodeView = serde_json::from_value(b).unwrap();
    let history = view.history.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].kind, "enlist");
    assert_eq!(history[0].actor.as_deref(), Some("operator"));

    // Again: 409 naming the node, the file as it was.
    let (st, b) = enlist(&s, MAC, Some(operator()), json!({"role": "worker"})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"], "already_enlisted");
    assert!(b["message"].as_str().unwrap().contains("node06"), "{b}");
    assert_eq!(read(&path), edited);

    // A restart reads the edited file and replays the enlist into the node's last message.
    drop(s);
    let inv = plasmagen::inventory::load(&path).unwrap().inventory;
    let s = state(inv, dir.path(), Config::default());
    let f = fleet(&s).await;
    assert_eq!(f.nodes[5].hostname, "node06");
    assert_eq!(f.nodes[5].last_message, n6.last_message);
    assert!(f.unknown_discovered.is_empty());
}

#[tokio::test]
async fn only_the_operator_enlists_as_for_mark_installed() {
    let dir = tempfile::tempdir().unwrap();
    let (path, inv) = runbook_copy(dir.path());
    let original = read(&path);
    let s = state(inv, dir.path(), Config::default());
    discover(&s, MAC).await;
    let body = json!({"role": "worker"});

    for (who, status, code) in [
        (None, StatusCode::UNAUTHORIZED, "no_certificate"),
        (Some(node01()), StatusCode::FORBIDDEN, "not_operator"),
        // The lab listener: from loopback only.
        (
            Some(peer("10.0.100.77:5000", None, true)),
            StatusCode::FORBIDDEN,
            "not_operator",
        ),
    ] {
        let (st, b) = enlist(&s, MAC, who.clone(), body.clone()).await;
        assert_eq!((st, b["error"].as_str()), (status, Some(code)), "{who:?}");
        // mark-installed answers the same caller the same way.
        let (st, b) = call(&s, "POST", "/v1/nodes/node04/installed", who, None).await;
        assert_eq!((st, b["error"].as_str()), (status, Some(code)));
    }
    // The operator's browser, but a page of another site posting: refused (both ways a browser
    // says so), as mark-installed is.
    let uri = format!("/v1/discovered/{MAC}/enlist");
    for headers in [
        &[("sec-fetch-site", "cross-site")][..],
        &[
            ("origin", "https://evil.example"),
            ("host", "10.0.100.10:8443"),
        ][..],
    ] {
        let (st, b) = call_with(&s, "POST", &uri, Some(operator()), Some(&body), headers).await;
        assert_eq!(
            (st, b["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("cross_site")),
            "{b}"
        );
        let installed = "/v1/nodes/node04/installed";
        let (st, b) = call_with(&s, "POST", installed, Some(operator()), None, headers).await;
        assert_eq!(
            (st, b["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("cross_site")),
            "{b}"
        );
    }
    assert_eq!(read(&path), original);
    assert_eq!(fleet(&s).await.nodes.len(), 5);

    let lab = peer("127.0.0.1:5000", None, true);
    let (st, b) = enlist(&s, MAC, Some(lab), body).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_ne!(read(&path), original);
    let (st, b) = call(&s, "GET", "/v1/nodes/node06", Some(operator()), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(b["history"][0]["actor"], "lab:127.0.0.1:5000");
}

#[tokio::test]
async fn every_refusal_leaves_the_file_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = runbook_copy(dir.path());
    // A worker provisioning pool of one address: the second worker finds it full.
    let mut text = read(&path);
    text.push_str("\n[allocation]\nworker_provisioning = \"80-80\"\n");
    std::fs::write(&path, &text).unwrap();
    let inv = plasmagen::inventory::load(&path).unwrap().inventory;
    let s = state(inv, dir.path(), Config::default());
    discover(&s, MAC).await;
    discover(&s, "52:54:00:aa:bb:dd").await;
    let mut diskless = machine_report("52:54:00:aa:bb:ee");
    diskless.disks.clear();
    let diskless = serde_json::to_value(diskless).unwrap();
    let (st, _) = call(&s, "POST", "/v1/discover", None, Some(&diskless)).await;
    assert_eq!(st, StatusCode::OK);

    let op = || Some(operator());
    for (mac, body, status, code, says) in [
        (
            "52:54:00:00:00:99",
            json!({"role": "worker"}),
            StatusCode::NOT_FOUND,
            "not_found",
            "no discovery report",
        ),
        (
            "node01",
            json!({"role": "worker"}),
            StatusCode::NOT_FOUND,
            "not_found",
            "not a MAC",
        ),
        // A node's MAC that never sent a discovery report: enlisted already.
        (
            "52:54:00:12:34:56",
            json!({"role": "worker"}),
            StatusCode::CONFLICT,
            "already_enlisted",
            "node01",
        ),
        (
            MAC,
            json!({"role": "storage"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "role",
        ),
        (
            MAC,
            json!({"role": "worker", "disks": ["/dev/sda"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "disks",
        ),
        (
            "52:54:00:aa:bb:ee",
            json!({"role": "worker"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot_enlist",
            "disk",
        ),
        // Names the validator refuses: planned, then refused as a whole.
        (
            MAC,
            json!({"role": "worker", "hostname": "bad_name##"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_result",
            "hostname",
        ),
    ] {
        let (st, b) = enlist(&s, mac, op(), body.clone()).await;
        assert_eq!(st, status, "{mac} {body}: {b}");
        assert_eq!(b["error"], code, "{b}");
        let message = b["message"].as_str().unwrap();
        assert!(message.contains(says), "{says:?} in {message:?}");
        assert_eq!(read(&path), text, "{mac} {body}");
    }
    let node01_mac = s.catalog().node("node01").unwrap().mac.to_string();
    assert_eq!(
        node01_mac, "52:54:00:12:34:56",
        "the 409 case above uses it"
    );

    let (st, b) = enlist(&s, MAC, op(), json!({"role": "worker"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let edited = read(&path);
    let (st, b) = enlist(&s, "52:54:00:aa:bb:dd", op(), json!({"role": "worker"})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"], "cannot_enlist");
    assert!(b["message"].as_str().unwrap().contains("full"), "{b}");
    assert_eq!(read(&path), edited);
    assert_eq!(fleet(&s).await.nodes.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enlists_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let (path, inv) = runbook_copy(dir.path());
    let s = state(inv, dir.path(), Config::default());
    let macs: Vec<String> = (0..6).map(|i| format!("52:54:00:aa:bc:{i:02x}")).collect();
    for m in &macs {
        discover(&s, m).await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for m in macs.clone() {
        let s = s.clone();
        tasks.spawn(
            async move { enlist(&s, &m, Some(operator()), json!({"role": "worker"})).await },
        );
    }
    let mut names = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (st, b) = r.unwrap();
        assert_eq!(st, StatusCode::OK, "{b}");
        names.push(b["entry"]["hostname"].as_str().unwrap().to_string());
    }
    names.sort();
    assert_eq!(
        names,
        ["node06", "node07", "node08", "node09", "node10", "node11"]
    );
    // Every edit landed (none overwrote another) and the result is one valid inventory.
    let text = read(&path);
    assert_eq!(text.matches("[[nodes]]").count(), 11);
    let inv = plasmagen::inventory::load(&path).unwrap().inventory;
    assert_eq!(inv.nodes.len(), 11);
    let f = fleet(&s).await;
    assert_eq!(f.nodes.len(), 11);
    assert!(f.unknown_discovered.is_empty());
}
