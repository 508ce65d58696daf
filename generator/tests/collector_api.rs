//! The collector's API in-process (`app()` + tower `oneshot`), with the caller's identity set
//! the way the TLS listener sets it.

mod collector_support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use plasma_wire::Phase;
use plasmagen::collector::auth::{CertIdentity, Peer};
use plasmagen::collector::discovered::Budget;
use plasmagen::collector::view::{DiscoveredView, FleetView, NodeView};
use plasmagen::collector::{self, AppState, Config};
use plasmagen::render::pxe;
use serde_json::{Value, json};
use tower::ServiceExt;

use collector_support::inproc::{
    call, discover_json, get_json, node_peer, operator_peer, post_json,
};
use collector_support::{report, runbook, state};

fn report_json(node: &str, service: &str, phase: Phase) -> Value {
    serde_json::to_value(report(node, service, phase, "msg")).unwrap()
}

async fn metrics(s: &AppState) -> String {
    let (st, b) = call(s, "GET", "/metrics", None, None, Body::empty()).await;
    assert_eq!(st, StatusCode::OK);
    String::from_utf8(b).unwrap()
}

fn metric(text: &str, line_prefix: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(line_prefix)
                .map(|v| v.trim().parse::<u64>().unwrap())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn every_bad_input_gets_a_json_4xx_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(runbook(), dir.path(), Config::default());
    let me = || Some(node_peer("node01"));
    let good = report_json("node01", "chainfire", Phase::Joining);

    let mut unknown_field = good.clone();
    unknown_field["extra"] = json!(1);
    let mut unknown_phase = good.clone();
    unknown_phase["phase"] = json!("exploded");
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("status");
    let mut bad_at = good.clone();
    bad_at["at"] = json!("yesterday");
    let mut bad_service = good.clone();
    bad_service["service"] = json!("mysql");
    let mut huge = good.clone();
    huge["message"] = json!("x".repeat(70 * 1024));

    // (what, content type, body, status, error code, message contains)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        String,
        StatusCode,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "malformed JSON",
            Some("application/json"),
            "{\"node_id\": ".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "not valid JSON",
        ),
        (
            "not JSON at all",
            Some("application/json"),
            "hello".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "not valid JSON",
        ),
        (
            "unknown field",
            Some("application/json"),
            unknown_field.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "unknown field `extra`",
        ),
        (
            "unknown phase",
            Some("application/json"),
            unknown_phase.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "unknown variant `exploded`",
        ),
        (
            "missing field",
            Some("application/json"),
            missing.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "missing field `status`",
        ),
        (
            "bad timestamp",
            Some("application/json"),
            bad_at.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_report",
            "RFC 3339",
        ),
        (
            "unknown service",
            Some("application/json"),
            bad_service.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_report",
            "unknown service",
        ),
        (
            "body over 64 KiB",
            Some("application/json"),
            huge.to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "65536",
        ),
        (
            "wrong content type",
            Some("text/plain"),
            good.to_string(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "application/json",
        ),
        (
            "no content type",
            None,
            good.to_string(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "application/json",
        ),
    ];
    for (what, ct, body, status, code, says) in cases {
        let (st, b) = call(&s, "POST", "/v1/reports", me(), ct, body).await;
        let v: Value =
            serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{what}: body is not JSON ({e})"));
        assert_eq!(st, status, "{what}: {v}");
        assert_eq!(v["error"], code, "{what}: {v}");
        assert!(v["message"].as_str().unwrap().contains(says), "{what}: {v}");
    }
    // Over the limit without a Content-Length (streamed): still 413.
    let chunks = futures_util::stream::iter(
        (0..20).map(|_| Ok::<_, std::io::Error>(bytes_of(vec![b' '; 4096]))),
    );
    let (st, _) = call(
        &s,
        "POST",
        "/v1/reports",
        me(),
        Some("application/json"),
        Body::from_stream(chunks),
    )
    .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);

    // Unknown node: 403, counted, listed for the dashboard.
    let (st, v) = post_json(
        &s,
        "/v1/reports",
        me(),
        &report_json("node99", "chainfire", Phase::Booted),
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("unknown_node"))
    );
    // No certificate: 401. Another node's certificate: 403.
    let (st, v) = post_json(&s, "/v1/reports", None, &good).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("no_certificate"))
    );
    let (st, v) = post_json(&s, "/v1/reports", Some(node_peer("node02")), &good).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("identity_mismatch"))
    );
    let (st, v) = post_json(&s, "/v1/reports", Some(operator_peer()), &good).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("identity_mismatch"))
    );

    // Still serving: the good report is stored, nothing else was.
    let (st, v) = post_json(&s, "/v1/reports", me(), &good).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let fleet: FleetView = get_json(&s, "/v1/nodes").await;
    let n1 = fleet.nodes.iter().find(|n| n.hostname == "node01").unwrap();
    assert_eq!(n1.reports, 1);
    assert_eq!(n1.services[0].phase, "joining");
    assert!(
        fleet
            .nodes
            .iter()
            .filter(|n| n.hostname != "node01")
            .all(|n| n.reports == 0)
    );
    assert_eq!(fleet.rejected_unknown_nodes.len(), 1);
    assert_eq!(fleet.rejected_unknown_nodes[0].node_id, "node99");

    let m = metrics(&s).await;
    assert_eq!(metric(&m, "plasma_collector_reports_accepted_total "), 1);
    assert_eq!(
        metric(
            &m,
            "plasma_collector_reports_rejected_total{reason=\"unknown_node\"} "
        ),
        1
    );
    assert_eq!(
        metric(
            &m,
            "plasma_collector_reports_rejected_total{reason=\"malformed_json\"} "
        ),
        2
    );
    assert_eq!(
        metric(
            &m,
            "plasma_collector_reports_rejected_total{reason=\"body_too_large\"} "
        ),
        2
    );
    assert_eq!(
        metric(
            &m,
            "plasma_collector_reports_rejected_total{reason=\"identity_mismatch\"} "
        ),
        2
    );
    assert_eq!(
        metric(
            &m,
            "plasma_collector_reports_rejected_total{reason=\"no_certificate\"} "
        ),
        1
    );
    assert!(
        m.contains(
            "plasma_collector_request_duration_seconds_bucket{route=\"/v1/reports\",le=\"+Inf\"} 16"
        ),
        "{m}"
    );
    assert_eq!(
        metric(&m, "plasma_collector_nodes{state=\"in-progress\"} "),
        1
    );
    assert_eq!(metric(&m, "plasma_collector_nodes{state=\"pending\"} "), 4);
}

fn bytes_of(v: Vec<u8>) -> axum::body::Bytes {
    axum::body::Bytes::from(v)
}

#[tokio::test]
async fn phases_history_and_joined_state() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(runbook(), dir.path(), Config::default());
    for (svc, phase) in [
        ("chainfire", Phase::Booted),
        ("chainfire", Phase::Joining),
        ("chainfire", Phase::Joined),
        ("flaredb", Phase::Joined),
    ] {
        let (st, v) = post_json(
            &s,
            "/v1/reports",
            Some(node_peer("node04")),
            &report_json("node04", svc, phase),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let (st, v) = post_json(
        &s,
        "/v1/reports",
        Some(node_peer("node05")),
        &report_json("node05", "chainfire", Phase::Failed),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let node: NodeView = get_json(&s, "/v1/nodes/node04").await;
    // A worker only has to join chainfire; its stray flaredb report does not matter.
    assert_eq!(node.state.as_str(), "joined");
    assert_eq!(node.raft_services, vec!["chainfire"]);
    let hist = node.history.unwrap();
    let phases: Vec<_> = hist.iter().map(|h| h.phase.clone().unwrap()).collect();
    assert_eq!(phases, ["booted", "joining", "joined", "joined"]);
    assert!(hist.windows(2).all(|w| w[0].id < w[1].id));
    let fleet: FleetView = get_json(&s, "/v1/nodes").await;
    assert_eq!(
        (
            fleet.summary.joined,
            fleet.summary.failed,
            fleet.summary.pending
        ),
        (1, 1, 3)
    );
    let n5 = fleet.nodes.iter().find(|n| n.hostname == "node05").unwrap();
    assert_eq!(n5.state.as_str(), "failed");
    // A control plane needs both chainfire and flaredb.
    post_json(
        &s,
        "/v1/reports",
        Some(node_peer("node01")),
        &report_json("node01", "chainfire", Phase::Bootstrapped),
    )
    .await;
    let n1: NodeView = get_json(&s, "/v1/nodes/node01").await;
    assert_eq!(n1.state.as_str(), "in-progress");
    post_json(
        &s,
        "/v1/reports",
        Some(node_peer("node01")),
        &report_json("node01", "flaredb", Phase::Bootstrapped),
    )
    .await;
    let n1: NodeView = get_json(&s, "/v1/nodes/node01").await;
    assert_eq!(n1.state.as_str(), "joined");
    let (st, _) = call(
        &s,
        "GET",
        "/v1/nodes/nope",
        Some(operator_peer()),
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

fn viewer_peer() -> Peer {
    Peer {
        addr: Some("10.0.100.200:40000".parse().unwrap()),
        cert: Some(CertIdentity {
            common_name: "viewer".into(),
            dns_names: vec![],
        }),
        lab: false,
    }
}

/// Reads that show the inventory need the viewer or operator certificate: anyone else on the
/// provisioning network gets 401 (no certificate) or 403 (a node's), as JSON; the viewer may
/// not act. `--public-dashboard` (and the lab listener) keep the old behaviour.
#[tokio::test]
async fn fleet_reads_need_the_viewer_or_operator_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(runbook(), dir.path(), Config::default());
    let reads = ["/v1/nodes", "/v1/nodes/node01", "/v1/events"];
    for uri in reads {
        let (st, b) = call(&s, "GET", uri, None, None, Body::empty()).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{uri}");
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert!(v["message"].as_str().unwrap().contains("viewer"), "{v}");
        let (st, b) = call(
            &s,
            "GET",
            uri,
            Some(node_peer("node01")),
            None,
            Body::empty(),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{uri}");
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"], "not_viewer", "{v}");
    }
    // Bodies of an event stream never end: only the status of those two is read.
    for peer in [viewer_peer(), operator_peer()] {
        for uri in ["/v1/nodes", "/v1/nodes/node01"] {
            let (st, _) = call(&s, "GET", uri, Some(peer.clone()), None, Body::empty()).await;
            assert_eq!(st, StatusCode::OK, "{uri} as {:?}", peer.cert);
        }
        let resp = s_app(&s)
            .oneshot(get_as("/v1/events", peer.clone()))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    // The viewer reads, never acts.
    let (st, _) = call(
        &s,
        "POST",
        "/v1/nodes/node01/installed",
        Some(viewer_peer()),
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Health stays public: monitoring has no certificate.
    let (st, _) = call(&s, "GET", "/health", None, None, Body::empty()).await;
    assert_eq!(st, StatusCode::OK);

    let public = Config {
        public_dashboard: true,
        ..Config::default()
    };
    let dir2 = tempfile::tempdir().unwrap();
    let s2 = state(runbook(), dir2.path(), public);
    let (st, _) = call(&s2, "GET", "/v1/nodes", None, None, Body::empty()).await;
    assert_eq!(st, StatusCode::OK, "--public-dashboard");
    let lab = Peer {
        addr: Some("10.0.100.99:40000".parse().unwrap()),
        cert: None,
        lab: true,
    };
    let (st, _) = call(&s, "GET", "/v1/nodes", Some(lab), None, Body::empty()).await;
    assert_eq!(st, StatusCode::OK, "lab listener");
}

fn s_app(s: &AppState) -> axum::Router {
    collector::app(s.clone())
}

fn get_as(uri: &str, peer: Peer) -> Request<Body> {
    let mut req = Request::builder()
        .method("GET")
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(peer);
    req
}

#[tokio::test]
async fn stuck_nodes_stand_out() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        stuck_after: Duration::from_millis(300),
        ..Config::default()
    };
    let s = state(runbook(), dir.path(), cfg);
    post_json(
        &s,
        "/v1/reports",
        Some(node_peer("node02")),
        &report_json("node02", "chainfire", Phase::Joining),
    )
    .await;
    let n: NodeView = get_json(&s, "/v1/nodes/node02").await;
    assert_eq!(n.state.as_str(), "in-progress");
    // Wall-clock: the stuck rule compares report receipt times with now.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let fleet: FleetView = get_json(&s, "/v1/nodes").await;
    let n = fleet.nodes.iter().find(|n| n.hostname == "node02").unwrap();
    assert_eq!(n.state.as_str(), "stuck");
    assert!(n.time_in_phase_secs.unwrap() >= 1);
    assert_eq!(fleet.summary.stuck, 1);
}

async fn boot(s: &AppState, file: &str) -> (StatusCode, String) {
    let resp = collector::boot_app(s.clone())
        .oneshot(
            Request::get(format!("/boot/{file}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let st = resp.status();
    (
        st,
        String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn install_loop_avoidance_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let inv = runbook();
    let n1 = inv.node("node01").unwrap().clone();
    let n4 = inv.node("node04").unwrap().clone();
    let netboot = pxe::netboot_script(&inv, &n1).unwrap();
    let local = pxe::local_boot_script(&n1).unwrap();
    let discovery = pxe::discovery_script(&inv).unwrap();
    assert_ne!(netboot, local);
    let s = state(inv.clone(), dir.path(), Config::default());

    // Not installed: the netboot script, whichever MAC spelling iPXE uses.
    for f in [
        "52-54-00-12-34-56.ipxe",
        "52:54:00:12:34:56.ipxe",
        "52-54-00-12-34-56.IPXE",
    ] {
        assert_eq!(boot(&s, f).await, (StatusCode::OK, netboot.clone()), "{f}");
    }
    assert_eq!(
        boot(&s, "aa-bb-cc-00-00-01.ipxe").await,
        (StatusCode::OK, discovery.clone())
    );
    assert_eq!(boot(&s, "not-a-mac.ipxe").await.0, StatusCode::NOT_FOUND);

    // Operator endpoints: no certificate 401, a node's certificate 403, the operator's 200.
    let (st, _) = post_json(&s, "/v1/nodes/node01/installed", None, &json!({})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, v) = post_json(
        &s,
        "/v1/nodes/node01/installed",
        Some(node_peer("node01")),
        &json!({}),
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_operator"))
    );
    assert_eq!(boot(&s, "52-54-00-12-34-56.ipxe").await.1, netboot);
    let (st, v) = post_json(
        &s,
        "/v1/nodes/node01/installed",
        Some(operator_peer()),
        &json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["installed"], true);
    assert_eq!(boot(&s, "52-54-00-12-34-56.ipxe").await.1, local);

    // Reprovision (runbook 9.2): the next boot reinstalls.
    let (st, v) = post_json(
        &s,
        "/v1/nodes/node01/reprovision",
        Some(node_peer("node01")),
        &json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, v) = post_json(
        &s,
        "/v1/nodes/node01/reprovision",
        Some(operator_peer()),
        &json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["installed"], false);
    assert_eq!(boot(&s, "52-54-00-12-34-56.ipxe").await.1, netboot);
    let (st, _) = post_json(
        &s,
        "/v1/nodes/ghost/reprovision",
        Some(operator_peer()),
        &json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // The old system, still running until it reboots, reports late: no local boot yet.
    let (st, _) = post_json(
        &s,
        "/v1/reports",
        Some(node_peer("node01")),
        &report_json("node01", "chainfire", Phase::Joined),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(boot(&s, "52-54-00-12-34-56.ipxe").await.1, netboot);

    // A report from the installed system (booted or later) also switches to local boot.
    let n4_mac = n4.mac.dashed();
    assert_eq!(
        boot(&s, &format!("{n4_mac}.ipxe")).await.1,
        pxe::netboot_script(&inv, &n4).unwrap()
    );
    post_json(
        &s,
        "/v1/reports",
        Some(node_peer("node04")),
        &report_json("node04", "system", Phase::Booted),
    )
    .await;
    assert_eq!(
        boot(&s, &format!("{n4_mac}.ipxe")).await.1,
        pxe::local_boot_script(&n4).unwrap()
    );

    // The events are in the node's history, with who did them.
    let node: NodeView = get_json(&s, "/v1/nodes/node01").await;
    let kinds: Vec<(&str, Option<&str>)> = node
        .history
        .as_ref()
        .unwrap()
        .iter()
        .map(|h| (h.kind.as_str(), h.actor.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("mark-installed", Some("operator")),
            ("reprovision", Some("operator")),
            ("report", None)
        ]
    );

    // State survives a restart (rebuilt from the database).
    drop(s);
    let s2 = state(inv, dir.path(), Config::default());
    assert_eq!(
        boot(&s2, &format!("{n4_mac}.ipxe")).await.1,
        pxe::local_boot_script(&n4).unwrap()
    );
    assert_eq!(boot(&s2, "52-54-00-12-34-56.ipxe").await.1, netboot);
    // The reinstalled system's first report ends the reinstall.
    let (st, _) = post_json(
        &s2,
        "/v1/reports",
        Some(node_peer("node01")),
        &report_json("node01", "system", Phase::Booted),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(boot(&s2, "52-54-00-12-34-56.ipxe").await.1, local);
}

#[tokio::test]
async fn discovery_is_stored_unverified_and_never_changes_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(runbook(), dir.path(), Config::default());
    // Unauthenticated on purpose: a netbooted machine has no certificate.
    let (st, v) = post_json(
        &s,
        "/v1/discover",
        None,
        &discover_json("AA:BB:CC:00:00:01"),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["mac"], "aa:bb:cc:00:00:01");
    // node01's MAC: stored as facts, but node01 stays pending and not installed.
    let (st, v) = post_json(
        &s,
        "/v1/discover",
        None,
        &discover_json("52-54-00-12-34-56"),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["inventory_node"], "node01");
    let fleet: FleetView = get_json(&s, "/v1/nodes").await;
    assert_eq!(fleet.unknown_discovered.len(), 1);
    // The fleet list holds a summary; the facts are behind /v1/discovered/{mac}.
    let summary = &fleet.unknown_discovered[0];
    assert_eq!(summary.mac, "aa:bb:cc:00:00:01");
    assert_eq!(summary.largest_disk_bytes, 960197124096);
    let listed = serde_json::to_value(&fleet.unknown_discovered).unwrap();
    assert!(listed[0].get("facts").is_none(), "{listed}");
    let one: DiscoveredView = get_json(&s, "/v1/discovered/AA-BB-CC-00-00-01").await;
    assert_eq!(one.facts.disks[0].size_bytes, 960197124096);
    let (st, _) = call(
        &s,
        "GET",
        "/v1/discovered/aa:bb:cc:00:00:99",
        Some(operator_peer()),
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = call(
        &s,
        "GET",
        "/v1/discovered/aa:bb:cc:00:00:01",
        None,
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "facts need the viewer certificate"
    );
    let n1: NodeView = get_json(&s, "/v1/nodes/node01").await;
    assert_eq!(
        (n1.state.as_str(), n1.installed, n1.reports),
        ("pending", false, 0)
    );
    assert!(n1.history.unwrap().is_empty());
    assert_eq!(n1.discovered.unwrap().facts.cpu.logical_cpus, 32);

    // Bad discovery documents.
    let mut many = discover_json("aa:bb:cc:00:00:02");
    many["nics"] = json!(
        (0..65)
            .map(|i| json!({"name": format!("eth{i}"), "mac": "aa:bb:cc:00:00:02"}))
            .collect::<Vec<_>>()
    );
    let (st, v) = post_json(&s, "/v1/discover", None, &many).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_discover"))
    );
    let mut bad_mac = discover_json("zz");
    bad_mac["primary_mac"] = json!("01:00:5e:00:00:01");
    let (st, _) = post_json(&s, "/v1/discover", None, &bad_mac).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let mut big = discover_json("aa:bb:cc:00:00:03");
    big["hostname"] = json!("h".repeat(65 * 1024));
    let (st, v) = post_json(&s, "/v1/discover", None, &big).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large"))
    );
    let mut extra = discover_json("aa:bb:cc:00:00:04");
    extra["bmc_password"] = json!("x");
    let (st, _) = post_json(&s, "/v1/discover", None, &extra).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(start_paused = true)]
async fn discovery_is_rate_limited_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        discover_burst: 3,
        discover_refill: Duration::from_secs(10),
        ..Config::default()
    };
    let s = state(runbook(), dir.path(), cfg);
    let from = |ip: &str| Peer {
        addr: Some(format!("{ip}:5000").parse().unwrap()),
        cert: None,
        lab: false,
    };
    for i in 0..3 {
        let (st, v) = post_json(
            &s,
            "/v1/discover",
            Some(from("10.0.100.150")),
            &discover_json(&format!("aa:bb:cc:00:01:0{i}")),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let (st, v) = post_json(
        &s,
        "/v1/discover",
        Some(from("10.0.100.150")),
        &discover_json("aa:bb:cc:00:01:09"),
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    let (st, _) = call(
        &s,
        "POST",
        "/v1/discover",
        Some(from("10.0.100.150")),
        Some("application/json"),
        discover_json("aa:bb:cc:00:01:09").to_string(),
    )
    .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    // Another source is not affected.
    let (st, _) = post_json(
        &s,
        "/v1/discover",
        Some(from("10.0.100.151")),
        &discover_json("aa:bb:cc:00:02:01"),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    tokio::time::advance(Duration::from_secs(11)).await;
    let (st, _) = post_json(
        &s,
        "/v1/discover",
        Some(from("10.0.100.150")),
        &discover_json("aa:bb:cc:00:01:09"),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let m = metrics(&s).await;
    assert_eq!(
        metric(
            &m,
            "plasma_collector_discover_total{result=\"rate_limited\"} "
        ),
        2
    );
    assert_eq!(
        metric(&m, "plasma_collector_discover_total{result=\"stored\"} "),
        5
    );
}

#[tokio::test]
async fn a_full_discovered_table_evicts_the_least_recently_seen_unknown_machine() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        store: collector::store::Limits {
            discovered: Budget {
                rows: 3,
                bytes: usize::MAX,
            },
            ..Default::default()
        },
        discover_burst: 100,
        ..Config::default()
    };
    let s = state(runbook(), dir.path(), cfg);
    let post = |m: &'static str| {
        let s = s.clone();
        async move {
            // Distinct report times: eviction goes by the last report.
            tokio::time::sleep(Duration::from_millis(3)).await;
            post_json(&s, "/v1/discover", None, &discover_json(m)).await
        }
    };
    // An inventory node's MAC takes a row and is never evicted.
    let (st, v) = post("52:54:00:12:34:56").await;
    assert_eq!(
        (st, &v["inventory_node"]),
        (StatusCode::OK, &json!("node01"))
    );
    for m in ["aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02"] {
        assert_eq!(post(m).await.0, StatusCode::OK);
    }
    // 01 reports again: 02 is now the least recently seen.
    assert_eq!(post("aa:bb:cc:00:00:01").await.0, StatusCode::OK);
    let (st, v) = post("aa:bb:cc:00:00:03").await;
    assert_eq!(st, StatusCode::OK, "a new MAC is never refused: {v}");
    let rows = collector_support::db_discovered_macs;
    let db = dir.path().join("collector.db");
    assert_eq!(
        rows(&db),
        [
            "52:54:00:12:34:56",
            "aa:bb:cc:00:00:01",
            "aa:bb:cc:00:00:03"
        ],
        "the row is gone from the database, not only from memory"
    );
    let fleet: FleetView = get_json(&s, "/v1/nodes").await;
    let listed: Vec<(&str, u64)> = fleet
        .unknown_discovered
        .iter()
        .map(|d| (d.mac.as_str(), d.count))
        .collect();
    assert_eq!(listed, [("aa:bb:cc:00:00:03", 1), ("aa:bb:cc:00:00:01", 2)]);
    assert_eq!(fleet.unknown_discovered_total, 2);
    assert!(
        metrics(&s)
            .await
            .contains("plasma_collector_discovered_evicted 1\n")
    );
    // The inventory MAC again, with the table full of newer reports: still accepted, and it
    // evicts an unknown machine rather than itself.
    assert_eq!(post("aa:bb:cc:00:00:04").await.0, StatusCode::OK);
    assert_eq!(post("52:54:00:12:34:56").await.0, StatusCode::OK);
    assert_eq!(
        rows(&db),
        [
            "52:54:00:12:34:56",
            "aa:bb:cc:00:00:03",
            "aa:bb:cc:00:00:04"
        ]
    );
    // Stored facts are bounded: 64 disks with 500-byte models pass every per-field limit and
    // still exceed 16 KiB.
    let mut big = discover_json("aa:bb:cc:00:00:01");
    big["disks"] = json!(
        (0..64)
            .map(
                |i| json!({"name": format!("sd{i}"), "size_bytes": 1u64 << 40, "by_id": [],
                        "model": "m".repeat(500)})
            )
            .collect::<Vec<_>>()
    );
    let (st, v) = post_json(&s, "/v1/discover", None, &big).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("facts_too_large")),
        "{v}"
    );
}

#[tokio::test]
async fn health_answers_only_when_the_database_does() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(runbook(), dir.path(), Config::default());
    let (st, b) = call(&s, "GET", "/health", None, None, Body::empty()).await;
    assert_eq!(st, StatusCode::OK);
    let v = serde_json::from_slice::<Value>(&b).unwrap();
    assert_eq!(v["status"], "healthy", "{v}");
    assert_eq!(v["store"]["state"], "ok", "{v}");
    std::fs::remove_file(dir.path().join("collector.db")).unwrap();
    let (st, b) = call(&s, "GET", "/health", None, None, Body::empty()).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["status"],
        "unhealthy"
    );
}

#[tokio::test]
async fn dashboard_and_unknown_routes() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(runbook(), dir.path(), Config::default());
    let (st, b) = call(&s, "GET", "/", None, None, Body::empty()).await;
    assert_eq!(st, StatusCode::OK);
    let html = String::from_utf8(b).unwrap();
    assert!(html.contains("/v1/events") && html.contains("/v1/nodes"));
    // Self-contained: nothing is loaded from another origin.
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("<script src")
    );
    let (st, b) = call(&s, "GET", "/v2/nope", None, None, Body::empty()).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["error"],
        "not_found"
    );
    let (st, b) = call(&s, "GET", "/v1/reports", None, None, Body::empty()).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["error"],
        "method_not_allowed"
    );
}

#[tokio::test]
async fn provisioning_steps_are_operator_only_bounded_and_shown_as_the_last_message() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(runbook(), dir.path(), Config::default());
    let step = json!({"step": "install", "ok": true, "message": "nixos-anywhere"});
    let uri = "/v1/nodes/node02/provision";
    let (st, _) = post_json(&s, uri, None, &step).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, v) = post_json(&s, uri, Some(node_peer("node02")), &step).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_operator"))
    );
    for bad in [
        json!({"step": "Install!", "ok": true, "message": ""}),
        json!({"step": "", "ok": true, "message": ""}),
        json!({"step": "install", "ok": true, "message": "x".repeat(2000)}),
        json!({"step": "install", "ok": true, "message": "", "extra": 1}),
    ] {
        let (st, v) = post_json(&s, uri, Some(operator_peer()), &bad).await;
        assert!(st.is_client_error(), "{bad}: {st} {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    let (st, v) = post_json(
        &s,
        "/v1/nodes/node99/provision",
        Some(operator_peer()),
        &step,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");

    let failed = json!({"step": "guard", "ok": false, "message": "answers as a live system"});
    let (st, v) = post_json(&s, uri, Some(operator_peer()), &failed).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let node: NodeView = get_json(&s, "/v1/nodes/node02").await;
    assert_eq!(
        node.last_message.as_deref(),
        Some("provision FAILED guard: answers as a live system")
    );
    let history = node.history.unwrap();
    assert_eq!(history[0].kind, "provision");
    assert_eq!(history[0].phase.as_deref(), Some("guard"));
    assert_eq!(history[0].status.as_deref(), Some("error"));
    assert_eq!(history[0].actor.as_deref(), Some("operator"));
    // A step is no installation: the node still netboots.
    assert!(!node.installed);
}

/// Malformed paths and queries get the documented JSON error, not axum's text/plain, on the
/// API and on the boot listener.
#[tokio::test]
async fn malformed_paths_and_queries_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(runbook(), dir.path(), Config::default());
    for (uri, code) in [
        ("/v1/nodes/%FF%FE", "bad_path"),
        ("/v1/nodes/node01?limit=-1", "bad_query"),
        ("/v1/nodes/node01?limit=x", "bad_query"),
        ("/v1/nodes/%FF%FE/installed", "bad_path"),
    ] {
        let method = if uri.ends_with("installed") {
            "POST"
        } else {
            "GET"
        };
        let (st, b) = call(&s, method, uri, Some(operator_peer()), None, Body::empty()).await;
        assert_eq!(
            st,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            String::from_utf8_lossy(&b)
        );
        let v: Value = serde_json::from_slice(&b)
            .unwrap_or_else(|_| panic!("{uri}: not JSON: {}", String::from_utf8_lossy(&b)));
        assert_eq!(v["error"], code, "{uri}: {v}");
    }
    let resp = collector::boot_app(s.clone())
        .oneshot(
            Request::get("/boot/%ff%fe.ipxe")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
}

/// Each with its own `at`, as an agent's reports are: identical ones are one report sent twice
/// and stored once (collector/src/store/resent.rs).
fn report_from(node: &str, phase: Phase, installation: &str) -> Value {
    static SENT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut v = report_json(node, "system", phase);
    v["installation"] = json!(installation);
    v["at"] = json!(format!("2026-11-24T05:00:00.{n:06}Z"));
    v
}

/// Issue 14, finding 3: after `reprovision`, the old system's join unit (restart-looping, the
/// reason for the reprovision) keeps sending `booted`; those reports are stored and shown but
/// no longer mark the node installed, also after a restart of the collector. Only a report of
/// another installation (a fresh system's machine id) does.
#[tokio::test]
async fn a_reprovision_sticks_until_a_new_installation_reports() {
    let dir = tempfile::tempdir().unwrap();
    let inv = runbook();
    let n1 = inv.node("node01").unwrap().clone();
    let netboot = pxe::netboot_script(&inv, &n1).unwrap();
    let old = "0123456789abcdef0123456789abcdef";
    let new = "fedcba9876543210fedcba9876543210";
    let node01 = || Some(node_peer("node01"));
    let view = |s: AppState| async move { get_json::<NodeView>(&s, "/v1/nodes/node01").await };
    {
        let s = state(inv.clone(), dir.path(), Config::default());
        let (st, v) = post_json(
            &s,
            "/v1/reports",
            node01(),
            &report_from("node01", Phase::Booted, old),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert!(view(s.clone()).await.installed);
        let (st, _) = post_json(
            &s,
            "/v1/nodes/node01/reprovision",
            Some(operator_peer()),
            &json!({}),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        // The old system keeps reporting: stored, shown, nothing changes.
        for phase in [Phase::Booted, Phase::Joined] {
            let (st, v) = post_json(
                &s,
                "/v1/reports",
                node01(),
                &report_from("node01", phase, old),
            )
            .await;
            assert_eq!(st, StatusCode::OK, "{v}");
        }
        let n = view(s.clone()).await;
        assert!(
            !n.installed,
            "the old installation marked the node installed: {n:?}"
        );
        assert!(
            n.last_message
                .as_deref()
                .unwrap_or("")
                .starts_with("ignored"),
            "{n:?}"
        );
        // report, reprovision, and the two ignored reports, each with its installation.
        let h = n.history.as_ref().unwrap();
        assert_eq!(h.len(), 4, "old reports are stored: {h:?}");
        assert_eq!(h[3].kind, "report");
        assert_eq!(h[3].actor.as_deref(), Some(old));
        assert_eq!(
            boot(&s, "52-54-00-12-34-56.ipxe").await.1,
            netboot,
            "reinstalls"
        );
    }
    // After a restart the history replays to the same answer.
    {
        let s = state(inv.clone(), dir.path(), Config::default());
        assert!(
            !view(s.clone()).await.installed,
            "replay forgot the reprovision"
        );
        let (st, _) = post_json(
            &s,
            "/v1/reports",
            node01(),
            &report_from("node01", Phase::Booted, old),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        assert!(!view(s.clone()).await.installed);
        // The new installation's first report counts.
        let (st, _) = post_json(
            &s,
            "/v1/reports",
            node01(),
            &report_from("node01", Phase::Booted, new),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        let n = view(s.clone()).await;
        assert!(n.installed, "{n:?}");
        assert_ne!(boot(&s, "52-54-00-12-34-56.ipxe").await.1, netboot);
    }
    // An installation id that is not 32 hex digits is refused.
    let s = state(inv, dir.path(), Config::default());
    let (st, v) = post_json(
        &s,
        "/v1/reports",
        node01(),
        &report_from("node01", Phase::Booted, "XYZ"),
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_report"))
    );
}
