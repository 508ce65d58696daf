//! The fleet at scale in CI (issue 15; bench/fleet.sh runs 1,000): 100 in-process agents join
//! one Raft cluster through the fleet-scale admin-API simulator (one change at a time, 20 ms
//! each, learners, two elections, every 7th add response lost) while reporting to the real
//! collector over mTLS, which is killed with SIGKILL halfway and restarted. Then the fleet list
//! and the dashboard (headless Chromium) at that size.

mod fleet_support;

use std::time::Duration;

use plasma_tests::fleet_sim::FleetSimOptions;

use fleet_support::{FleetOptions, run};

#[test]
fn a_hundred_agents_join_once_each_and_no_acknowledged_report_is_lost() {
    let work = tempfile::tempdir().unwrap();
    let agents = 100;
    let f = run(&FleetOptions {
        plasmagen: env!("CARGO_BIN_EXE_plasmagen").into(),
        work: work.path().to_owned(),
        agents,
        sim: FleetSimOptions {
            change_time: Duration::from_millis(20),
            catch_up: Duration::from_millis(100),
            lose_every: 7,
            ..FleetSimOptions::default()
        },
        join_timeout_secs: 120,
        election: Some(Duration::from_millis(500)),
        kill_collector_at: Some(0.5),
        collector_down: Duration::from_secs(1),
        dashboard: true,
    });
    eprintln!("{}", f.line());
    assert!(f.failures.is_empty(), "{:#?}", f.failures);
    assert_eq!(f.joined, agents);
    // Each node added once, each add's lost response answered 409 on the retry.
    assert!(f.stats.added_twice.is_empty(), "{:?}", f.stats.added_twice);
    assert_eq!(f.stats.adds_applied, agents as u64);
    assert_eq!(f.stats.promotions, agents as u64);
    assert!(f.stats.responses_lost >= 10, "{:?}", f.stats);
    assert_eq!(f.stats.elections, 2);
    assert_eq!(f.collector_restarts, 1);
    // 200 changes of 20 ms: the herd needs at least 4 s; the agents' backoff must not turn it
    // into minutes (cap 10 s between attempts).
    assert!(f.join_s < 90.0, "{}", f.line());
    // Bounded: every waiting agent asks at most about once per 5 s once backed off, plus
    // the first attempts; a lockstep herd (every agent every 0.5 s) would be ~200/s.
    assert!(f.stats.leader_rps_mean() < 60.0, "{}", f.line());
    // Every report: 5 per agent, acknowledged, stored once, none lost.
    assert_eq!(f.lost, 0, "{}", f.line());
    assert_eq!(f.spooled, 0, "{}", f.line());
    assert_eq!(f.acked, 5 * agents, "{}", f.line());
    assert_eq!(f.duplicates, 0, "{}", f.line());
    assert_eq!(f.stored, f.acked, "{}", f.line());
    // Reads at this size.
    assert_eq!(f.reads.nodes_listed, agents + 3);
    let d = f.reads.dashboard.as_ref().expect("dashboard measured");
    assert_eq!(d.render.rows, agents + 3);
}
