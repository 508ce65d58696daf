//! The agent against a leader that applies one membership change at a time
//! (docs/admin-api.md, "Membership changes"): "reconfiguration in progress" with `Retry-After`,
//! lost add responses and an election, on the fleet simulator with tokio's paused clock.

use std::time::Duration;

use futures_util::future::join_all;
use plasma_agent::Outcome;
use plasma_tests::agent;
use plasma_tests::fleet_sim::{FleetSim, FleetSimOptions};
use plasma_tests::pki::TestPki;
use plasma_tests::sink::ReportSink;
use serde_json::Value;

fn config(
    sim: &FleetSim,
    pki: &TestPki,
    id: &str,
    i: usize,
    collector: &str,
) -> plasma_wire::ClusterConfig {
    // A follower first, as a real join URL list may start: its hint leads to the leader.
    let joins = vec![sim.url(1).to_owned(), sim.url(0).to_owned()];
    agent::config(
        id,
        &format!("10.1.0.{i}:2380"),
        &sim.local_url(id),
        &joins,
        &[],
        pki.node_tls(id),
        collector,
    )
}

/// One join per id, each with its own configuration and state directory, to run together.
fn joins(
    sim: &FleetSim,
    pki: &TestPki,
    dir: &std::path::Path,
    ids: &[&str],
    collector: &str,
) -> Vec<impl Future<Output = agent::Run> + use<>> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let cfg = agent::write_config(dir, &config(sim, pki, id, i, collector));
            let state = dir.join(id);
            async move { agent::join(&cfg, "chainfire", &state).await }
        })
        .collect()
}

/// The busy answers a run logged, with the delay it chose after each.
fn busy_waits(run: &agent::Run) -> Vec<u64> {
    run.logs
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("reconfiguration in progress"))
        })
        .map(|l| l["retry_in_ms"].as_u64().expect("retry_in_ms"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn busy_leader_is_asked_again_after_retry_after_and_directly() {
    let sim = FleetSim::start(FleetSimOptions {
        change_time: Duration::from_secs(8),
        catch_up: Duration::from_millis(100),
        retry_after_secs: Some(3),
        ..FleetSimOptions::default()
    })
    .await;
    let sink = ReportSink::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new("fleet");
    let runs = joins(&sim, &pki, dir.path(), &["w1", "w2"], &sink.url);
    let [a, b]: [agent::Run; 2] = join_all(runs).await.try_into().ok().unwrap();
    for r in [&a, &b] {
        assert!(matches!(r.result, Ok(Outcome::Joined)), "{:?}", r.result);
    }
    let stats = sim.stats();
    assert_eq!(stats.adds_applied, 2);
    assert!(stats.added_twice.is_empty());
    // Each agent met the follower once; after a busy answer it asked the leader directly.
    assert_eq!(stats.adds_not_leader, 2, "{stats:?}");
    let waits: Vec<u64> = busy_waits(&a).into_iter().chain(busy_waits(&b)).collect();
    assert!(
        !waits.is_empty(),
        "one agent waited behind the other's change"
    );
    // Never sooner than Retry-After, never more than half of it later than the backoff.
    assert!(waits.iter().all(|&w| w >= 3_000), "{waits:?}");
    assert!(waits.iter().all(|&w| w <= 10_000), "{waits:?}");
    // An 8 s change, a promotion, then the other: the leader saw a handful of adds, not a storm.
    let adds = stats.adds_applied + stats.adds_busy + stats.adds_not_leader;
    assert!(adds <= 12, "{stats:?}");
    let members: Vec<Value> = sim
        .members()
        .members
        .iter()
        .map(|m| serde_json::json!([m.id, m.status]))
        .collect();
    assert!(
        members.contains(&serde_json::json!(["w1", "healthy"])),
        "{members:?}"
    );
    assert!(
        members.contains(&serde_json::json!(["w2", "healthy"])),
        "{members:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn lost_responses_and_an_election_still_join_each_node_once() {
    let sim = FleetSim::start(FleetSimOptions {
        change_time: Duration::from_millis(50),
        catch_up: Duration::from_millis(50),
        lose_every: 2,
        ..FleetSimOptions::default()
    })
    .await;
    let sink = ReportSink::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let pki = TestPki::new("fleet");
    let runs = joins(&sim, &pki, dir.path(), &ids, &sink.url);
    let elect = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sim.elect(2, Duration::from_secs(2));
    };
    let (done, ()) = tokio::join!(join_all(runs), elect);
    for r in &done {
        assert!(matches!(r.result, Ok(Outcome::Joined)), "{:?}", r.result);
    }
    let stats = sim.stats();
    assert_eq!(stats.adds_applied, 8, "{stats:?}");
    assert!(stats.added_twice.is_empty());
    assert!(stats.responses_lost >= 4, "{stats:?}");
    // A lost response is retried and answered 409: success, not a second member.
    assert!(stats.adds_conflict >= stats.responses_lost - 1, "{stats:?}");
    assert_eq!(stats.elections, 1);
    assert_eq!(sim.leader(), Some(2));
    assert_eq!(sim.members().members.len(), 3 + 8);
    // Every report of every run reached the collector once.
    assert_eq!(sink.reports().len(), 8 * 5);
}

/// A join URL that only ever says "later" (a proxy in maintenance: 503 with `Retry-After`, no
/// leader hint) must not hold the agent: it waits as told, then tries the next join URL.
#[tokio::test(start_paused = true)]
async fn a_node_that_only_says_later_does_not_hold_the_agent() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    let sim = FleetSim::start(FleetSimOptions::default()).await;
    let hits = Arc::new(AtomicU32::new(0));
    let counted = hits.clone();
    let later = axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async {
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::RETRY_AFTER, "30")],
                "down for maintenance",
            )
        }
    });
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maintenance = format!("http://{}", tcp.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(tcp, later).await });

    let pki = TestPki::new("fleet");
    let sink = ReportSink::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&sim, &pki, "w1", 1, &sink.url);
    cfg.services.get_mut("chainfire").unwrap().join_urls = vec![maintenance, sim.url(0).to_owned()];
    let path = agent::write_config(dir.path(), &cfg);
    let run = agent::join(&path, "chainfire", &dir.path().join("w1")).await;
    assert!(
        matches!(run.result, Ok(Outcome::Joined)),
        "{:?}",
        run.result
    );
    // Its membership read and one add; then the next join URL (the leader) took the add.
    assert!(
        hits.load(Ordering::SeqCst) <= 2,
        "{}",
        hits.load(Ordering::SeqCst)
    );
    assert_eq!(sim.stats().adds_applied, 1);
    // The wait it was told: at least 30 s before the next attempt.
    let waits = busy_waits_any(&run);
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert!(waits[0] >= 30_000, "{waits:?}");
}

/// Every busy answer's chosen delay (whatever the server said).
fn busy_waits_any(run: &agent::Run) -> Vec<u64> {
    run.logs
        .iter()
        .filter_map(|l| l["retry_in_ms"].as_u64().filter(|_| l["at"].is_string()))
        .collect()
}
