//! plasma-agent join against the admin-API simulator, over real TLS sockets on loopback,
//! under tokio's paused clock (every server lives in the test's single-threaded runtime, so
//! auto-advance happens only when everything waits on a timer).

use std::path::PathBuf;
use std::time::Duration;

use plasma_agent::Outcome;
use plasma_tests::agent::{self, Run};
use plasma_tests::sim::{FollowerMode, Sim, SimOptions};
use plasma_tests::sink::{Blackhole, ReportSink, closed_port_url};
use plasma_wire::{ClusterConfig, Phase};

struct Setup {
    sim: Sim,
    dir: tempfile::TempDir,
    sink: ReportSink,
}

async fn setup(opts: SimOptions) -> Setup {
    let sim = Sim::start(opts).await;
    let tls = sim.pki.as_ref().map(|p| p.server_config());
    let sink = ReportSink::start(tls).await;
    Setup {
        sim,
        dir: tempfile::tempdir().unwrap(),
        sink,
    }
}

impl Setup {
    fn peers(&self) -> Vec<String> {
        (0..3)
            .map(|i| format!("{}.cluster.test:2380", self.sim.id(i)))
            .collect()
    }

    /// Config for node `i` of the simulator; its local service is node `i` itself.
    fn node_config(&self, i: usize, bootstrap: bool, join_urls: Vec<String>) -> ClusterConfig {
        let id = self.sim.id(i);
        let tls = self.sim.pki.as_ref().unwrap().node_tls(&id);
        let peers = if bootstrap { self.peers() } else { Vec::new() };
        agent::config(
            &id,
            &self.sim.raft_addr(i),
            &self.sim.url(i),
            &join_urls,
            &peers,
            tls,
            &self.sink.url,
        )
    }

    fn write(&self, cfg: &ClusterConfig) -> PathBuf {
        agent::write_config(self.dir.path(), cfg)
    }

    fn state(&self, node: &str) -> PathBuf {
        self.dir.path().join(format!("state-{node}"))
    }

    fn voter_urls(&self) -> Vec<String> {
        (0..3).map(|i| self.sim.url(i)).collect()
    }
}

fn assert_joined(run: &Run) {
    assert!(
        matches!(run.result, Ok(Outcome::Joined)),
        "{:?}\n{:#?}",
        run.result,
        run.messages()
    );
    let msgs = run.messages();
    for m in [
        "Waiting for local chainfire service...",
        "Local chainfire healthy",
        "Cluster join complete",
    ] {
        assert!(msgs.iter().any(|x| x == m), "missing {m:?} in {msgs:#?}");
    }
}

fn member_status(sim: &Sim, id: &str) -> Option<String> {
    sim.members()
        .members
        .into_iter()
        .find(|m| m.id == id)
        .map(|m| m.status)
}

#[tokio::test(start_paused = true)]
async fn three_node_bootstrap_waits_for_all_peers_and_a_leader() {
    let s = setup(SimOptions {
        form_after: Duration::from_secs(20),
        ..Default::default()
    })
    .await;
    let cfgs: Vec<PathBuf> = (0..3)
        .map(|i| s.write(&s.node_config(i, true, s.voter_urls())))
        .collect();
    let states: Vec<PathBuf> = (0..3).map(|i| s.state(&format!("n{i}"))).collect();
    let (a, b, c) = tokio::join!(
        agent::join(&cfgs[0], "chainfire", &states[0]),
        agent::join(&cfgs[1], "chainfire", &states[1]),
        agent::join(&cfgs[2], "chainfire", &states[2]),
    );
    for (i, run) in [a, b, c].iter().enumerate() {
        assert!(
            matches!(run.result, Ok(Outcome::Bootstrapped)),
            "node {i}: {:?} {:#?}",
            run.result,
            run.messages()
        );
        let msgs = run.messages();
        let order = [
            "Waiting for local chainfire service...",
            "Local chainfire healthy",
            "Bootstrap node, cluster initialized",
            "Cluster join complete",
        ];
        let pos: Vec<usize> = order
            .iter()
            .map(|m| {
                msgs.iter()
                    .position(|x| x == m)
                    .unwrap_or_else(|| panic!("{m} missing: {msgs:#?}"))
            })
            .collect();
        assert!(
            pos.windows(2).all(|w| w[0] < w[1]),
            "runbook order: {msgs:#?}"
        );
        // The cluster formed only after 20 s: nobody may claim success earlier.
        assert!(
            run.elapsed >= Duration::from_secs(20),
            "done after {:?}",
            run.elapsed
        );
        assert!(
            run.elapsed < Duration::from_secs(25),
            "took {:?}",
            run.elapsed
        );
        let line = run.line("Bootstrap node, cluster initialized").unwrap();
        assert_eq!(line["node_id"], s.sim.id(i));
        assert_eq!(line["service"], "chainfire");
        assert_eq!(line["phase"], "bootstrapped");
        assert!(line["elapsed_ms"].as_u64().unwrap() >= 20_000);
        let marker = std::fs::read_to_string(states[i].join("chainfire.joined")).unwrap();
        assert!(marker.contains("\"bootstrapped\""), "{marker}");
    }
    assert!(
        s.sim.adds().is_empty(),
        "bootstrap members must not POST add: {:?}",
        s.sim.adds()
    );
    let phases: Vec<Phase> = s
        .sink
        .reports()
        .iter()
        .filter(|r| r.node_id == "node01")
        .map(|r| r.phase)
        .collect();
    assert_eq!(
        phases,
        [
            Phase::Booted,
            Phase::WaitingLocal,
            Phase::LocalHealthy,
            Phase::Joining,
            Phase::Bootstrapped
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn node04_joins_through_a_follower_redirect() {
    let s = setup(SimOptions::default()).await;
    // node02 first: a follower, answers 307 to the leader node01.
    let urls = vec![s.sim.url(1), s.sim.url(2), s.sim.url(0)];
    let cfg = s.write(&s.node_config(3, false, urls));
    let run = agent::join(&cfg, "chainfire", &s.state("node04")).await;
    assert_joined(&run);
    let adds = s.sim.adds();
    assert_eq!(adds.len(), 2, "{adds:?}");
    assert_eq!((adds[0].node, adds[0].status), (1, 307));
    assert_eq!((adds[1].node, adds[1].status), (0, 201));
    assert_eq!(member_status(&s.sim, "node04").as_deref(), Some("healthy"));
    let m = s
        .sim
        .members()
        .members
        .into_iter()
        .find(|m| m.id == "node04")
        .unwrap();
    assert_eq!(m.raft_addr, s.sim.raft_addr(3));
    assert!(run.line("following leader redirect").is_some());
    // Reports carry every phase, in order.
    let phases: Vec<Phase> = s.sink.reports().iter().map(|r| r.phase).collect();
    assert_eq!(
        phases,
        [
            Phase::Booted,
            Phase::WaitingLocal,
            Phase::LocalHealthy,
            Phase::Joining,
            Phase::Joined
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn leader_hints_503_and_421_are_followed() {
    for mode in [
        FollowerMode::Hint503,
        FollowerMode::Hint421,
        FollowerMode::Redirect308,
    ] {
        let s = setup(SimOptions {
            follower_mode: mode,
            ..Default::default()
        })
        .await;
        let cfg = s.write(&s.node_config(3, false, vec![s.sim.url(2), s.sim.url(0)]));
        let run = agent::join(&cfg, "flaredb", &s.state("node04")).await;
        assert!(
            matches!(run.result, Ok(Outcome::Joined)),
            "{mode:?}: {:#?}",
            run.messages()
        );
        let adds = s.sim.adds();
        let want = match mode {
            FollowerMode::Hint503 => 503,
            FollowerMode::Hint421 => 421,
            _ => 308,
        };
        assert_eq!(
            adds.iter().map(|h| (h.node, h.status)).collect::<Vec<_>>(),
            [(2, want), (0, 201)],
            "{mode:?}"
        );
        assert_eq!(
            s.sim
                .members()
                .members
                .into_iter()
                .find(|m| m.id == "node04")
                .unwrap()
                .raft_addr,
            "10.0.200.13:2480"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn join_survives_a_dead_first_join_url() {
    let mut s = setup(SimOptions::default()).await;
    let dead = s.sim.url(0);
    s.sim.kill(0);
    assert_eq!(s.sim.leader(), 1, "leadership moves off the dead node");
    let cfg = s.write(&s.node_config(3, false, vec![dead, s.sim.url(1), s.sim.url(2)]));
    let run = agent::join(&cfg, "chainfire", &s.state("node04")).await;
    assert_joined(&run);
    assert!(
        run.logs.iter().any(|l| l["level"] == "WARN"
            && l["message"]
                .as_str()
                .unwrap()
                .starts_with("Join request failed")
            && l["error"]
                .as_str()
                .unwrap()
                .contains(s.sim.addr(0).to_string().as_str())),
        "{:#?}",
        run.messages()
    );
    assert_eq!(
        s.sim
            .adds()
            .iter()
            .map(|h| (h.node, h.status))
            .collect::<Vec<_>>(),
        [(1, 201)]
    );
    // Straight to the next URL: no backoff spent on the dead one.
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
}

#[tokio::test(start_paused = true)]
async fn join_survives_a_join_url_that_never_answers() {
    let s = setup(SimOptions::default()).await;
    let hole = Blackhole::start().await;
    let cfg = s.write(&s.node_config(3, false, vec![hole.url("https"), s.sim.url(0)]));
    let run = agent::join(&cfg, "chainfire", &s.state("node04")).await;
    assert_joined(&run);
    assert!(hole.connections() >= 1);
    let warn = run
        .line("Join request failed")
        .expect("a warning for the hung URL");
    assert!(
        warn["error"].as_str().unwrap().contains("timed out"),
        "{warn}"
    );
    assert_eq!(member_status(&s.sim, "node04").as_deref(), Some("healthy"));
}

#[tokio::test(start_paused = true)]
async fn lost_add_response_is_retried_and_409_counts_as_success() {
    let s = setup(SimOptions::default()).await;
    s.sim.faults(0, |f| f.lose_add_response = 1);
    let cfg = s.write(&s.node_config(3, false, vec![s.sim.url(0), s.sim.url(1)]));
    let run = agent::join(&cfg, "chainfire", &s.state("node04")).await;
    assert_joined(&run);
    let adds: Vec<(usize, u16)> = s.sim.adds().iter().map(|h| (h.node, h.status)).collect();
    // Applied at the leader (answer lost), retried through node02 → redirect → 409.
    assert_eq!(adds, [(0, 201), (1, 307), (0, 409)]);
    assert!(
        run.line("already a member (409)").is_some(),
        "{:#?}",
        run.messages()
    );
    let n = s
        .sim
        .members()
        .members
        .iter()
        .filter(|m| m.id == "node04")
        .count();
    assert_eq!(n, 1, "added exactly once");
}

#[tokio::test(start_paused = true)]
async fn leader_change_in_the_middle_of_a_join() {
    let s = setup(SimOptions {
        follower_mode: FollowerMode::Hint421,
        ..Default::default()
    })
    .await;
    // node01 leads until the add arrives, then node03 takes over.
    s.sim.faults(0, |f| f.step_down_on_add = Some(2));
    let cfg = s.write(&s.node_config(3, false, vec![s.sim.url(0)]));
    let run = agent::join(&cfg, "chainfire", &s.state("node04")).await;
    assert_joined(&run);
    let adds: Vec<(usize, u16)> = s.sim.adds().iter().map(|h| (h.node, h.status)).collect();
    assert_eq!(adds, [(0, 421), (2, 201)]);
    assert_eq!(s.sim.leader(), 2);
}

#[tokio::test(start_paused = true)]
async fn bursts_of_503_and_dropped_connections_are_retried_with_backoff() {
    let s = setup(SimOptions::default()).await;
    s.sim.faults(0, |f| f.fail_next = 4);
    s.sim.conn_faults(1, |f| f.drop_next = 3);
    let cfg = s.write(&s.node_config(3, false, vec![s.sim.url(0), s.sim.url(1)]));
    let run = agent::join(&cfg, "chainfire", &s.state("node04")).await;
    assert_joined(&run);
    let failures = run
        .logs
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .unwrap()
                .starts_with("Join request failed")
        })
        .count();
    assert!(failures >= 3, "{:#?}", run.messages());
    // At least one full round failed, so at least one backoff (≥ 250 ms with jitter) elapsed.
    assert!(
        run.elapsed >= Duration::from_millis(250),
        "{:?}",
        run.elapsed
    );
    assert_eq!(
        s.sim
            .members()
            .members
            .iter()
            .filter(|m| m.id == "node04")
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn rerun_with_marker_is_a_no_op() {
    let s = setup(SimOptions::default()).await;
    let cfg = s.write(&s.node_config(3, false, vec![s.sim.url(0)]));
    let state = s.state("node04");
    assert_joined(&agent::join(&cfg, "chainfire", &state).await);
    let hits_before = s.sim.hits().len();
    let again = agent::join(&cfg, "chainfire", &state).await;
    assert!(
        matches!(again.result, Ok(Outcome::AlreadyJoined)),
        "{:?}",
        again.result
    );
    assert_eq!(again.exit_code, 0);
    assert!(again.line("already joined").is_some());
    assert_eq!(
        s.sim.hits().len(),
        hits_before,
        "no admin-API request on a re-run"
    );
    // Without the marker, a re-run finds the node listed and still does not POST.
    std::fs::remove_file(state.join("chainfire.joined")).unwrap();
    let third = agent::join(&cfg, "chainfire", &state).await;
    assert!(
        matches!(third.result, Ok(Outcome::Joined)),
        "{:?}",
        third.result
    );
    assert_eq!(s.sim.adds().len(), 1, "{:?}", s.sim.adds());
}

#[tokio::test(start_paused = true)]
async fn slow_local_service_is_waited_for() {
    let s = setup(SimOptions::default()).await;
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    s.sim.faults(3, |f| f.unhealthy_until = Some(until));
    let cfg = s.write(&s.node_config(3, false, vec![s.sim.url(0)]));
    let run = agent::join(&cfg, "chainfire", &s.state("node04")).await;
    assert_joined(&run);
    let healthy = run.line("Local chainfire healthy").unwrap()["elapsed_ms"]
        .as_u64()
        .unwrap();
    assert!((30_000..36_000).contains(&healthy), "{healthy}");
    assert!(s.sim.adds().iter().all(|h| h.status == 201));
}

#[tokio::test(start_paused = true)]
async fn local_service_never_healthy_exits_75_with_what_was_last_seen() {
    let s = setup(SimOptions::default()).await;
    s.sim.faults(3, |f| f.never_healthy = true);
    let cfg = s.write(&s.node_config(3, false, vec![s.sim.url(0)]));
    let run = agent::join(&cfg, "chainfire", &s.state("node04")).await;
    assert_eq!(run.exit_code, 75, "{:?}", run.result);
    let err = run
        .logs
        .iter()
        .find(|l| l["level"] == "ERROR")
        .expect("an ERROR line");
    let msg = err["message"].as_str().unwrap();
    assert!(msg.starts_with("Health check timeout after 120s"), "{msg}");
    assert!(
        msg.contains("HTTP 503") && msg.contains("starting"),
        "{msg}"
    );
    assert!(
        run.elapsed >= Duration::from_secs(120) && run.elapsed < Duration::from_secs(126),
        "{:?}",
        run.elapsed
    );
    // Backoff 0.5 → 5 s: about 30 probes in 120 s, not thousands.
    let probes = s
        .sim
        .hits()
        .iter()
        .filter(|h| h.node == 3 && h.path == "/health")
        .count();
    assert!((20..=40).contains(&probes), "{probes} probes");
    assert!(s.sim.adds().is_empty());
    assert!(!s.state("node04").join("chainfire.joined").exists());
    let last = s.sink.reports().last().cloned().unwrap();
    assert_eq!(last.phase, Phase::Failed);
    assert!(last.message.contains("Health check timeout"));
}

#[tokio::test(start_paused = true)]
async fn unreachable_cluster_exits_75_after_the_join_deadline() {
    let s = setup(SimOptions::default()).await;
    let mut cfg = s.node_config(
        3,
        false,
        vec![
            closed_port_url("https").await,
            closed_port_url("https").await,
        ],
    );
    cfg.join_timeout_secs = 60;
    let run = agent::join(&s.write(&cfg), "chainfire", &s.state("node04")).await;
    assert_eq!(run.exit_code, 75);
    let msg = run.logs.iter().find(|l| l["level"] == "ERROR").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.starts_with("Join request failed") && msg.contains("gave up after 60s"),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("connection refused"), "{msg}");
    assert!(
        run.elapsed >= Duration::from_secs(45) && run.elapsed <= Duration::from_secs(61),
        "{:?}",
        run.elapsed
    );
}

#[tokio::test(start_paused = true)]
async fn node_id_registered_with_another_raft_addr_is_refused() {
    let s = setup(SimOptions::default()).await;
    // node04's id, but node02's address: the cluster already knows "node02" elsewhere.
    let mut cfg = s.node_config(3, false, vec![s.sim.url(0)]);
    cfg.node_id = "node02".into();
    let run = agent::join(&s.write(&cfg), "chainfire", &s.state("x")).await;
    assert_eq!(run.exit_code, 75);
    let msg = run.logs.iter().find(|l| l["level"] == "ERROR").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("already a member with raft_addr 10.0.200.11:2380"),
        "{msg}"
    );
    assert!(s.sim.adds().is_empty());
}

#[tokio::test(start_paused = true)]
async fn client_certificate_is_presented_and_server_verified() {
    let s = setup(SimOptions::default()).await;
    let mut cfg = s.node_config(3, false, vec![s.sim.url(0)]);
    // A CA the simulator did not use: the agent must refuse the server.
    let other = plasma_tests::pki::TestPki::new("other");
    cfg.tls.ca = other.ca_path.display().to_string();
    let run = agent::join(&s.write(&cfg), "chainfire", &s.state("node04")).await;
    assert_eq!(run.exit_code, 75);
    assert!(
        run.logs.iter().any(|l| l["seen"]
            .as_str()
            .is_some_and(|x| x.contains("certificate"))),
        "{:#?}",
        run.logs
    );
    assert!(
        s.sim.hits().is_empty(),
        "no request may pass an unverified handshake"
    );

    // The right CA but another cluster's client certificate: the server refuses us.
    let mut cfg = s.node_config(3, false, vec![s.sim.url(0)]);
    let foreign = other.node_tls("node04");
    cfg.tls.cert = foreign.cert;
    cfg.tls.key = foreign.key;
    cfg.health_timeout_secs = 2;
    let run = agent::join(&s.write(&cfg), "chainfire", &s.state("node04")).await;
    assert_eq!(run.exit_code, 75);
    assert!(!s.sim.tls_failures(3).is_empty());
    assert!(s.sim.hits().is_empty());
}

#[tokio::test(start_paused = true)]
async fn insecure_mode_is_explicit_and_warns_on_every_request() {
    let s = setup(SimOptions::default()).await;
    let mut cfg = s.node_config(3, false, vec![s.sim.url(1)]);
    let other = plasma_tests::pki::TestPki::new("other");
    cfg.tls.ca = other.ca_path.display().to_string();
    let path = s.write(&cfg);
    let run = agent::run(plasma_agent::command::Command::Join(
        plasma_agent::command::join::JoinArgs {
            config: path,
            service: "chainfire".into(),
            state_dir: s.state("node04"),
            insecure: true,
        },
    ))
    .await;
    assert!(
        matches!(run.result, Ok(Outcome::Joined)),
        "{:?}",
        run.result
    );
    let warnings = run
        .logs
        .iter()
        .filter(|l| l["message"] == "TLS certificate verification disabled by --insecure")
        .count();
    // One per request: admin API (health, members, add + redirect, polls) and reports.
    let admin_requests = s.sim.hits().len();
    let reports = s.sink.reports().len();
    assert_eq!(warnings, admin_requests + reports, "{warnings} warnings");
}
