//! Issue 14, finding 2: a discovery flood from many source addresses against a real
//! `plasmagen collector` process (plain-HTTP lab listener on 127.0.0.1; each client binds its
//! own 127.0.1.x address). What is stored stays within the budget (the least recently seen
//! unknown machines are evicted, nothing is refused), the process's memory and the fleet list
//! stay small, an inventory MAC is still accepted, the store starts again after a SIGKILL; with
//! the default global rate, many addresses together get no more than one address's share of
//! the collector. Figures print with `-- --nocapture`.

mod collector_support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use plasmagen::collector::store::rusqlite;
use serde_json::{Value, json};

use collector_support::{ChildCollector, runbook_path, spawn_collector};

const SOURCES: u8 = 100;

fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + (i % SOURCES as usize) as u8))
}

/// A discovery report of about 13 KiB of facts (under the 16 KiB stored maximum).
fn big_report(i: u32) -> Value {
    let mac = format!(
        "aa:bb:{:02x}:{:02x}:{:02x}:{:02x}",
        i >> 24,
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    );
    json!({
        "primary_mac": mac,
        "nics": [{"name": "eno1", "mac": mac}],
        "disks": (0..24).map(|d| json!({
            "name": format!("sd{d}"), "size_bytes": 1u64 << 40, "by_id": [],
            "model": "m".repeat(500)
        })).collect::<Vec<_>>(),
        "memory_bytes": 1u64 << 30,
        "cpu": {"model": "x", "logical_cpus": 1}
    })
}

fn clients() -> Vec<reqwest::Client> {
    (0..SOURCES as usize)
        .map(|i| {
            reqwest::Client::builder()
                .local_address(source(i))
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap()
        })
        .collect()
}

/// (kB) VmRSS and VmHWM of `pid`.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Post `count` reports (numbered from `first`) from every source address, 32 at a time;
/// returns how many were answered with each status.
async fn flood(url: &str, first: u32, count: u32) -> Vec<(u16, u64)> {
    let clients = Arc::new(clients());
    let answers: Arc<Vec<AtomicU64>> = Arc::new((0..600).map(|_| AtomicU64::new(0)).collect());
    futures_util::stream::iter(first..first + count)
        .for_each_concurrent(32, |i| {
            let (clients, answers) = (clients.clone(), answers.clone());
            let url = format!("{url}/v1/discover");
            async move {
                let c = &clients[i as usize % clients.len()];
                let st = match c.post(&url).json(&big_report(i)).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 599,
                };
                answers[st as usize].fetch_add(1, Ordering::Relaxed);
            }
        })
        .await;
    answers
        .iter()
        .enumerate()
        .filter_map(|(st, n)| {
            let n = n.load(Ordering::Relaxed);
            (n > 0).then_some((st as u16, n))
        })
        .collect()
}

fn stored(db: &Path) -> (i64, i64) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(
        "SELECT count(*), coalesce(sum(length(report)), 0) FROM discovered",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

fn collector(db: &Path, extra: &[&str]) -> ChildCollector {
    let inv = runbook_path();
    let mut args = vec![
        "--insecure-http",
        "--db",
        db.to_str().unwrap(),
        "--inventory",
        inv.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    spawn_collector(&args)
}

async fn post_inventory_mac(url: &str) -> (u16, Value) {
    let c = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 2, 1)))
        .build()
        .unwrap();
    let mut r = big_report(0);
    r["primary_mac"] = json!("52:54:00:12:34:58");
    let resp = c
        .post(format!("{url}/v1/discover"))
        .json(&r)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_flood_from_many_addresses_stays_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("collector.db");
    const MIB: i64 = 4;
    let mib = MIB.to_string();
    let limits = [
        "--max-discovered",
        "2000",
        "--max-discovered-mib",
        mib.as_str(),
        // Only the table's budget is under test here: no rate holds the flood back.
        "--discover-burst",
        "1000000",
        "--discover-global-burst",
        "1000000",
        "--discover-global-refill",
        "1ms",
    ];
    let c = collector(&db, &limits);
    let pid = c.child.id();
    let (rss_before, _) = memory_kb(pid);
    let n = 3_000u32;
    let start = Instant::now();
    let answers = flood(&c.api, 0, n).await;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(answers, [(200, u64::from(n))], "nothing refused while full");
    let (rows, bytes) = stored(&db);
    let (rss, hwm) = memory_kb(pid);
    let nodes = reqwest::get(format!("{}/v1/nodes", c.api))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    eprintln!(
        "discover flood: {n} reports of ~13 KiB from {SOURCES} addresses in {secs:.1} s \
         ({:.0}/s); stored {rows} rows, {bytes} bytes (budget {MIB} MiB); collector RSS \
         {rss_before} -> {rss} kB (peak {hwm} kB); /v1/nodes {} bytes",
        f64::from(n) / secs,
        nodes.len()
    );
    assert!(bytes <= MIB << 20, "{bytes} bytes stored");
    // Each report is under 16 KiB: the bytes budget, not the rows, is what bounds this table.
    assert!(((MIB << 20) / 16_384..2_000).contains(&rows), "{rows} rows");
    assert!(
        hwm < rss_before + 96 * 1024,
        "peak RSS {hwm} kB (start {rss_before} kB)"
    );
    assert!(
        nodes.len() < 512 * 1024,
        "/v1/nodes is {} bytes",
        nodes.len()
    );
    // The newest report is kept, the oldest evicted.
    let c2 = rusqlite::Connection::open(&db).unwrap();
    let has = |i: u32| -> bool {
        let mac = big_report(i)["primary_mac"].as_str().unwrap().to_string();
        c2.query_row(
            "SELECT count(*) FROM discovered WHERE mac = ?1",
            [mac],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 1
    };
    assert!(has(n - 1) && !has(0));
    // An inventory node's MAC, with the table full.
    let (st, v) = post_inventory_mac(&c.api).await;
    assert_eq!(
        (st, v["inventory_node"].as_str()),
        (200, Some("node03")),
        "{v}"
    );

    // It took the place of the least recently seen unknown machine.
    let before = collector_support::db_discovered_macs(&db);
    assert_eq!(before.len() as i64, rows);
    assert!(before.contains(&"52:54:00:12:34:58".to_string()));

    // Killed mid-life and started again: the counters match the rows after the evictions.
    drop(c);
    let again = collector(&db, &limits);
    let (st, v) = post_inventory_mac(&again.api).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(collector_support::db_discovered_macs(&db), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_addresses_together_get_the_global_rate_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("collector.db");
    // The default global budget (200 at once, one more every 20 ms); each address may burst.
    let c = collector(&db, &["--discover-burst", "1000"]);
    let start = Instant::now();
    let n = 1_500u32;
    let answers = flood(&c.api, 0, n).await;
    let secs = start.elapsed().as_secs_f64();
    let ok = answers.iter().find(|a| a.0 == 200).map_or(0, |a| a.1);
    let limited = answers.iter().find(|a| a.0 == 429).map_or(0, |a| a.1);
    eprintln!(
        "global rate: {n} reports from {SOURCES} addresses in {secs:.1} s: {ok} stored, \
         {limited} answered 429"
    );
    assert_eq!(ok + limited, u64::from(n), "{answers:?}");
    let allowed = 200.0 + secs * 50.0;
    assert!(
        (ok as f64) <= allowed + 5.0,
        "{ok} stored in {secs:.1} s, the budget allows {allowed:.0}"
    );
    assert!(ok >= 200, "the burst is available: {ok}");
    // An inventory MAC is not held back by the spent budget.
    let (st, v) = post_inventory_mac(&c.api).await;
    assert_eq!(st, 200, "{v}");
}
