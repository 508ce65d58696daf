//! The dashboard in Debian's headless Chromium, driven over the DevTools protocol
//! (collector_support::browser): the runbook fleet's rows are rendered, a report committed
//! while the page is open shows up without a reload, and a discovered machine is enlisted from
//! its row ("Enlist as…") and moves to the fleet table, also without a reload. Screenshots are
//! saved to target/dashboard.png and target/dashboard-enlist{,ed}.png for review.

mod collector_support;

use std::path::PathBuf;

use plasma_wire::Phase;
use plasma_wire::discover::{Cpu, DiscoverReport, Disk, Nic};
use plasmagen::collector::Config;
use plasmagen::collector::store::WriteOp;
use serde_json::json;

use collector_support::browser::{Browser, base64_decode};
use collector_support::{
    machine_report, repo_root, report, runbook, runbook_copy, secrets_for, serve_lab, serve_tls,
    state,
};

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_fleet_and_updates_live() {
    let dir = tempfile::tempdir().unwrap();
    let inv = runbook();
    let secrets = secrets_for(&inv, dir.path());
    // The browser has no client certificate: this collector shows the fleet to anyone
    // (`--public-dashboard`); the one without the flag is opened at the end.
    let public = Config {
        public_dashboard: true,
        ..Config::default()
    };
    let s = state(inv.clone(), dir.path(), public);
    // Some history before the page opens.
    for (n, svc, p) in [
        ("node01", "chainfire", Phase::Bootstrapped),
        ("node01", "flaredb", Phase::Bootstrapped),
        ("node02", "chainfire", Phase::Joining),
        ("node03", "chainfire", Phase::Failed),
    ] {
        s.store
            .write(WriteOp::Report(report(n, svc, p, "<b>not markup</b>")))
            .await
            .unwrap();
    }
    s.store
        .write(WriteOp::discover(
            "aa:bb:cc:dd:ee:01".into(),
            DiscoverReport {
                primary_mac: "aa:bb:cc:dd:ee:01".into(),
                nics: vec![Nic {
                    name: "eno1".into(),
                    mac: "aa:bb:cc:dd:ee:01".into(),
                    speed_mbps: Some(25000),
                    carrier: Some(true),
                    driver: None,
                }],
                disks: vec![Disk {
                    name: "nvme0n1".into(),
                    size_bytes: 1_920_383_410_176,
                    by_id: vec!["/dev/disk/by-id/nvme-MZQL21T9HCJR_S64G".into()],
                    model: None,
                    rotational: Some(false),
                    removable: None,
                }],
                memory_bytes: 549_755_813_888,
                cpu: Cpu {
                    model: "AMD EPYC 9354P".into(),
                    logical_cpus: 64,
                },
                hostname: Some("nixos".into()),
                firmware: None,
                bmc: None,
            },
            Some("10.0.100.150".into()),
        ))
        .await
        .unwrap();
    let base = serve_tls(s.clone(), &secrets).await;

    let browser_dir = dir.path().join("browser");
    std::fs::create_dir_all(&browser_dir).unwrap();
    let mut b = tokio::task::spawn_blocking({
        let url = format!("{base}/");
        move || {
            let mut b = Browser::launch(&browser_dir);
            b.open(&url);
            b
        }
    })
    .await
    .unwrap();

    let rows = tokio::task::spawn_blocking(move || {
        let rows = b.wait_for(
            "the fleet rows",
            "Array.from(document.querySelectorAll('#nodes tbody tr')).map(r => r.id + '|' + r.dataset.state)",
            |v| v.as_array().is_some_and(|a| a.len() == 5),
        );
        (b, rows)
    })
    .await
    .unwrap();
    let (mut b, rows) = rows;
    assert_eq!(
        rows,
        json!([
            "node-node01|joined",
            "node-node02|in-progress",
            "node-node03|failed",
            "node-node04|pending",
            "node-node05|pending"
        ])
    );
    // A window property survives only if the page is never reloaded.
    b.eval("window.__noReload = 'still-here'");
    let (mut b, checks) = tokio::task::spawn_blocking(move || {
        let failed_bg =
            b.eval("getComputedStyle(document.getElementById('node-node03')).backgroundColor");
        let escaped =
            b.eval("document.getElementById('node-node01').innerHTML.includes('&lt;b&gt;')");
        let unknown = b.eval(
            "Array.from(document.querySelectorAll('#unknown tbody tr')).map(r => r.dataset.mac)",
        );
        let role = b.eval("document.querySelector('#node-node04 td:nth-child(2)').textContent");
        (b, (failed_bg, escaped, unknown, role))
    })
    .await
    .unwrap();
    assert_ne!(checks.0, json!("rgba(0, 0, 0, 0)"), "failed rows stand out");
    assert_eq!(
        checks.1,
        json!(true),
        "messages are shown as text, not markup"
    );
    assert_eq!(checks.2, json!(["aa:bb:cc:dd:ee:01"]));
    assert_eq!(checks.3, json!("worker"));

    // A report arrives while the page is open.
    s.store
        .write(WriteOp::Report(report(
            "node04",
            "chainfire",
            Phase::Joined,
            "joined the cluster",
        )))
        .await
        .unwrap();
    let (mut b, updated) = tokio::task::spawn_blocking(move || {
        let v = b.wait_for(
            "node04 to show as joined",
            "document.getElementById('node-node04').dataset.state + '|' + \
             document.querySelector('#node-node04 .badge[data-service=chainfire]').dataset.phase + '|' + window.__noReload",
            |v| v.as_str().is_some_and(|s| s.starts_with("joined")),
        );
        (b, v)
    })
    .await
    .unwrap();
    assert_eq!(updated, json!("joined|joined|still-here"));

    // A refused report for an unknown node is listed, also without a reload.
    let resp = collector_support::client(&secrets, &secrets, collector_support::As::Node("node01"))
        .post(format!("{base}/v1/reports"))
        .json(&report("node99", "chainfire", Phase::Booted, "who am i"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::FORBIDDEN);
    let (b, rejected) = tokio::task::spawn_blocking(move || {
        let v = b.wait_for(
            "the refused node id to be listed",
            "Array.from(document.querySelectorAll('#rejected tbody tr td:first-child')).map(td => td.textContent).join(',') + '|' + window.__noReload",
            |v| v.as_str().is_some_and(|s| s.starts_with("node99")),
        );
        (b, v)
    })
    .await
    .unwrap();
    assert_eq!(rejected, json!("node99|still-here"));
    let (b, shot) = with(b, |b| {
        let r = b.call("Page.captureScreenshot", json!({"format": "png"}));
        base64_decode(r["data"].as_str().unwrap())
    })
    .await;
    assert!(shot.starts_with(b"\x89PNG"), "screenshot is a PNG");
    let path = target_dir().join("dashboard.png");
    std::fs::write(&path, shot).unwrap();
    eprintln!("dashboard screenshot: {}", path.display());

    // Without --public-dashboard the browser, which has no viewer certificate, sees no fleet
    // and is told how to get one.
    let dir2 = tempfile::tempdir().unwrap();
    let private = state(inv.clone(), dir2.path(), Config::default());
    let base2 = serve_tls(private, &secrets).await;
    let (_b, shown) = with(b, move |b| {
        b.open(&format!("{base2}/"));
        b.wait_for(
            "the certificate message",
            "document.getElementById('error').textContent + '|' + \
             document.querySelectorAll('#nodes tbody tr').length",
            |v| v.as_str().is_some_and(|s| s.contains("viewer")),
        )
    })
    .await;
    let shown = shown.as_str().unwrap().to_string();
    assert!(shown.contains("PKCS#12"), "{shown}");
    assert!(
        shown.ends_with("|0"),
        "fleet rows shown without a certificate: {shown}"
    );
}

/// Runs `f` with the browser on a blocking thread (the collector serves on the runtime's).
async fn with<T: Send + 'static>(
    b: Browser,
    f: impl FnOnce(&mut Browser) -> T + Send + 'static,
) -> (Browser, T) {
    tokio::task::spawn_blocking(move || {
        let mut b = b;
        let v = f(&mut b);
        (b, v)
    })
    .await
    .unwrap()
}

const ENLIST_MAC: &str = "52:54:00:aa:bb:cc";

/// The discovered row's control for ENLIST_MAC: `sel` inside it.
fn in_row(sel: &str) -> String {
    format!("document.querySelector('#unknown tr[data-mac=\"{ENLIST_MAC}\"] {sel}')")
}

/// Choose a role, type a hostname pattern and press "Enlist" as a person would: input and
/// change events, then a mouse click on the button.
fn enlist_as(role: &str, hostname: &str) -> String {
    format!(
        "(() => {{ const s = {sel}; s.value = '{role}'; s.dispatchEvent(new Event('change', {{bubbles: true}})); \
         const h = {host}; h.value = '{hostname}'; h.dispatchEvent(new Event('input', {{bubbles: true}})); \
         {button}.dispatchEvent(new MouseEvent('click', {{bubbles: true, cancelable: true, view: window}})); return true; }})()",
        sel = in_row("select"),
        host = in_row("input"),
        button = in_row("button"),
    )
}

/// Lab mode (plain HTTP, operator actions from loopback: the browser cannot present a client
/// certificate here); the same operator rule as mark-installed (tests/collector_enlist.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovered_machine_is_enlisted_from_its_row_and_moves_to_the_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let (path, inv) = runbook_copy(dir.path());
    let original = std::fs::read_to_string(&path).unwrap();
    let base = serve_lab(state(inv, dir.path(), Config::default())).await;

    let browser_dir = dir.path().join("browser");
    std::fs::create_dir_all(&browser_dir).unwrap();
    let url = format!("{base}/");
    let b = tokio::task::spawn_blocking(move || {
        let mut b = Browser::launch(&browser_dir);
        b.open(&url);
        b
    })
    .await
    .unwrap();
    let (b, _) = with(b, |b| {
        b.wait_for(
            "the fleet rows",
            "document.querySelectorAll('#nodes tbody tr').length",
            |v| v == &json!(5),
        );
        b.eval("window.__noReload = 'still-here'");
    })
    .await;

    // The machine netboots into discovery while the page is open.
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{base}/v1/discover"))
        .json(&machine_report(ENLIST_MAC))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let (b, control) = with(b, |b| {
        b.wait_for(
            "the discovered row",
            &format!("!!{}", in_row("button")),
            |v| v == &json!(true),
        );
        b.eval(&format!(
            "[document.querySelector('#unknown thead').textContent.includes('Enlist as…'), \
             Array.from({}.options).map(o => o.value), {}.textContent]",
            in_row("select"),
            in_row("button")
        ))
    })
    .await;
    assert_eq!(
        control,
        json!([true, ["worker", "control-plane", "all-in-one"], "Enlist"])
    );

    // A pattern giving invalid names: the collector's message in the row, the row stays.
    let (b, error) = with(b, |b| {
        b.eval(&enlist_as("worker", "bad_name##"));
        b.wait_for(
            "the error in the row",
            &format!("{e}.hidden ? '' : {e}.textContent", e = in_row(".err")),
            |v| v.as_str().is_some_and(|s| !s.is_empty()),
        )
    })
    .await;
    let error = error.as_str().unwrap().to_string();
    assert!(
        error.starts_with("Not enlisted: ") && error.contains("hostname"),
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    let b = screenshot(b, "dashboard-enlist.png").await;

    // As a worker with the default name: the row leaves, node06 joins the fleet table.
    let (b, moved) = with(b, |b| {
        b.eval(&enlist_as("worker", ""));
        b.wait_for(
            "node06 in the fleet table",
            "[!!document.querySelector('#unknown tr[data-mac]'), \
              (document.querySelector('#node-node06 td:nth-child(2)') || {}).textContent, \
              (document.querySelector('#node-node06 td:nth-child(3)') || {}).textContent, \
              document.getElementById('unknown-empty').hidden, \
              document.getElementById('notice').textContent.includes('plasmagen generate'), \
              window.__noReload]",
            |v| v[1] == json!("worker"),
        )
    })
    .await;
    assert_eq!(
        moved,
        json!([false, "worker", ENLIST_MAC, false, true, "still-here"])
    );
    let edited = std::fs::read_to_string(&path).unwrap();
    assert!(edited.starts_with(&original));
    let added = &edited[original.len()..];
    assert!(added.contains("hostname = \"node06\""), "{added}");
    assert!(
        added.contains(&format!("mac = \"{ENLIST_MAC}\"")),
        "{added}"
    );

    screenshot(b, "dashboard-enlisted.png").await;
}

async fn screenshot(b: Browser, name: &'static str) -> Browser {
    let (b, shot) = with(b, |b| {
        let r = b.call("Page.captureScreenshot", json!({"format": "png"}));
        base64_decode(r["data"].as_str().unwrap())
    })
    .await;
    assert!(shot.starts_with(b"\x89PNG"));
    std::fs::write(target_dir().join(name), shot).unwrap();
    b
}
