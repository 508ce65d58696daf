//! What the collector keeps is bounded (issue 14), in-process: discovery's global rate, the
//! prune action and the paged list of unknown machines, the fleet list's cap, history
//! retention per node and service, and history pages behind a cursor. The flood from many
//! source addresses against a real collector process is in collector_discover_flood.rs.

mod collector_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use plasma_wire::Phase;
use plasmagen::collector::auth::{CertIdentity, Peer};
use plasmagen::collector::discovered_api::DiscoveredPage;
use plasmagen::collector::store::{WriteOp, rusqlite};
use plasmagen::collector::view::{FleetView, MAX_UNKNOWN_LISTED, NodeView};
use plasmagen::collector::{AppState, Config};
use serde_json::{Value, json};

use collector_support::inproc::{
    call, discover_json, get_json, node_peer, operator_peer, post_json,
};
use collector_support::{report, runbook, state};

fn from(addr: &str) -> Peer {
    Peer {
        addr: Some(format!("{addr}:40000").parse().unwrap()),
        cert: None,
        lab: false,
    }
}

fn viewer_peer() -> Peer {
    Peer {
        addr: Some("10.0.100.11:40000".parse().unwrap()),
        cert: Some(CertIdentity {
            common_name: "viewer".into(),
            dns_names: vec![],
        }),
        lab: false,
    }
}

fn unknown_mac(i: u32) -> String {
    format!(
        "aa:bb:cc:{:02x}:{:02x}:{:02x}",
        i >> 16,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

fn db_macs(dir: &Path) -> Vec<String> {
    collector_support::db_discovered_macs(&dir.join("collector.db"))
}

/// The store's history counter equals the rows (a restart checks it).
fn assert_counters_match(c: &rusqlite::Connection) {
    let (recorded, rows): (i64, i64) = c
        .query_row(
            "SELECT (SELECT history FROM store_meta), (SELECT count(*) FROM history)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(recorded, rows);
}

/// Store `n` unknown machines through the writer, concurrently (group commits).
async fn discovered(s: &AppState, n: u32) {
    let writes = (0..n).map(|i| {
        let mac = unknown_mac(i);
        let report = collector_support::machine_report(&mac);
        s.store.write(WriteOp::discover(mac, report, None))
    });
    for r in futures_util::future::join_all(writes).await {
        r.unwrap();
    }
}

#[tokio::test]
async fn discovery_from_many_addresses_shares_one_rate_and_inventory_macs_bypass_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        discover_global_burst: 5,
        discover_global_refill: Duration::from_secs(3600),
        ..Config::default()
    };
    let s = state(runbook(), dir.path(), cfg);
    for i in 0..5u32 {
        let (st, v) = post_json(
            &s,
            "/v1/discover",
            Some(from(&format!("10.0.100.{}", 100 + i))),
            &discover_json(&unknown_mac(i)),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    // A sixth address with a full bucket of its own: the global budget is spent.
    let (st, v) = post_json(
        &s,
        "/v1/discover",
        Some(from("10.0.100.200")),
        &discover_json(&unknown_mac(9)),
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
        "{v}"
    );
    assert!(
        v["message"].as_str().unwrap().contains("all addresses"),
        "{v}"
    );
    // An inventory node's MAC is never held back by others' reports.
    let (st, v) = post_json(
        &s,
        "/v1/discover",
        Some(from("10.0.100.201")),
        &discover_json("52:54:00:12:34:57"),
    )
    .await;
    assert_eq!(
        (st, v["inventory_node"].as_str()),
        (StatusCode::OK, Some("node02"))
    );
    assert_eq!(db_macs(dir.path()).len(), 6);
}

#[tokio::test]
async fn prune_forgets_unknown_machines_for_the_operator_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(runbook(), dir.path(), Config::default());
    discovered(&s, 4).await;
    s.store
        .write(WriteOp::discover(
            "52:54:00:12:34:56".into(),
            collector_support::machine_report("52:54:00:12:34:56"),
            None,
        ))
        .await
        .unwrap();
    let all = json!({});
    for (peer, status, code) in [
        (None, StatusCode::UNAUTHORIZED, "no_certificate"),
        (
            Some(node_peer("node01")),
            StatusCode::FORBIDDEN,
            "not_operator",
        ),
        (Some(viewer_peer()), StatusCode::FORBIDDEN, "not_operator"),
    ] {
        let (st, v) = post_json(&s, "/v1/discovered/prune", peer, &all).await;
        assert_eq!((st, v["error"].as_str()), (status, Some(code)), "{v}");
    }
    assert_eq!(
        db_macs(dir.path()).len(),
        5,
        "a refused prune removed nothing"
    );

    let (st, v) = post_json(
        &s,
        "/v1/discovered/prune",
        Some(operator_peer()),
        &json!({"macs": [unknown_mac(1), "AA-BB-CC-00-00-02", "52:54:00:12:34:56", "aa:bb:cc:ff:ff:ff"]}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["pruned"], json!([unknown_mac(1), unknown_mac(2)]));
    assert_eq!(v["kept_inventory"], json!(["52:54:00:12:34:56"]));
    assert_eq!(v["not_found"], json!(["aa:bb:cc:ff:ff:ff"]));
    assert_eq!(
        db_macs(dir.path()),
        ["52:54:00:12:34:56", &unknown_mac(0), &unknown_mac(3)]
    );
    let (st, v) = post_json(
        &s,
        "/v1/discovered/prune",
        Some(operator_peer()),
        &json!({"macs": ["not-a-mac"]}),
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body"))
    );

    // Everything unknown; the inventory node's facts stay.
    let (st, v) = post_json(&s, "/v1/discovered/prune", Some(operator_peer()), &all).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["pruned"].as_array().unwrap().len(), 2);
    assert_eq!(db_macs(dir.path()), ["52:54:00:12:34:56"]);
    let fleet: FleetView = get_json(&s, "/v1/nodes").await;
    assert_eq!(fleet.unknown_discovered_total, 0);
    let node: NodeView = get_json(&s, "/v1/nodes/node01").await;
    assert!(node.discovered.is_some());
    // The store's counters follow the deletes (a restart checks them against the rows).
    let c = rusqlite::Connection::open(dir.path().join("collector.db")).unwrap();
    let recorded: i64 = c
        .query_row("SELECT discovered FROM store_meta", [], |r| r.get(0))
        .unwrap();
    assert_eq!(recorded, 1);
}

#[tokio::test]
async fn unknown_machines_are_listed_in_pages_and_the_fleet_list_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(runbook(), dir.path(), Config::default());
    let n = MAX_UNKNOWN_LISTED as u32 + 5;
    discovered(&s, n).await;
    let fleet: FleetView = get_json(&s, "/v1/nodes").await;
    assert_eq!(fleet.unknown_discovered.len(), MAX_UNKNOWN_LISTED);
    assert_eq!(fleet.unknown_discovered_total, u64::from(n));

    let mut seen = Vec::new();
    let mut uri = "/v1/discovered?limit=400".to_string();
    let mut pages = 0;
    loop {
        let page: DiscoveredPage = get_json(&s, &uri).await;
        pages += 1;
        assert!(page.machines.len() <= 400);
        seen.extend(page.machines.into_iter().map(|m| m.mac));
        match page.next_after {
            Some(after) => uri = format!("/v1/discovered?limit=400&after={after}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..n).map(unknown_mac).collect();
    assert_eq!(seen, expected, "every machine once, in MAC order");
    // A page is never larger than the maximum, whatever is asked.
    let page: DiscoveredPage = get_json(&s, "/v1/discovered?limit=100000").await;
    assert_eq!(page.machines.len(), 1_000);
    let (st, b) = call(
        &s,
        "GET",
        "/v1/discovered?after=zz",
        Some(operator_peer()),
        None,
        Body::empty(),
    )
    .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_query"))
    );
    let (st, _) = call(
        &s,
        "GET",
        "/v1/discovered",
        Some(node_peer("node01")),
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "the list needs the viewer or operator certificate"
    );
}

fn history_ids(dir: &Path, node: &str, service: &str) -> Vec<(i64, String)> {
    let c = rusqlite::Connection::open(dir.join("collector.db")).unwrap();
    let mut st = c
        .prepare(
            "SELECT id, phase FROM history WHERE node = ?1 AND service = ?2 AND kind = 'report'
             ORDER BY id",
        )
        .unwrap();
    st.query_map([node, service], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// [`history_ids`] once the writer's idle prune has run: it runs just after a write is
/// acknowledged, so a read right after the last acknowledgement may come first.
async fn pruned_ids(dir: &Path, node: &str, service: &str, at_most: usize) -> Vec<(i64, String)> {
    let end = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ids = history_ids(dir, node, service);
        if ids.len() <= at_most || std::time::Instant::now() > end {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn send(s: &AppState, node: &str, service: &str, phase: Phase, n: usize) {
    for i in 0..n {
        let r = report(node, service, phase, &format!("{phase:?} {i}"));
        s.store.write(WriteOp::Report(r)).await.unwrap();
    }
}

#[tokio::test]
async fn history_keeps_the_last_reports_per_service_and_every_phase() {
    let dir = tempfile::tempdir().unwrap();
    let keep = 10u32;
    let s = collector_support::state_keeping(dir.path(), keep);
    send(&s, "node01", "chainfire", Phase::Booted, 3).await;
    send(&s, "node01", "chainfire", Phase::WaitingLocal, 60).await;
    send(&s, "node01", "chainfire", Phase::Joining, 40).await;
    send(&s, "node01", "flaredb", Phase::Joining, 5).await;
    send(&s, "node02", "chainfire", Phase::Joining, 30).await;

    let kept = pruned_ids(dir.path(), "node01", "chainfire", 2 * keep as usize).await;
    // Pruned down to keep (plus phase ends) once 2 x keep accumulate; never fewer than keep.
    assert!(
        (keep as usize..=2 * keep as usize).contains(&kept.len()),
        "{} rows: {kept:?}",
        kept.len()
    );
    let phases: BTreeSet<&str> = kept.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(
        phases,
        BTreeSet::from(["booted", "waiting-local", "joining"])
    );
    // The first and last report of each phase, whatever fell out between.
    let c = rusqlite::Connection::open(dir.path().join("collector.db")).unwrap();
    let msgs: Vec<String> = {
        let mut st = c
            .prepare(
                "SELECT message FROM history WHERE node = 'node01' AND service = 'chainfire'
                 ORDER BY id",
            )
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    for m in [
        "Booted 0",
        "Booted 2",
        "WaitingLocal 0",
        "WaitingLocal 59",
        "Joining 0",
        "Joining 39",
    ] {
        assert!(msgs.iter().any(|x| x == m), "{m} lost: {msgs:?}");
    }
    // The newest `keep` are all there, in order.
    let newest: Vec<String> = (30..40).map(|i| format!("Joining {i}")).collect();
    assert_eq!(&msgs[msgs.len() - keep as usize..], newest.as_slice());
    // Other services and nodes under the limit are untouched.
    assert_eq!(history_ids(dir.path(), "node01", "flaredb").len(), 5);
    assert!(history_ids(dir.path(), "node02", "chainfire").len() <= 2 * keep as usize);
    // The store's counters follow (a restart compares them with the rows).
    assert_counters_match(&c);
    // The node's state is the newest report's.
    let node: NodeView = get_json(&s, "/v1/nodes/node01").await;
    let cf = node
        .services
        .iter()
        .find(|x| x.service == "chainfire")
        .unwrap();
    assert_eq!(cf.phase, "joining");
}

#[tokio::test]
async fn reports_before_a_reprovision_are_never_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let s = collector_support::state_keeping(dir.path(), 5);
    let old = "0123456789abcdef0123456789abcdef";
    for i in 0..12 {
        let mut r = report("node03", "system", Phase::Booted, &format!("old {i}"));
        r.installation = Some(old.into());
        s.store.write(WriteOp::Report(r)).await.unwrap();
    }
    s.store
        .write(WriteOp::Reprovision {
            node: "node03".into(),
            actor: "operator".into(),
        })
        .await
        .unwrap();
    let before = history_ids(dir.path(), "node03", "system");
    // The replaced installation's join unit keeps reporting: stored, pruned, and what came
    // before the reprovision (which says which installation it retired) stays.
    for i in 0..40 {
        let mut r = report("node03", "system", Phase::Booted, &format!("late {i}"));
        r.installation = Some(old.into());
        s.store.write(WriteOp::Report(r)).await.unwrap();
    }
    let after = pruned_ids(dir.path(), "node03", "system", before.len() + 2 * 5).await;
    assert_eq!(&after[..before.len()], before.as_slice());
    assert!(after.len() - before.len() <= 2 * 5, "{}", after.len());
    let node: NodeView = get_json(&s, "/v1/nodes/node03").await;
    assert!(!node.installed, "the old installation must not count");
}

#[tokio::test]
async fn history_pages_follow_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(runbook(), dir.path(), Config::default());
    send(&s, "node01", "chainfire", Phase::Joining, 25).await;
    let mut ids: Vec<i64> = Vec::new();
    let mut uri = "/v1/nodes/node01?limit=10".to_string();
    let mut pages = 0;
    loop {
        let v: NodeView = get_json(&s, &uri).await;
        pages += 1;
        let h = v.history.unwrap();
        assert!(h.len() <= 10);
        assert!(
            h.windows(2).all(|w| w[0].id < w[1].id),
            "oldest first in a page"
        );
        // Older pages come later: prepend.
        ids.splice(0..0, h.iter().map(|e| e.id));
        match v.history_before {
            Some(b) => uri = format!("/v1/nodes/node01?limit=10&before={b}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 25);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "no entry twice: {ids:?}"
    );
    let (st, b) = call(
        &s,
        "GET",
        "/v1/nodes/node01?before=x",
        Some(operator_peer()),
        None,
        Body::empty(),
    )
    .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_query"))
    );
}

#[tokio::test]
async fn retention_holds_while_the_writer_is_never_idle() {
    let dir = tempfile::tempdir().unwrap();
    let keep = 10u32;
    let s = collector_support::state_keeping(dir.path(), keep);
    // 300 reports at once: large batches, a queue that is rarely empty, so prunes also run
    // inside the batches that write the reports (over 4 x keep).
    let writes = (0..300).map(|i| {
        let r = report("node01", "chainfire", Phase::Joining, &format!("burst {i}"));
        s.store.write(WriteOp::Report(r))
    });
    for r in futures_util::future::join_all(writes).await {
        r.unwrap();
    }
    // One more once the queue is empty: whatever is pending is pruned after it.
    send(&s, "node01", "chainfire", Phase::Joined, 1).await;
    let kept = pruned_ids(dir.path(), "node01", "chainfire", 2 * keep as usize).await;
    assert!(kept.len() <= 2 * keep as usize, "{} rows kept", kept.len());
    assert_eq!(kept.last().unwrap().1, "joined");
    let c = rusqlite::Connection::open(dir.path().join("collector.db")).unwrap();
    assert_counters_match(&c);
}
