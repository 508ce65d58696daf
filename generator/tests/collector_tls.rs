//! The collector over real mTLS sockets with certificates from plasma-pki: authentication
//! negatives, durability across SIGKILL, and the operator commands (`status`, `mark-installed`,
//! `reprovision`) against a real collector process.

mod collector_support;

use std::process::Output;

use plasma_wire::Phase;
use plasmagen::collector::Config;
use plasmagen::collector::view::{FleetView, NodeView};
use plasmagen::render::pxe;
use reqwest::StatusCode;
use serde_json::Value;

use collector_support::{
    As, client, foreign_secrets, report, runbook, runbook_path, secrets_for, serve_tls,
    spawn_collector, state,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_authentication_negatives() {
    let dir = tempfile::tempdir().unwrap();
    let inv = runbook();
    let secrets = secrets_for(&inv, dir.path());
    let foreign = foreign_secrets(&inv, dir.path());
    let base = serve_tls(state(inv, dir.path(), Config::default()), &secrets).await;
    let url = format!("{base}/v1/reports");
    let r1 = report("node01", "chainfire", Phase::Joining, "joining via node02");

    // The right node: stored.
    let resp = client(&secrets, &secrets, As::Node("node01"))
        .post(&url)
        .json(&r1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap()
    );
    // No certificate: 401 with a JSON error.
    let resp = client(&secrets, &secrets, As::Nobody)
        .post(&url)
        .json(&r1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "no_certificate"
    );
    // node02 reporting as node01: 403.
    let resp = client(&secrets, &secrets, As::Node("node02"))
        .post(&url)
        .json(&r1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "identity_mismatch"
    );
    // A certificate from another CA (same names): the handshake is refused.
    let res = client(&secrets, &foreign, As::Node("node01"))
        .post(&url)
        .json(&r1)
        .send()
        .await;
    assert!(
        res.is_err(),
        "a foreign CA's certificate was accepted: {:?}",
        res.map(|r| r.status())
    );
    // The operator certificate cannot report for a node, a node cannot act as operator.
    let resp = client(&secrets, &secrets, As::Operator)
        .post(&url)
        .json(&r1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let op_url = format!("{base}/v1/nodes/node01/installed");
    let resp = client(&secrets, &secrets, As::Node("node01"))
        .post(&op_url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "not_operator");
    let resp = client(&secrets, &secrets, As::Nobody)
        .post(&op_url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = client(&secrets, &secrets, As::Operator)
        .post(&op_url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Still serving, and only the one good report was stored (read as the operator: fleet
    // reads need the viewer or operator certificate).
    let node: NodeView = client(&secrets, &secrets, As::Operator)
        .get(format!("{base}/v1/nodes/node01"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<_> = node
        .history
        .unwrap()
        .iter()
        .map(|h| h.kind.clone())
        .collect();
    assert_eq!(kinds, ["report", "mark-installed"]);
    // A client that does not trust our CA cannot talk to the collector either (no `-k`).
    let res = client(&foreign, &foreign, As::Operator)
        .get(format!("{base}/health"))
        .send()
        .await;
    assert!(res.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_reports_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let inv = runbook();
    let secrets = secrets_for(&inv, dir.path());
    let db = dir.path().join("c.db");
    let inv_path = runbook_path();
    let args = [
        "--db",
        db.to_str().unwrap(),
        "--inventory",
        inv_path.to_str().unwrap(),
        "--secrets",
        secrets.to_str().unwrap(),
    ];
    let hosts: Vec<String> = inv.nodes.iter().map(|n| n.hostname.clone()).collect();
    const PER_NODE: usize = 60;
    let mut c = spawn_collector(&args);
    // Concurrent senders, one connection per node, so the writer batches them.
    let mut tasks = Vec::new();
    for h in &hosts {
        let cl = client(&secrets, &secrets, As::Node(h));
        let url = format!("{}/v1/reports", c.api);
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = 0;
            for i in 0..PER_NODE {
                let r = report(&h, "chainfire", Phase::Joining, &format!("report {i}"));
                let resp = cl.post(&url).json(&r).send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                acked += 1;
            }
            acked
        }));
    }
    let mut acked = 0;
    for t in tasks {
        acked += t.await.unwrap();
    }
    assert_eq!(acked, PER_NODE * hosts.len());
    // SIGKILL right after the last acknowledgement: no chance to flush anything.
    c.child.kill().unwrap();
    let status = c.child.wait().unwrap();
    assert!(!status.success());
    drop(c);

    let c2 = spawn_collector(&args);
    let cl = client(&secrets, &secrets, As::Operator);
    for h in &hosts {
        let node: NodeView = cl
            .get(format!("{}/v1/nodes/{h}?limit=1000", c2.api))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let msgs: Vec<String> = node
            .history
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect();
        let want: Vec<String> = (0..PER_NODE).map(|i| format!("report {i}")).collect();
        assert_eq!(msgs, want, "{h}: history after restart");
        assert_eq!(node.reports, PER_NODE as u64);
    }
}

fn run(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_plasmagen"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_operator_commands_against_a_real_collector() {
    let dir = tempfile::tempdir().unwrap();
    let inv = runbook();
    let secrets = secrets_for(&inv, dir.path());
    let db = dir.path().join("c.db");
    let sec = secrets.to_str().unwrap().to_string();
    let inv_path = runbook_path();
    let c = spawn_collector(&[
        "--db",
        db.to_str().unwrap(),
        "--inventory",
        inv_path.to_str().unwrap(),
        "--secrets",
        &sec,
        "--boot-listen",
        "127.0.0.1:0",
    ]);
    let api = c.api.clone();
    let boot = c.boot.clone().unwrap();

    // Nothing reported yet: a table, exit 0; --wait times out with exit 1.
    let o = run(&["status", "--collector", &api, "--secrets", &sec]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for h in ["node01", "node02", "node03", "node04", "node05"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(h) && l.contains("pending")),
            "{h} row missing:\n{out}"
        );
    }
    let o = run(&[
        "status",
        "--collector",
        &api,
        "--secrets",
        &sec,
        "--wait",
        "--timeout",
        "2s",
        "--interval",
        "500ms",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("timed out"),
        "{}",
        text(&o)
    );
    // Without the operator certificate's CA the client refuses the server (never `-k`).
    let o = run(&["status", "--collector", &api]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // Install-loop switch through the CLI: boot script before and after mark-installed.
    let n2 = inv.node("node02").unwrap();
    let boot_url = format!("{boot}/boot/{}.ipxe", n2.mac.dashed());
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    assert_eq!(
        plain
            .get(&boot_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        pxe::netboot_script(&inv, n2).unwrap()
    );
    let node_cert = secrets.join("nodes/node02/etc/nixos/secrets/node02-cert.pem");
    let node_key = secrets.join("nodes/node02/etc/nixos/secrets/node02-key.pem");
    let o = run(&[
        "mark-installed",
        "node02",
        "--collector",
        &api,
        "--secrets",
        &sec,
        "--cert",
        node_cert.to_str().unwrap(),
        "--key",
        node_key.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("403"),
        "{}",
        text(&o)
    );
    let o = run(&[
        "mark-installed",
        "node02",
        "--collector",
        &api,
        "--secrets",
        &sec,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        plain
            .get(&boot_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        pxe::local_boot_script(n2).unwrap()
    );
    let o = run(&[
        "reprovision",
        "node02",
        "--collector",
        &api,
        "--secrets",
        &sec,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        plain
            .get(&boot_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        pxe::netboot_script(&inv, n2).unwrap()
    );
    let o = run(&[
        "reprovision",
        "node99",
        "--collector",
        &api,
        "--secrets",
        &sec,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // The fleet comes up while `status --wait` watches.
    let waiter = std::thread::spawn({
        let (api, sec) = (api.clone(), sec.clone());
        move || {
            run(&[
                "status",
                "--collector",
                &api,
                "--secrets",
                &sec,
                "--wait",
                "--timeout",
                "60s",
                "--interval",
                "300ms",
            ])
        }
    });
    for n in &inv.nodes {
        let cl = client(&secrets, &secrets, As::Node(&n.hostname));
        for svc in n.role.raft_services() {
            for phase in [Phase::Booted, Phase::Joining, Phase::Joined] {
                let r = report(&n.hostname, svc.name(), phase, "ok");
                let resp = cl
                    .post(format!("{api}/v1/reports"))
                    .json(&r)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
            }
        }
    }
    let o = waiter.join().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("5 nodes: 5 joined"),
        "{}",
        text(&o)
    );

    let o = run(&["status", "--collector", &api, "--secrets", &sec, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let fleet: FleetView = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(fleet.summary.joined, 5);

    // One node fails: --wait exits 1 at once and names it.
    let cl = client(&secrets, &secrets, As::Node("node05"));
    let r = report("node05", "chainfire", Phase::Failed, "raft: join refused");
    assert_eq!(
        cl.post(format!("{api}/v1/reports"))
            .json(&r)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let o = run(&[
        "status",
        "--collector",
        &api,
        "--secrets",
        &sec,
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("failed: node05"),
        "{}",
        text(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_tls_files_and_the_lab_mode() {
    let dir = tempfile::tempdir().unwrap();
    let inv = runbook();
    let secrets = secrets_for(&inv, dir.path());
    let inv_path = runbook_path();
    let p = |rel: &str| secrets.join(rel).to_str().unwrap().to_string();
    let db1 = dir.path().join("a.db");
    // The NixOS module passes the three files explicitly (systemd credentials).
    let c = spawn_collector(&[
        "--db",
        db1.to_str().unwrap(),
        "--inventory",
        inv_path.to_str().unwrap(),
        "--tls-cert",
        &p("pxe-server/pxe-server-cert.pem"),
        "--tls-key",
        &p("pxe-server/pxe-server-key.pem"),
        "--client-ca",
        &p("ca/ca-cert.pem"),
    ]);
    assert!(c.api.starts_with("https://"));
    let r = report("node03", "flaredb", Phase::Joining, "x");
    let resp = client(&secrets, &secrets, As::Node("node03"))
        .post(format!("{}/v1/reports", c.api))
        .json(&r)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    drop(c);

    // Lab mode: plain HTTP, node ids trusted, operator actions from loopback.
    let db2 = dir.path().join("b.db");
    let c = spawn_collector(&[
        "--db",
        db2.to_str().unwrap(),
        "--inventory",
        inv_path.to_str().unwrap(),
        "--insecure-http",
    ]);
    assert!(c.api.starts_with("http://"));
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = plain
        .post(format!("{}/v1/reports", c.api))
        .json(&r)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ghost = report("node99", "chainfire", Phase::Booted, "x");
    let resp = plain
        .post(format!("{}/v1/reports", c.api))
        .json(&ghost)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let o = run(&["mark-installed", "node03", "--collector", &c.api]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["status", "--collector", &c.api, "--json"]);
    let fleet: FleetView = serde_json::from_slice(&o.stdout).unwrap();
    let n3 = fleet.nodes.iter().find(|n| n.hostname == "node03").unwrap();
    assert!(n3.installed);
    assert_eq!(n3.services[0].phase, "joining");
    assert_eq!(fleet.rejected_unknown_nodes[0].node_id, "node99");
}

/// SIGHUP makes the running collector read its `--inventory` file again (`plasmagen lab
/// reload`, `plasmagen up` after enlisting): a node added to the file is served; an invalid
/// file is refused and the inventory being served stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_inventory_file_and_keeps_the_old_one_when_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let inv = runbook();
    let secrets = secrets_for(&inv, dir.path());
    let sec = secrets.to_str().unwrap().to_string();
    let db = dir.path().join("c.db");
    let inv_path = dir.path().join("inventory.toml");
    let original = std::fs::read_to_string(runbook_path()).unwrap();
    std::fs::write(&inv_path, &original).unwrap();
    let c = spawn_collector(&[
        "--db",
        db.to_str().unwrap(),
        "--inventory",
        inv_path.to_str().unwrap(),
        "--secrets",
        &sec,
    ]);
    let hup = || {
        let st = std::process::Command::new("kill")
            .args(["-HUP", &c.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    };
    let hosts = |o: &Output| -> Vec<String> {
        let v: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)));
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["hostname"].as_str().unwrap().to_string())
            .collect()
    };
    let status = || run(&["status", "--collector", &c.api, "--secrets", &sec, "--json"]);
    assert!(!hosts(&status()).contains(&"node06".to_string()));

    let node06 = "\n[[nodes]]\nhostname = \"node06\"\nrole = \"worker\"\nmac = \"52:54:00:12:34:66\"\nprovisioning_ip = \"10.0.100.62\"\nproduction_ip = \"10.0.200.22\"\n";
    std::fs::write(&inv_path, format!("{original}{node06}")).unwrap();
    hup();
    let mut seen = false;
    for _ in 0..50 {
        if hosts(&status()).contains(&"node06".to_string()) {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen, "node06 not served after SIGHUP");

    // An invalid file (a duplicate MAC) is not served: node06 stays, the collector runs.
    let dup = node06
        .replace("node06", "node07")
        .replace("10.0.100.62", "10.0.100.63")
        .replace("10.0.200.22", "10.0.200.23");
    std::fs::write(&inv_path, format!("{original}{node06}{dup}")).unwrap();
    hup();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let now = hosts(&status());
    assert!(now.contains(&"node06".to_string()), "{now:?}");
    assert!(!now.contains(&"node07".to_string()), "{now:?}");
}
