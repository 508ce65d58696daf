//! Collector reports: best effort, bounded delay, spooled and delivered on the next contact.
//! Also wait-healthy (the IAM gate) and bad configurations, driven in-process.

use std::time::Duration;

use plasma_agent::Outcome;
use plasma_tests::agent;
use plasma_tests::sim::{Sim, SimOptions};
use plasma_tests::sink::{Blackhole, ReportSink, closed_port_url};
use plasma_wire::{Phase, ReportStatus};

const ALL_JOIN_PHASES: [Phase; 5] = [
    Phase::Booted,
    Phase::WaitingLocal,
    Phase::LocalHealthy,
    Phase::Joining,
    Phase::Joined,
];

async fn node04_config(sim: &Sim, collector: &str) -> plasma_wire::ClusterConfig {
    let tls = sim.pki.as_ref().unwrap().node_tls("node04");
    agent::config(
        "node04",
        &sim.raft_addr(3),
        &sim.url(3),
        &[sim.url(0)],
        &[],
        tls,
        collector,
    )
}

#[tokio::test(start_paused = true)]
async fn collector_down_does_not_block_and_reports_are_delivered_later() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    // Reference: the same join with a working collector.
    let ok_sink = ReportSink::start(sim.pki.as_ref().map(|p| p.server_config())).await;
    let cfg_ok = agent::write_config(dir.path(), &node04_config(&sim, &ok_sink.url).await);
    let reference = agent::join(&cfg_ok, "chainfire", &dir.path().join("ref")).await;
    assert!(matches!(reference.result, Ok(Outcome::Joined)));
    assert_eq!(
        ok_sink
            .reports()
            .iter()
            .map(|r| r.phase)
            .collect::<Vec<_>>(),
        ALL_JOIN_PHASES
    );
    assert!(!plasma_agent::report::spool_path(&dir.path().join("ref"), "chainfire").exists());

    // A collector that accepts connections and never answers: the worst case. Use a fresh
    // cluster so that the node is really added again.
    let sim = Sim::start(SimOptions::default()).await;
    let hole = Blackhole::start().await;
    let cfg = agent::write_config(dir.path(), &node04_config(&sim, &hole.url("https")).await);
    let run = agent::join(&cfg, "chainfire", &state).await;
    assert!(
        matches!(run.result, Ok(Outcome::Joined)),
        "{:?}",
        run.result
    );
    // The join itself: one report timeout (2 s) at most, not one per phase.
    let extra = joined_at(&run).saturating_sub(joined_at(&reference));
    assert!(
        extra <= Duration::from_millis(2_500),
        "collector cost {extra:?}"
    );
    // After the first failure the collector is retried after 1 s, 2 s, 4 s, … — also while the
    // run ends (DRAIN_BUDGET) — never once per report.
    let tries = hole.connections();
    assert!((2..=6).contains(&tries), "{tries} connections");
    let most = joined_at(&run) + plasma_agent::report::DRAIN_BUDGET + Duration::from_secs(2);
    assert!(run.elapsed <= most, "{:?}", run.elapsed);
    assert!(run.line("collector unreachable").is_some());
    assert!(run.line("reports stay spooled for the next run").is_some());
    let spool = plasma_agent::report::spool_path(&state, "chainfire");
    let spooled = plasma_agent::report::read_spool(&spool);
    assert_eq!(
        spooled.iter().map(|r| r.phase).collect::<Vec<_>>(),
        ALL_JOIN_PHASES
    );
    assert!(
        spooled
            .iter()
            .all(|r| r.node_id == "node04" && r.service == "chainfire")
    );

    // A later run (here: the re-run with marker) reaches the collector: spool first, in order.
    let sink = ReportSink::start(sim.pki.as_ref().map(|p| p.server_config())).await;
    let cfg = agent::write_config(dir.path(), &node04_config(&sim, &sink.url).await);
    let again = agent::join(&cfg, "chainfire", &state).await;
    assert!(matches!(again.result, Ok(Outcome::AlreadyJoined)));
    let got = sink.reports();
    assert_eq!(got.len(), 6, "{got:#?}");
    assert_eq!(
        &got[..5],
        &spooled[..],
        "spooled reports delivered unchanged, oldest first"
    );
    assert_eq!(
        (got[5].phase, got[5].status),
        (Phase::Joined, ReportStatus::Ok)
    );
    assert_eq!(got[5].message, "already joined");
    assert!(!spool.exists(), "spool removed once delivered");
}

#[tokio::test(start_paused = true)]
async fn refused_collector_costs_nothing_and_spools() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = agent::write_config(
        dir.path(),
        &node04_config(&sim, &closed_port_url("https").await).await,
    );
    let run = agent::join(&cfg, "chainfire", &dir.path().join("s")).await;
    assert!(matches!(run.result, Ok(Outcome::Joined)));
    let spooled = plasma_agent::report::read_spool(&plasma_agent::report::spool_path(
        &dir.path().join("s"),
        "chainfire",
    ));
    assert_eq!(spooled.len(), 5);
    assert!(
        joined_at(&run) < Duration::from_secs(2),
        "{:?}",
        run.elapsed
    );
}

/// When the run logged "Cluster join complete" (its `elapsed_ms`, tokio's clock).
fn joined_at(run: &agent::Run) -> Duration {
    let line = run.line("Cluster join complete").expect("join complete");
    Duration::from_millis(line["elapsed_ms"].as_u64().expect("elapsed_ms"))
}

#[tokio::test(start_paused = true)]
async fn wait_healthy_gates_on_expected_fields() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = ReportSink::start(sim.pki.as_ref().map(|p| p.server_config())).await;
    let mut cfg = node04_config(&sim, &sink.url).await;
    cfg.health_timeout_secs = 10;
    let cfg = agent::write_config(dir.path(), &cfg);
    let health = format!("{}/health", sim.url(0));

    let ok = agent::wait_healthy(
        &cfg,
        &health,
        &["raft=leader", "cluster_size=3"],
        dir.path(),
    )
    .await;
    assert!(
        matches!(ok.result, Ok(Outcome::Healthy)),
        "{:?} {:#?}",
        ok.result,
        ok.messages()
    );
    assert!(ok.line("Local iam healthy").is_some());

    // node02 is a follower: "raft=leader" never holds → exit 75 naming the field.
    let follower = format!("{}/health", sim.url(1));
    let bad = agent::wait_healthy(&cfg, &follower, &["raft=leader"], dir.path()).await;
    assert_eq!(bad.exit_code, 75);
    let msg = bad.logs.iter().find(|l| l["level"] == "ERROR").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("Health check timeout after 10s") && msg.contains("\"raft\" is \"follower\""),
        "{msg}"
    );
    assert!(bad.elapsed >= Duration::from_secs(10) && bad.elapsed < Duration::from_secs(12));
    let phases: Vec<Phase> = sink
        .reports()
        .iter()
        .filter(|r| r.service == "iam")
        .map(|r| r.phase)
        .collect();
    assert_eq!(
        phases,
        [
            Phase::WaitingLocal,
            Phase::LocalHealthy,
            Phase::WaitingLocal,
            Phase::Failed
        ]
    );

    let arg = agent::wait_healthy(&cfg, &health, &["nokeyvalue"], dir.path()).await;
    assert_eq!(arg.exit_code, 2);
}

/// Turns a valid config into a broken one.
type Edit = Box<dyn Fn(&mut serde_json::Value)>;

#[tokio::test]
async fn bad_config_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let tls = plasma_wire::TlsPaths {
        ca: "/nonexistent/ca.pem".into(),
        cert: "/nonexistent/c.pem".into(),
        key: "/nonexistent/k.pem".into(),
    };
    let base = agent::config(
        "node04",
        "10.0.200.20:2380",
        "https://127.0.0.1:1",
        &["https://127.0.0.1:2".into()],
        &[],
        tls,
        "https://127.0.0.1:3",
    );

    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|v| v["services"]["chainfire"]["join_urls"] = serde_json::json!([])),
            "services.chainfire.join_urls",
        ),
        (
            Box::new(|v| v["services"]["chainfire"]["local_url"] = "localhost:2379".into()),
            "services.chainfire.local_url",
        ),
        (Box::new(|v| v["bootstrap"] = true.into()), "initial_peers"),
        (
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("node_id");
            }),
            "node_id",
        ),
        (Box::new(|v| v["bootstrap"] = "yes".into()), "bootstrap"),
        (Box::new(|v| v["extra_field"] = 1.into()), "extra_field"),
        // Valid JSON, https everywhere, but the CA file is missing.
        (Box::new(|_| {}), "tls.ca"),
    ];
    for (i, (edit, field)) in cases.iter().enumerate() {
        let mut v = serde_json::to_value(&base).unwrap();
        edit(&mut v);
        let p = dir.path().join(format!("c{i}.json"));
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        let run = agent::join(&p, "chainfire", &state).await;
        assert_eq!(run.exit_code, 2, "case {field}: {:?}", run.result);
        let msg = run.logs.iter().find(|l| l["level"] == "ERROR").unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(msg.contains(field), "case {field}: {msg}");
    }
    let missing = agent::join(&dir.path().join("absent.json"), "chainfire", &state).await;
    assert_eq!(missing.exit_code, 2);
    assert!(missing.line("Configuration file not found").is_some());
    assert!(!state.exists(), "nothing written for a bad config");
}

/// Every report names the installation that sent it (a keyed hash of /etc/machine-id, see
/// agent/src/installation.rs): the collector tells a reprovisioned node's old system from the
/// new one by it.
#[tokio::test(start_paused = true)]
async fn every_report_names_its_installation() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = ReportSink::start(sim.pki.as_ref().map(|p| p.server_config())).await;
    let cfg = agent::write_config(dir.path(), &node04_config(&sim, &sink.url).await);
    let id =
        plasma_agent::installation::from_machine_id("4c4c4544004a3510804bb4c04f4e3333").unwrap();
    let run = agent::join_as(&cfg, "chainfire", &dir.path().join("s"), &id).await;
    assert!(
        matches!(run.result, Ok(Outcome::Joined)),
        "{:?}",
        run.result
    );
    let reports = sink.reports();
    assert_eq!(reports.len(), ALL_JOIN_PHASES.len());
    for r in &reports {
        assert_eq!(r.installation.as_deref(), Some(id.as_str()), "{r:?}");
    }
}
