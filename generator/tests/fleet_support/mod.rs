//! The fleet at scale (issue 15): N agents, each with its own configuration and certificate,
//! join one Raft cluster (the fleet-scale admin-API simulator, plasma_tests::fleet_sim) while
//! they report every phase to the real collector over mTLS, which is killed with SIGKILL and
//! started again in the middle; leader elections are injected; then the collector's reads at
//! that size. Shared by tests/fleet_scale.rs (CI: 100 agents, short changes) and
//! examples/fleet.rs (bench/fleet.sh: 1,000 agents, the default 200 ms per change).
#![allow(dead_code)]

#[path = "../collector_support/big_fleet.rs"]
mod big_fleet;
#[path = "../collector_support/browser.rs"]
mod browser;
#[path = "../collector_support/dashboard_scale.rs"]
mod dashboard_scale;

mod agents;
mod collector;
mod reads;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use plasma_tests::fleet_sim::{FleetSim, FleetSimOptions, FleetStats};

pub use agents::AgentResult;
pub use reads::Reads;

pub struct FleetOptions {
    /// The `plasmagen` binary that runs the collector.
    pub plasmagen: PathBuf,
    /// Scratch directory: inventory, certificates, configurations, state, the database.
    pub work: PathBuf,
    pub agents: usize,
    pub sim: FleetSimOptions,
    pub join_timeout_secs: u64,
    /// Elections when a third and two thirds of the agents have joined, each this long.
    pub election: Option<Duration>,
    /// SIGKILL the collector when this share of agents has joined; restart it after `down`.
    pub kill_collector_at: Option<f64>,
    pub collector_down: Duration,
    /// Measure the dashboard in headless Chromium at the end.
    pub dashboard: bool,
}

#[derive(Debug)]
pub struct FleetFigures {
    pub agents: usize,
    pub joined: usize,
    pub failures: Vec<String>,
    pub join_s: f64,
    pub stats: FleetStats,
    /// Reports the agents got a 2xx for / rows stored / acknowledged but not stored.
    pub acked: usize,
    pub stored: usize,
    pub lost: usize,
    pub duplicates: usize,
    /// Reports never acknowledged (still spooled when the runs ended).
    pub spooled: usize,
    pub collector_restarts: u32,
    pub collector_p99_ms: f64,
    pub reads: Reads,
}

impl FleetFigures {
    /// The bench's last line.
    pub fn line(&self) -> String {
        let r = &self.reads;
        format!(
            "fleet agents={} joined={} join_s={:.1} leader_rps_mean={:.1} leader_rps_peak={} \
             acked={} stored={} lost={} duplicates={} spooled={} collector_p99_ms={:.1} \
             dashboard_render_ms={:.0} dashboard_update_ms={:.1} nodes_bytes={} nodes_p50_ms={:.1} nodes_p99_ms={:.1} \
             adds_busy={} elections={} responses_lost={} collector_restarts={}",
            self.agents,
            self.joined,
            self.join_s,
            self.stats.leader_rps_mean(),
            self.stats.leader_rps_peak(),
            self.acked,
            self.stored,
            self.lost,
            self.duplicates,
            self.spooled,
            self.collector_p99_ms,
            r.dashboard_render_ms,
            r.dashboard_update_ms,
            r.nodes_bytes,
            r.nodes_p50_ms,
            r.nodes_p99_ms,
            self.stats.adds_busy,
            self.stats.elections,
            self.stats.responses_lost,
            self.collector_restarts,
        )
    }
}

pub fn run(opts: &FleetOptions) -> FleetFigures {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The founders are inventory nodes 0..3 (simulated); agents are nodes 3.. .
    let fleet = big_fleet::write_fleet(&opts.work.join("fleet"), opts.agents + 3);
    let collector = collector::Collector::start(
        &opts.plasmagen,
        &opts.work,
        &fleet.inventory,
        &fleet.secrets,
    );
    eprintln!(
        "fleet: {} agents, collector at {}, {:?} per change",
        opts.agents, collector.url, opts.sim.change_time
    );
    let collector = Arc::new(std::sync::Mutex::new(collector));
    let (results, stats, join_s) = rt.block_on(join_all(opts, &fleet, collector.clone()));
    let reads = reads::measure(&rt, opts, &fleet, &collector.lock().unwrap().url);
    let c = collector.lock().unwrap();
    // The agents join chainfire; the dashboard's update is a flaredb report.
    let stored_rows = c.stored_reports("chainfire");
    summarise(
        opts,
        results,
        stats,
        join_s,
        &stored_rows,
        c.restarts,
        reads,
    )
}

async fn join_all(
    opts: &FleetOptions,
    fleet: &big_fleet::BigFleet,
    collector: Arc<std::sync::Mutex<collector::Collector>>,
) -> (Vec<AgentResult>, FleetStats, f64) {
    let sim = Arc::new(FleetSim::start(opts.sim.clone()).await);
    let url = collector.lock().unwrap().url.clone();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, host) in fleet.hosts.iter().enumerate().skip(3) {
        let cfg = agents::config_for(
            &sim,
            &opts.work,
            &fleet.secrets,
            host,
            &format!("10.200.{}.{}:2380", i / 250, i % 250 + 1),
            &url,
            opts.join_timeout_secs,
        );
        let state = opts.work.join("state").join(host);
        tasks.push(tokio::spawn(agents::run_one(cfg, state, host.clone())));
    }
    let watch = tokio::spawn(faults(
        opts.agents,
        sim.clone(),
        collector,
        FaultPlan {
            election: opts.election,
            kill_at: opts.kill_collector_at,
            down: opts.collector_down,
        },
    ));
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("agent task"));
    }
    watch.abort();
    let join_s = results
        .iter()
        .filter_map(|r| r.joined_at)
        .max()
        .unwrap_or_default()
        .as_secs_f64()
        .max(0.0);
    eprintln!(
        "fleet: all agent runs ended after {:.1}s",
        start.elapsed().as_secs_f64()
    );
    (results, sim.stats(), join_s)
}

struct FaultPlan {
    election: Option<Duration>,
    kill_at: Option<f64>,
    down: Duration,
}

/// Watches how many agents have joined and injects the faults at their marks.
async fn faults(
    agents: usize,
    sim: Arc<FleetSim>,
    collector: Arc<std::sync::Mutex<collector::Collector>>,
    plan: FaultPlan,
) {
    let mut elections = vec![(agents / 3, 1usize), (2 * agents / 3, 2usize)];
    if plan.election.is_none() {
        elections.clear();
    }
    let mut kill_at = plan.kill_at.map(|f| (agents as f64 * f) as usize);
    let mut last_report = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let healthy = sim
            .members()
            .members
            .iter()
            .filter(|m| !m.id.starts_with("founder") && m.status == "healthy")
            .count();
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!("fleet: {healthy}/{agents} joined");
            last_report = Instant::now();
        }
        if let Some(&(mark, next)) = elections.first()
            && healthy >= mark
        {
            eprintln!(
                "fleet: election at {healthy} joined, founder{} leads next",
                next + 1
            );
            sim.elect(next, plan.election.unwrap_or_default());
            elections.remove(0);
        }
        if let Some(mark) = kill_at
            && healthy >= mark
        {
            kill_at = None;
            eprintln!("fleet: SIGKILL to the collector at {healthy} joined");
            collector.lock().unwrap().kill();
            tokio::time::sleep(plan.down).await;
            let c = collector.clone();
            tokio::task::spawn_blocking(move || c.lock().unwrap().restart())
                .await
                .expect("restart");
            eprintln!("fleet: collector restarted");
        }
    }
}

fn summarise(
    opts: &FleetOptions,
    results: Vec<AgentResult>,
    stats: FleetStats,
    join_s: f64,
    stored_rows: &[(String, String, String, String)],
    restarts: u32,
    reads: Reads,
) -> FleetFigures {
    let stored: HashSet<(&str, &str, &str)> = stored_rows
        .iter()
        .map(|(n, p, at, _)| (n.as_str(), p.as_str(), at.as_str()))
        .collect();
    let distinct: HashSet<&(String, String, String, String)> = stored_rows.iter().collect();
    let mut acked = 0;
    let mut lost = 0;
    let mut latency = Vec::new();
    for r in &results {
        for (phase, at) in &r.acked {
            acked += 1;
            if !stored.contains(&(r.node.as_str(), phase.as_str(), at.as_str())) {
                lost += 1;
            }
        }
        latency.extend(r.report_latency.iter().copied());
    }
    latency.sort();
    let p99 = latency
        .get(((latency.len() as f64 - 1.0) * 0.99).round() as usize)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    FleetFigures {
        agents: opts.agents,
        joined: results.iter().filter(|r| r.joined).count(),
        failures: results
            .iter()
            .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.node)))
            .collect(),
        join_s,
        stats,
        acked,
        stored: stored_rows.len(),
        lost,
        duplicates: stored_rows.len() - distinct.len(),
        spooled: results.iter().map(|r| r.spooled).sum(),
        collector_restarts: restarts,
        collector_p99_ms: p99,
        reads,
    }
}
