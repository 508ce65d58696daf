//! A report the agent sends again (its answer was lost, or the collector died after the commit)
//! is acknowledged and stored once, also after a restart (collector/src/store/resent.rs).

mod collector_support;

use std::path::Path;

use axum::http::StatusCode;
use plasma_wire::Phase;
use plasmagen::collector::Config;
use plasmagen::collector::store::rusqlite;
use plasmagen::collector::view::NodeView;
use serde_json::json;

use collector_support::inproc::{get_json, node_peer, post_json};
use collector_support::{report, runbook, state};

fn rows(dir: &Path, node: &str) -> i64 {
    let c = rusqlite::Connection::open(dir.join("collector.db")).unwrap();
    c.query_row(
        "SELECT count(*) FROM history WHERE node = ?1 AND kind = 'report'",
        [node],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test]
async fn a_resent_report_is_stored_once_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = report(
        "node01",
        "chainfire",
        Phase::Joining,
        "joining as 10.0.200.10:2380",
    );
    let mut later = first.clone();
    later.at = "2026-11-24T05:00:00.250713Z".into();
    let mut flaredb = first.clone();
    flaredb.service = "flaredb".into();
    {
        let s = state(runbook(), dir.path(), Config::default());
        for r in [&first, &first, &later, &flaredb, &later] {
            let (st, body) =
                post_json(&s, "/v1/reports", Some(node_peer("node01")), &json!(r)).await;
            assert_eq!(st, StatusCode::OK, "{body}");
            assert_eq!(body["status"], "stored");
        }
        // Same phase and message at another instant, or another service: other reports.
        assert_eq!(rows(dir.path(), "node01"), 3);
        let view: NodeView = get_json(&s, "/v1/nodes/node01").await;
        assert_eq!(view.reports, 3);
    }
    // Restarted on the same database: the window is read back from the history.
    let s = state(runbook(), dir.path(), Config::default());
    let (st, _) = post_json(&s, "/v1/reports", Some(node_peer("node01")), &json!(first)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(rows(dir.path(), "node01"), 3);
    // Another installation's identical report is not a resend.
    let mut other = first.clone();
    other.installation = Some("0123456789abcdef0123456789abcdef".into());
    let (st, _) = post_json(&s, "/v1/reports", Some(node_peer("node01")), &json!(other)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(rows(dir.path(), "node01"), 4);
    let view: NodeView = get_json(&s, "/v1/nodes/node01").await;
    assert_eq!(view.reports, 4);
}
