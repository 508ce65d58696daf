//! bench/fleet.sh: N agents (default 1,000) join one Raft cluster and report to the real
//! collector; prints the `fleet …` figures line last. See tests/fleet_support/mod.rs.
//!
//! fleet <PLASMAGEN> <WORK> [AGENTS] [CHANGE_MS]

#[path = "../tests/fleet_support/mod.rs"]
mod fleet_support;

use std::process::ExitCode;
use std::time::Duration;

use plasma_tests::fleet_sim::FleetSimOptions;

fn main() -> ExitCode {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (Some(bin), Some(work)) = (a.first(), a.get(1)) else {
        eprintln!("usage: fleet <PLASMAGEN> <WORK> [AGENTS] [CHANGE_MS]");
        return ExitCode::from(2);
    };
    let agents = a.get(2).map_or(1000, |s| s.parse().expect("AGENTS"));
    let change_ms = a.get(3).map_or(200, |s| s.parse().expect("CHANGE_MS"));
    let sim = FleetSimOptions {
        change_time: Duration::from_millis(change_ms),
        lose_every: 50,
        ..FleetSimOptions::default()
    };
    // Two changes per node (add, promote) one at a time: the deadline must cover the queue.
    let queue_s = 2 * agents as u64 * change_ms / 1000;
    let f = fleet_support::run(&fleet_support::FleetOptions {
        plasmagen: bin.into(),
        work: work.into(),
        agents,
        sim,
        join_timeout_secs: 300 + 2 * queue_s,
        election: Some(Duration::from_secs(2)),
        kill_collector_at: Some(0.5),
        collector_down: Duration::from_secs(3),
        dashboard: true,
    });
    for e in f.failures.iter().take(10) {
        eprintln!("failed: {e}");
    }
    println!("{}", f.line());
    let ok = f.failures.is_empty()
        && f.joined == agents
        && f.lost == 0
        && f.stats.added_twice.is_empty();
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
