//! `plasmagen verify`, `rollout` and `decommission` against a running lab fleet
//! (provision_lab): installed machines behind emulated IPMI BMCs, real sshd with the fleet's
//! generated host keys, the admin APIs with the generated certificates (cluster_sim.py), and
//! recording nix / nixos-rebuild stand-ins that activate over real SSH. Needs root.

mod common;
mod provision_lab;

use provision_lab::{Lab, text};
use serde_json::json;

/// node01-03 found the cluster (chainfire leader node01, flaredb leader node02); node04 works.
fn fleet() -> Lab {
    let mut lab = Lab::new(&[
        ("node01", true),
        ("node02", true),
        ("node03", true),
        ("node04", false),
    ]);
    lab.installed_and_running();
    lab.start_cluster(("node01", "node02"));
    lab
}

fn key(lab: &Lab) -> String {
    lab.key.display().to_string()
}

#[test]
fn verify_passes_a_healthy_fleet_and_names_every_problem() {
    let lab = fleet();
    let o = lab.operate("verify", &["-i", &key(&lab)]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("chainfire leader: node01"), "{out}");
    assert!(out.contains("flaredb leader: node02"), "{out}");
    assert!(out.contains("healthy/leader"), "{out}");
    // Every admin request was made with the operator certificate (mutual TLS).
    let requests = lab.admin_requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r["client"] == requests[0]["client"])
    );
    assert!(requests[0]["client"].as_str().unwrap().contains("operator"));

    lab.touch("broken-node03");
    let mut state = lab.cluster_state();
    state["nodes"]["ghost"] = json!({"address": "10.0.200.99", "services": []});
    state["members"]["chainfire"]
        .as_array_mut()
        .unwrap()
        .push(json!("ghost"));
    lab.set_cluster(&state);
    // node04 comes back with a host key that is not the generated one.
    let other = lab.dir.path().join("stranger_key");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::write(
        lab.machine_dir("node04").join("installed_host_key_path"),
        other.display().to_string(),
    )
    .unwrap();
    lab.boot("node04", "default");

    let o = lab.operate("verify", &["-i", &key(&lab)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for expected in [
        "FAIL: chainfire: node03 is unhealthy",
        "FAIL: flaredb: node03 /health",
        "FAIL: chainfire: member ghost",
        "FAIL: node04: ssh 10.0.200.13: HOST KEY DOES NOT MATCH",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn rollout_builds_first_goes_workers_first_leaders_last_and_gates_each_switch() {
    let lab = fleet();
    let o = lab.operate("rollout", &["-i", &key(&lab), "--poll-interval", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let builds = lab.nix_builds();
    assert_eq!(
        builds.len(),
        1,
        "one nix build for every closure: {builds:?}"
    );
    assert_eq!(
        builds[0]
            .iter()
            .filter(|a| a.ends_with(".config.system.build.toplevel"))
            .count(),
        4
    );
    let calls = lab.rebuilds();
    let order: Vec<String> = calls
        .iter()
        .map(|c| c.split(" stdin").next().unwrap().to_string())
        .collect();
    assert_eq!(
        order,
        [
            "test root@10.0.200.13",
            "switch root@10.0.200.13",
            "test root@10.0.200.12",
            "switch root@10.0.200.12",
            "test root@10.0.200.11",
            "switch root@10.0.200.11",
            "test root@10.0.200.10",
            "switch root@10.0.200.10",
        ],
        "workers, then control plane, FlareDB's leader, Chainfire's leader last"
    );
    let known_hosts = lab.out.join("secrets/known_hosts");
    for c in &calls {
        assert!(c.contains("stdin=not-a-tty"), "{c}");
        assert!(c.contains("StrictHostKeyChecking=yes"), "{c}");
        assert!(
            c.contains(&format!("UserKnownHostsFile={}", known_hosts.display())),
            "{c}"
        );
    }
    assert_eq!(lab.activations("node01"), ["test", "switch"]);
}

#[test]
fn a_node_that_breaks_is_rolled_back_and_the_roll_stops() {
    let lab = fleet();
    lab.touch("breaks-node03");
    let o = lab.operate(
        "rollout",
        &[
            "-i",
            &key(&lab),
            "--poll-interval",
            "1",
            "--gate-timeout",
            "3",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("stopped at node03: gate: not healthy"),
        "{err}"
    );
    assert!(err.contains("node03 rolled back"), "{err}");
    assert!(
        err.contains("switched: node04; not updated: node02, node01"),
        "{err}"
    );
    assert_eq!(lab.activations("node03"), ["test", "rollback"]);
    assert!(lab.activations("node02").is_empty());
    assert!(!lab.dir.path().join("broken-node03").exists());
}

#[test]
fn nothing_is_touched_when_a_build_fails_or_the_cluster_is_unhealthy() {
    let lab = fleet();
    lab.touch("fail-build");
    let o = lab.operate("rollout", &["-i", &key(&lab)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no node was touched"));
    assert!(lab.rebuilds().is_empty());

    std::fs::remove_file(lab.dir.path().join("fail-build")).unwrap();
    lab.touch("broken-node02");
    let o = lab.operate("rollout", &["-i", &key(&lab)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not healthy, no node was touched"), "{err}");
    assert!(err.contains("node02"), "{err}");
    assert!(lab.rebuilds().is_empty());
}

#[test]
fn decommission_checks_asks_removes_at_the_leader_and_powers_off() {
    let lab = fleet();
    // No terminal and no --yes: refused, nothing removed.
    let o = lab.operate("decommission", &["node04"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pass --yes"));
    assert_eq!(
        lab.cluster_state()["members"]["chainfire"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    // A founding member needs --force.
    let o = lab.operate("decommission", &["node03", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("founding member"));
    // With node02 and node03 down, Chainfire without node04 has 1 healthy of 3: refused.
    lab.touch("broken-node02");
    lab.touch("broken-node03");
    let o = lab.operate("decommission", &["node04", "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("chainfire would have 1 healthy of 3 members: no quorum"),
        "{err}"
    );
    assert_eq!(
        lab.cluster_state()["members"]["chainfire"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    for marker in ["broken-node02", "broken-node03"] {
        std::fs::remove_file(lab.dir.path().join(marker)).unwrap();
    }

    let before = lab.bmc_actions("node04");
    let o = lab.operate("decommission", &["node04", "--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("node04: chainfire member (healthy, follower); leader node01"),
        "{err}"
    );
    let members = lab.cluster_state()["members"]["chainfire"].clone();
    assert!(
        !members.as_array().unwrap().contains(&json!("node04")),
        "{members}"
    );
    let deletes: Vec<_> = lab
        .admin_requests()
        .into_iter()
        .filter(|r| r["method"] == "DELETE" && r["path"] == "/admin/member/node04")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0]["node"], "node01", "not sent to the leader");
    let after = lab.bmc_actions("node04");
    assert_eq!(&after[before.len()..], ["power_off"]);
}
