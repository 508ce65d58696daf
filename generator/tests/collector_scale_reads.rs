//! Reading a 1,000-node fleet (issue 15): a real `plasmagen collector` child process holds a
//! generated 1,000-node inventory; every node posts three reports over mTLS with its own
//! certificate. Then `GET /v1/nodes` stays within a per-node byte budget, the dashboard shows
//! every row and handles a live update without redrawing the table (headless Chromium,
//! collector_support::dashboard_scale), and `plasmagen status` / `status --wait` print a
//! summary instead of a thousand rows. The figures are printed (`--nocapture`); the bounds are
//! generous: they catch a broken design (a quadratic redraw, an unbounded document), not a
//! slow machine.

mod collector_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use plasma_wire::Phase;
use plasmagen::collector::view::FleetView;

use collector_support::big_fleet::{BigFleet, write_fleet};
use collector_support::dashboard_scale::{measure_dashboard, row_contains};
use collector_support::{As, client, report, spawn_collector};

const NODES: usize = 1000;
/// Bytes of `GET /v1/nodes` per node, at most (measured ~0.9 KB with three services' worth of
/// reports; a per-node history or discovery facts in the list would blow it).
const BYTES_PER_NODE: usize = 2048;

/// What node `i` reports: founders bootstrap both Raft services, every 40th worker fails, every
/// 10th stays joining, the rest join. 875 joined, 100 in progress, 25 failed.
fn plan(i: usize) -> Vec<(&'static str, Phase, String)> {
    let msg = |p: Phase| format!("{p} (scale test)");
    if i < 3 {
        let done = if i == 0 {
            Phase::Bootstrapped
        } else {
            Phase::Joined
        };
        return vec![
            ("chainfire", Phase::Booted, msg(Phase::Booted)),
            ("chainfire", done, msg(done)),
            ("flaredb", done, msg(done)),
        ];
    }
    let last = match i {
        _ if i % 40 == 7 => Phase::Failed,
        _ if i % 10 == 3 => Phase::Joining,
        _ => Phase::Joined,
    };
    let mid = if last == Phase::Joining {
        Phase::LocalHealthy
    } else {
        Phase::Joining
    };
    [Phase::Booted, mid, last]
        .into_iter()
        .map(|p| ("chainfire", p, msg(p)))
        .collect()
}

/// Every node posts its plan over its own mTLS connection, 64 nodes at a time.
async fn ingest(fleet: &BigFleet, api: &str) {
    let url = format!("{api}/v1/reports");
    let sent = futures_util::stream::iter(fleet.hosts.iter().enumerate())
        .map(|(i, h)| {
            let cl = client(&fleet.secrets, &fleet.secrets, As::Node(h));
            let url = url.clone();
            async move {
                for (svc, phase, msg) in plan(i) {
                    let resp = cl
                        .post(&url)
                        .json(&report(h, svc, phase, &msg))
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("{h}: {e}"));
                    assert!(resp.status().is_success(), "{h}: {}", resp.status());
                }
            }
        })
        .buffer_unordered(64)
        .count()
        .await;
    assert_eq!(sent, NODES);
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// `plasmagen status ARGS` against the collector; (exit code, stdout, stderr).
fn status(api: &str, secrets: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_plasmagen"))
        .args(["status", "--collector", api, "--secrets"])
        .arg(secrets)
        .args(extra)
        .output()
        .expect("run plasmagen status");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_node_fleet_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let fleet = write_fleet(&dir.path().join("fleet"), NODES);
    let db = dir.path().join("collector.db");
    let sec = fleet.secrets.to_str().unwrap().to_string();
    let c = spawn_collector(&[
        "--db",
        db.to_str().unwrap(),
        "--inventory",
        fleet.inventory.to_str().unwrap(),
        "--secrets",
        &sec,
        // The browser has no client certificate.
        "--public-dashboard",
    ]);
    ingest(&fleet, &c.api).await;
    eprintln!(
        "scale: {NODES} nodes set up and 3 reports each ingested in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // GET /v1/nodes as the operator: size and latency.
    let op = client(&fleet.secrets, &fleet.secrets, As::Operator);
    let url = format!("{}/v1/nodes", c.api);
    let mut lat = Vec::new();
    let mut body = Vec::new();
    for k in 0..21 {
        let t = Instant::now();
        let resp = op.get(&url).send().await.unwrap();
        assert!(resp.status().is_success());
        body = resp.bytes().await.unwrap().to_vec();
        // The first read warms the connection (TLS handshake): not a read's cost.
        if k > 0 {
            lat.push(t.elapsed());
        }
    }
    lat.sort();
    let view: FleetView = serde_json::from_slice(&body).unwrap();
    let (p50, p99) = (percentile_ms(&lat, 0.5), percentile_ms(&lat, 0.99));
    eprintln!(
        "scale: GET /v1/nodes {} bytes ({} per node), p50 {p50:.1} ms, p99 {p99:.1} ms over {} reads",
        body.len(),
        body.len() / NODES,
        lat.len()
    );
    assert_eq!(view.nodes.len(), NODES);
    let s = &view.summary;
    assert_eq!(
        (s.joined, s.in_progress, s.failed, s.stuck, s.pending),
        (875, 100, 25, 0, 0)
    );
    assert!(
        body.len() < NODES * BYTES_PER_NODE,
        "{} bytes is over {BYTES_PER_NODE} per node",
        body.len()
    );
    assert!(p99 < 2000.0, "GET /v1/nodes p99 {p99:.0} ms");

    // plasmagen status: a summary, the counts right, the failed nodes listed (20 of 25).
    let (code, out, err) = status(&c.api, &fleet.secrets, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    eprintln!(
        "scale: plasmagen status printed {} lines:\n{out}",
        out.lines().count()
    );
    assert!(out.lines().count() < 40, "{out}");
    assert!(
        out.starts_with("1000 nodes: 875 joined, 100 in progress, 0 stuck, 25 failed, 0 pending\n"),
        "{out}"
    );
    assert!(
        out.contains("\n  chainfire: 100 joining, 874 joined, 1 bootstrapped, 25 failed\n  flaredb: 2 joined, 1 bootstrapped\n"),
        "{out}"
    );
    assert!(
        out.contains("25 need attention (25 failed, 0 stuck):"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("n0007 ") && l.contains("failed")),
        "{out}"
    );
    assert!(
        out.contains("… and 5 more (plasmagen status --all or --json"),
        "{out}"
    );
    let (code, all, _) = status(&c.api, &fleet.secrets, &["--all"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        all.lines().count(),
        NODES + 2,
        "--all: header, rows, counts"
    );
    let (code, json, _) = status(&c.api, &fleet.secrets, &["--json"]);
    assert_eq!(code, Some(0));
    let doc: FleetView = serde_json::from_str(&json).unwrap();
    assert_eq!(doc.nodes.len(), NODES, "--json stays complete");
    // --wait stops at the first poll (nodes failed): exit 1, the failed names bounded.
    let (code, out, err) = status(&c.api, &fleet.secrets, &["--wait", "--timeout", "30s"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.lines().count() < 40, "{out}");
    let failed_line = err.lines().find(|l| l.starts_with("failed: ")).unwrap();
    assert!(
        failed_line.starts_with("failed: n0007, n0047,") && failed_line.ends_with("… and 5 more"),
        "{err}"
    );

    // The dashboard: every row, then one live update of one row.
    let probe = client(&fleet.secrets, &fleet.secrets, As::Node("n0013"));
    let rt = tokio::runtime::Handle::current();
    let (api, browser_dir) = (c.api.clone(), dir.path().join("browser"));
    let figures = tokio::task::spawn_blocking(move || {
        measure_dashboard(
            &browser_dir,
            &format!("{api}/"),
            NODES,
            &row_contains("n0013", "scale probe 1"),
            || {
                rt.block_on(async {
                    let r = probe
                        .post(format!("{api}/v1/reports"))
                        .json(&report(
                            "n0013",
                            "chainfire",
                            Phase::Joining,
                            "scale probe 1",
                        ))
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success());
                });
            },
        )
    })
    .await
    .unwrap();
    eprintln!("scale: {figures}");
    assert_eq!(figures.render.rows, NODES, "every node has its row");
    assert!(figures.render.render_ms < 15_000.0, "{figures}");
    assert!(figures.update.update_visible_ms < 2_000.0, "{figures}");
    assert!(figures.update.update_ms < 2_000.0, "{figures}");
    // One report, one row: the table is not rebuilt.
    assert!(figures.update.rows_redrawn <= 2, "{figures}");

    // Heal the failed nodes: --wait now polls until its timeout (100 still joining). On a
    // terminal it redraws one progress line per poll, then prints the summary once.
    for i in (0..NODES).filter(|i| i % 40 == 7) {
        let h = &fleet.hosts[i];
        let r = client(&fleet.secrets, &fleet.secrets, As::Node(h))
            .post(format!("{}/v1/reports", c.api))
            .json(&report(h, "chainfire", Phase::Joined, "rejoined"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let cmd = format!(
        "'{}' status --collector '{}' --secrets '{}' --wait --timeout 5s --interval 1s",
        env!("CARGO_BIN_EXE_plasmagen"),
        c.api,
        sec
    );
    let o = tokio::task::spawn_blocking(move || {
        Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .output()
            .expect("run script(1)")
    })
    .await
    .unwrap();
    let tty = String::from_utf8_lossy(&o.stdout).into_owned();
    let redraws = tty.matches("\r\x1b[2K").count();
    eprintln!(
        "scale: status --wait on a terminal: {} lines, {redraws} progress redraws, exit {:?}",
        tty.lines().count(),
        o.status.code()
    );
    assert_eq!(o.status.code(), Some(1), "timeout exits 1: {tty}");
    assert!(redraws >= 3, "one progress line redrawn per poll: {tty:?}");
    assert!(tty.lines().count() < 40, "{tty}");
    assert!(tty.contains("timed out after 5s"), "{tty}");
    assert!(
        tty.contains("1000 nodes: 900 joined, 100 in progress, 0 stuck, 0 failed, 0 pending"),
        "{tty}"
    );
    assert!(tty.contains("no node needs attention"), "{tty}");
}
