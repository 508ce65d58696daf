//! Store integrity: a database built by a real `plasmagen collector` process is damaged the
//! ways issue 14 found invisible (an index page, two bytes of a record, one WAL frame); each
//! time the collector refuses to start (exit 74, naming the file and `--recover`), and with
//! `--recover` it says what was lost and serves what was readable. `/health` shows the store's
//! state, sees damage met at run time, and answers while a long read holds the store.

mod collector_support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plasma_wire::Phase;
use plasmagen::collector::store::rusqlite::Connection;
use plasmagen::collector::store::{WriteOp, ack};
use plasmagen::collector::{self, Config};
use reqwest::StatusCode;
use serde_json::Value;

use collector_support::{report, runbook, runbook_path};

/// A `plasmagen collector --insecure-http` child; killed on drop.
struct Running {
    child: Child,
    api: String,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM (a clean stop) and wait.
    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        self.child.wait().unwrap();
    }

    /// SIGKILL right away: nothing is flushed or closed, the WAL stays.
    fn kill(mut self) {
        self.child.kill().unwrap();
        assert!(!self.child.wait().unwrap().success());
    }
}

enum Start {
    Serving(Running),
    Exited { code: Option<i32>, stderr: String },
}

fn start(db: &Path, extra: &[&str]) -> Start {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plasmagen"))
        .args([
            "collector",
            "--listen",
            "127.0.0.1:0",
            "--insecure-http",
            "--db",
        ])
        .arg(db)
        .arg("--inventory")
        .arg(runbook_path())
        .args(extra)
        .env("RUST_LOG", "plasma_collector=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plasmagen collector");
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut err_pipe = child.stderr.take().unwrap();
    let sink = stderr.clone();
    let err_reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err_pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix("collector: api listening on ") {
                    return Start::Serving(Running {
                        child,
                        api: url.to_string(),
                        stderr,
                    });
                }
            }
            Err(_) => {
                if let Some(status) = child.try_wait().unwrap() {
                    err_reader.join().unwrap();
                    let stderr = stderr.lock().unwrap().clone();
                    return Start::Exited {
                        code: status.code(),
                        stderr,
                    };
                }
                assert!(
                    Instant::now() < deadline,
                    "the collector neither served nor exited"
                );
            }
        }
    }
}

fn serving(db: &Path, extra: &[&str]) -> Running {
    match start(db, extra) {
        Start::Serving(r) => r,
        Start::Exited { code, stderr } => panic!("collector exited ({code:?}):\n{stderr}"),
    }
}

/// The collector must refuse `db`: exit 74, the file named, `--recover` offered. Returns stderr.
fn refused(db: &Path) -> String {
    match start(db, &[]) {
        Start::Serving(r) => panic!("a damaged database was served:\n{}", r.stderr()),
        Start::Exited { code, stderr } => {
            assert_eq!(code, Some(74), "{stderr}");
            assert!(stderr.contains(&db.display().to_string()), "{stderr}");
            assert!(stderr.contains("--recover"), "{stderr}");
            assert!(stderr.contains("is damaged"), "{stderr}");
            stderr
        }
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Post `report {i}` for each `i` as node01, one at a time (so one commit each).
async fn post_reports(api: &str, ids: std::ops::Range<usize>) {
    let c = http();
    for i in ids {
        let r = report(
            "node01",
            "chainfire",
            Phase::Joining,
            &format!("report {i}"),
        );
        let resp = c
            .post(format!("{api}/v1/reports"))
            .json(&r)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "report {i}");
    }
}

/// node01's report messages, oldest first.
async fn messages(api: &str) -> Vec<String> {
    let v: Value = http()
        .get(format!("{api}/v1/nodes/node01?limit=100000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|e| e["kind"] == "report")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

async fn health(api: &str) -> (StatusCode, Value) {
    let resp = http().get(format!("{api}/health")).send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

fn want(ids: impl Iterator<Item = usize>) -> Vec<String> {
    ids.map(|i| format!("report {i}")).collect()
}

/// Fold the WAL into the file (a collector stopped without closing its connections leaves
/// it), so damage to the file's pages is what the next start reads.
fn checkpoint(db: &Path) -> Connection {
    let c = Connection::open(db).unwrap();
    let (busy, _, _): (i64, i64, i64) = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(busy, 0, "checkpoint blocked");
    c
}

fn page_size(c: &Connection) -> u64 {
    c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap()
}

fn overwrite(file: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.write_all_at(bytes, offset).unwrap();
    f.sync_all().unwrap();
}

fn read_page(file: &Path, page: u64, size: u64) -> Vec<u8> {
    let all = std::fs::read(file).unwrap();
    all[((page - 1) * size) as usize..(page * size) as usize].to_vec()
}

/// `<db>.corrupt-*` files left by `--recover`.
fn kept_aside(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("c.db.corrupt-") && !n.ends_with("-wal") && !n.ends_with(".ack")
        })
        .collect()
}

/// A database of `n` acknowledged reports, stopped with SIGTERM and checkpointed.
async fn built(dir: &Path, n: usize) -> PathBuf {
    let db = dir.join("c.db");
    let c = serving(&db, &[]);
    post_reports(&c.api, 0..n).await;
    c.terminate();
    drop(checkpoint(&db));
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_the_store_and_a_vanished_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let c = serving(&db, &[]);
    post_reports(&c.api, 0..3).await;
    let (st, h) = health(&c.api).await;
    assert_eq!(st, StatusCode::OK, "{h}");
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["store"]["state"], "ok");
    assert_eq!(h["store"]["check"], "integrity_check");
    assert_eq!(h["store"]["reports"], 3);
    let at = h["store"]["checked_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_ok(),
        "{at}"
    );
    assert!(c.stderr().contains("store checked"), "{}", c.stderr());
    c.kill();

    // The database file alone disappears: its sidecar still says 3 writes were acknowledged.
    std::fs::remove_file(&db).unwrap();
    let _ = std::fs::remove_file(dir.path().join("c.db-wal"));
    let err = refused(&db);
    assert!(err.contains("the database file is gone"), "{err}");
    // Starting empty on purpose: the sidecar goes too.
    std::fs::remove_file(ack::path_of(&db)).unwrap();
    let c = serving(&db, &[]);
    assert_eq!(messages(&c.api).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_index_page_is_refused_and_recovered_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let db = built(dir.path(), 60).await;
    let c = Connection::open(&db).unwrap();
    let root: u64 = c
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND name = 'history_node'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let size = page_size(&c);
    drop(c);
    overwrite(&db, (root - 1) * size, &[0xA5; 64]);

    let err = refused(&db);
    assert!(err.contains("PRAGMA integrity_check"), "{err}");
    // Refusing changed nothing: a second start refuses the same way.
    assert_eq!(refused(&db), err);

    let c = serving(&db, &["--recover"]);
    let err = c.stderr();
    assert!(
        err.contains("collector: recover: history: 60 rows recovered, 0 lost"),
        "{err}"
    );
    assert_eq!(messages(&c.api).await, want(0..60));
    let (st, h) = health(&c.api).await;
    assert_eq!((st, &h["store"]["state"]), (StatusCode::OK, &"ok".into()));
    assert_eq!(kept_aside(dir.path()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_changed_bytes_in_a_record_are_refused_and_only_that_row_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let db = built(dir.path(), 60).await;
    let c = Connection::open(&db).unwrap();
    let size = page_size(&c);
    let leaves: Vec<u64> = c
        .prepare("SELECT pageno FROM dbstat WHERE name = 'history' AND pagetype = 'leaf'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(c);
    // The phase of one report: "joining" -> "jXiXing". SQLite cannot tell (the page is well
    // formed and the phase is not indexed); the replay used to skip the row silently.
    let (page, at) = leaves
        .iter()
        .find_map(|&p| {
            let bytes = read_page(&db, p, size);
            Some((p, bytes.windows(7).position(|w| w == b"joining")?))
        })
        .expect("a history leaf with a report");
    let offset = (page - 1) * size + at as u64;
    overwrite(&db, offset + 1, b"X");
    overwrite(&db, offset + 3, b"X");

    let err = refused(&db);
    assert!(err.contains("fails its checksum"), "{err}");
    // "history row <id> fails ...": ids count from 1, one per report.
    let id: usize = err
        .split("history row ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .expect("the damaged row is named");
    let damaged = id - 1;

    let c = serving(&db, &["--recover"]);
    let err = c.stderr();
    assert!(
        err.contains(
            "history: 59 rows recovered, 1 lost (1 failed their checksum, 0 unreadable regions)"
        ),
        "{err}"
    );
    assert_eq!(
        messages(&c.api).await,
        want((0..60).filter(|&i| i != damaged))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_killed_with_sigkill_restart_without_a_false_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let c = serving(&db, &[]);
    // One sender per node at once, so commits hold several reports: the sidecar counts
    // acknowledged writes, never more than the WAL holds, whatever the batching.
    let hosts: Vec<String> = runbook().nodes.iter().map(|n| n.hostname.clone()).collect();
    let sends = hosts.iter().map(|h| {
        let (api, h) = (c.api.clone(), h.clone());
        tokio::spawn(async move {
            let cl = http();
            for i in 0..60 {
                let r = report(&h, "chainfire", Phase::Joining, &format!("report {i}"));
                let resp = cl
                    .post(format!("{api}/v1/reports"))
                    .json(&r)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
            }
        })
    });
    for t in futures_util::future::join_all(sends).await {
        t.unwrap();
    }
    c.kill();
    let c = serving(&db, &[]);
    let (st, h) = health(&c.api).await;
    assert_eq!(st, StatusCode::OK, "{h}");
    assert_eq!(h["store"]["reports"], 60 * hosts.len());
    assert_eq!(messages(&c.api).await, want(0..60));
}

/// Flip two bytes in the first frame after the commit `commits_back` commits before the
/// last valid one; returns how many commits that drops.
fn corrupt_wal(wal: &Path, commits_back: usize) -> usize {
    let mut bytes = std::fs::read(wal).unwrap();
    let size = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let salts = bytes[16..24].to_vec();
    let frame = 24 + size;
    let mut commits = Vec::new();
    let mut i = 0;
    while 32 + (i + 1) * frame <= bytes.len() {
        let off = 32 + i * frame;
        // Frames of an older WAL generation (before a restart) carry other salts.
        if bytes[off + 8..off + 16] != salts[..] {
            break;
        }
        if bytes[off + 4..off + 8] != [0, 0, 0, 0] {
            commits.push(i);
        }
        i += 1;
    }
    assert!(
        commits.len() > commits_back + 10,
        "{} commits",
        commits.len()
    );
    let target = commits[commits.len() - 1 - commits_back] + 1;
    let off = 32 + target * frame + 24 + size / 2;
    bytes[off] ^= 0xFF;
    bytes[off + 1] ^= 0x5A;
    std::fs::write(wal, bytes).unwrap();
    commits_back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_wal_frame_is_refused_and_the_lost_tail_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let c = serving(&db, &[]);
    post_reports(&c.api, 0..60).await;
    c.kill();
    // Each report was its own commit: dropping 4 commits loses 4 acknowledged reports, which
    // SQLite does without an error.
    let lost = corrupt_wal(&dir.path().join("c.db-wal"), 4);

    let err = refused(&db);
    assert!(
        err.contains(&format!("{lost} acknowledged writes are missing")),
        "{err}"
    );

    let c = serving(&db, &["--recover"]);
    let err = c.stderr();
    assert!(
        err.contains(&format!(
            "history: {} rows recovered, {lost} lost",
            60 - lost
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{lost} acknowledged writes were in the lost end of the write-ahead log"
        )),
        "{err}"
    );
    assert_eq!(messages(&c.api).await, want(0..60 - lost));
    let (_, h) = health(&c.api).await;
    assert_eq!(h["store"]["reports"], 60 - lost);
    // The new database has its own sidecar: it survives a SIGKILL and a plain restart.
    post_reports(&c.api, 100..101).await;
    c.kill();
    let c = serving(&db, &[]);
    let mut expect = want(0..60 - lost);
    expect.push("report 100".into());
    assert_eq!(messages(&c.api).await, expect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_met_at_run_time_marks_the_store_degraded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let c = serving(&db, &[]);
    post_reports(&c.api, 0..40).await;
    // Under the running collector: fold the WAL into the file, then damage the index its
    // history reads use.
    let conn = checkpoint(&db);
    let root: u64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = 'history_node'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    overwrite(&db, (root - 1) * page_size(&conn), &[0xA5; 64]);
    let resp = http()
        .get(format!("{}/v1/nodes/node01", c.api))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (st, h) = health(&c.api).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{h}");
    assert_eq!(h["store"]["state"], "degraded");
    assert!(h["error"].as_str().unwrap().contains("--recover"), "{h}");
    assert!(c.stderr().contains("store degraded"), "{}", c.stderr());
}

/// `rows` reports of `size` bytes for node01, written through the store's own writer (which,
/// unlike the API, takes messages over 8 KiB: a way to make one read long).
async fn big_database(db: &Path, rows: usize, size: usize) {
    // One node's history as long as `rows`: retention (200 per node and service by default)
    // would keep only a few hundred of them.
    let config = Config {
        store: collector::store::Limits {
            history_per_service: u32::try_from(rows).unwrap_or(u32::MAX),
            ..Default::default()
        },
        ..Config::default()
    };
    let state = collector::open(runbook(), db, config).expect("open");
    let msg = "x".repeat(size);
    for chunk in (0..rows).collect::<Vec<_>>().chunks(2000) {
        let writes = chunk.iter().map(|i| {
            let r = report("node01", "chainfire", Phase::Joining, &format!("{i} {msg}"));
            state.store.write(WriteOp::Report(r))
        });
        for res in futures_util::future::join_all(writes).await {
            res.unwrap();
        }
    }
    drop(state);
    // The writer closes its connection on its own thread: the last close removes the WAL.
    let wal = db.with_extension("db-wal");
    let deadline = Instant::now() + Duration::from_secs(10);
    while wal.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_while_reads_hold_the_store() {
    const READS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    // A history page is at most 1,000 entries, so the long store operation is a backlog of
    // full-page reads, one after the other on the store's reader connection. Short messages:
    // the reads cost SQLite time, not JSON (which would compete with /health for the CPU).
    big_database(&db, 1_000, 16).await;
    let c = serving(&db, &[]);
    let api = c.api.clone();
    let long: Vec<_> = (0..READS)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                let resp = http()
                    .get(format!("{api}/v1/nodes/node01?limit=1000"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                resp.bytes().await.unwrap().len()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A small read queued behind them shows how long the store stays busy...
    let queued = tokio::spawn({
        let api = api.clone();
        async move {
            let t = Instant::now();
            let resp = http()
                .get(format!("{api}/v1/nodes/node02"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            t.elapsed()
        }
    });
    // ...while /health keeps answering.
    let mut answered = Vec::new();
    while !queued.is_finished() {
        let t = Instant::now();
        let (st, h) = health(&api).await;
        assert_eq!(st, StatusCode::OK, "{h}");
        assert_eq!(h["store"]["reports"], 1_000);
        answered.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let busy = queued.await.unwrap();
    for read in long {
        assert!(read.await.unwrap() > 100_000);
    }
    answered.sort();
    let (median, slowest) = (answered[answered.len() / 2], answered[answered.len() - 1]);
    println!(
        "/health answered {} times (median {median:?}, slowest {slowest:?}) while a read \
         queued behind the store's reader for {busy:?}",
        answered.len()
    );
    assert!(
        busy >= Duration::from_millis(300),
        "the store was busy only {busy:?}: no long operation to answer through"
    );
    assert!(answered.len() >= 2, "{answered:?} in {busy:?}");
    // Before, /health queried the store through that reader and queued with the rest: every
    // answer came after the queued read. The bound is loose on purpose: the reads, the server
    // and this client share two cores with whatever else runs (a CI run's other tests).
    assert!(
        slowest < busy,
        "/health took {median:?} (median), up to {slowest:?}, while the store was busy {busy:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_while_a_commit_waits_for_the_write_lock() {
    const HOLD: Duration = Duration::from_millis(1500);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let c = serving(&db, &[]);
    post_reports(&c.api, 0..5).await;
    // Another connection holds the write lock: the collector's next commit waits in SQLite's
    // busy handler (no CPU spent that could slow anything else down).
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn({
        let db = db.clone();
        move || {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(HOLD);
            conn.execute_batch("ROLLBACK").unwrap();
        }
    });
    locked_rx.recv().unwrap();
    let api = c.api.clone();
    let write = tokio::spawn(async move {
        let t = Instant::now();
        post_reports(&api, 5..6).await;
        t.elapsed()
    });
    let mut answered = Vec::new();
    while !write.is_finished() {
        let t = Instant::now();
        let (st, h) = health(&c.api).await;
        assert_eq!(st, StatusCode::OK, "{h}");
        answered.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waited = write.await.unwrap();
    holder.join().unwrap();
    let slowest = answered.iter().max().copied().unwrap_or_default();
    println!(
        "/health answered {} times, slowest {slowest:?}, while a commit waited {waited:?}",
        answered.len()
    );
    assert!(waited >= HOLD / 2, "the commit waited only {waited:?}");
    assert!(answered.len() >= 10, "{answered:?}");
    assert!(
        slowest < Duration::from_millis(200),
        "/health took up to {slowest:?} while a commit waited {waited:?}"
    );
    assert_eq!(health(&c.api).await.1["store"]["reports"], 6);
}

/// The start-up cost of the checks on a 100 MB database (docs/collector.md, "Store
/// integrity"): `cargo test -p plasmagen --test collector_integrity -- --ignored --nocapture`;
/// `PLASMA_BIG_DB_DIR` keeps the database there to time a release binary on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "builds a 100 MB database; a measurement, run by hand"]
async fn startup_check_cost_on_a_100_mb_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("PLASMA_BIG_DB_DIR")
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    let db = dir.join("c.db");
    if !db.exists() {
        let state = collector::open(runbook(), &db, Config::default()).expect("open");
        let hosts: Vec<String> = runbook().nodes.iter().map(|n| n.hostname.clone()).collect();
        // Reports as agents send them: ~120-byte messages, all nodes interleaved.
        let pad = "m".repeat(100);
        for chunk in (0..450_000usize).collect::<Vec<_>>().chunks(4096) {
            let writes = chunk.iter().map(|&i| {
                let h = &hosts[i % hosts.len()];
                let r = report(h, "chainfire", Phase::Joining, &format!("report {i} {pad}"));
                state.store.write(WriteOp::Report(r))
            });
            for res in futures_util::future::join_all(writes).await {
                res.unwrap();
            }
        }
        drop(state);
        std::thread::sleep(Duration::from_secs(2));
        drop(checkpoint(&db));
    }
    let bytes = std::fs::metadata(&db).unwrap().len();
    assert!(bytes >= 100_000_000, "{bytes} bytes");
    let c = serving(&db, &[]);
    let err = c.stderr();
    let line = err
        .lines()
        .find(|l| l.contains("store checked"))
        .expect("the check is logged");
    println!("{bytes} bytes: {line}");
    assert!(line.contains("quick_check"), "{line}");
}
