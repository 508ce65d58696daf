//! The running cluster as the operator sees it through the services' admin API
//! (docs/admin-api.md): mutual TLS with the operator certificate against each node's
//! production IP, verified against the cluster CA only (every node certificate carries its
//! production IP). One [`Health`] answer for `verify`, the rollout gate and `decommission`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use plasma_collector::client::describe;
use plasma_wire::admin::{LeaderHint, Members};
use reqwest::blocking::{Client, Response};
use reqwest::{Certificate, Identity, StatusCode};
use serde_json::Value;

/// A Raft service and its admin port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RaftService {
    pub name: &'static str,
    pub port: u16,
}

pub const CHAINFIRE: RaftService = RaftService {
    name: "chainfire",
    port: 2379,
};
pub const FLAREDB: RaftService = RaftService {
    name: "flaredb",
    port: 2479,
};
pub const IAM_PORT: u16 = 8080;

/// A node as the health check needs it.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    pub hostname: String,
    pub address: String,
    pub bootstrap: bool,
    pub raft: Vec<RaftService>,
    pub iam: bool,
}

pub struct AdminClient {
    http: Client,
}

impl AdminClient {
    /// TLS from `SECRETS/ca/ca-cert.pem` and `SECRETS/operator/operator-{cert,key}.pem`.
    pub fn new(secrets: &Path) -> Result<AdminClient, String> {
        let read = |rel: &str| {
            let p = secrets.join(rel);
            fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
        };
        let ca = Certificate::from_pem(&read("ca/ca-cert.pem")?).map_err(|e| e.to_string())?;
        let mut pem = read("operator/operator-cert.pem")?;
        pem.push(b'\n');
        pem.extend(read("operator/operator-key.pem")?);
        let id = Identity::from_pem(&pem).map_err(|e| e.to_string())?;
        let http = Client::builder()
            .tls_certs_only([ca])
            .identity(id)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(AdminClient { http })
    }

    pub fn url(address: &str, port: u16, path: &str) -> String {
        format!("https://{address}:{port}{path}")
    }

    fn get(&self, url: &str) -> Result<Response, String> {
        self.http.get(url).send().map_err(|e| describe(&e))
    }

    /// `GET /health`: the JSON body when 200 and `"status":"healthy"`.
    pub fn health(&self, address: &str, port: u16) -> Result<Value, String> {
        let resp = self.get(&Self::url(address, port, "/health"))?;
        let status = resp.status();
        let body: Value = resp.json().unwrap_or(Value::Null);
        if status == StatusCode::OK && body["status"] == "healthy" {
            Ok(body)
        } else {
            Err(format!("{status} {body}"))
        }
    }

    pub fn members(&self, address: &str, port: u16) -> Result<Members, String> {
        let resp = self.get(&Self::url(address, port, "/admin/cluster/members"))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        resp.json().map_err(|e| format!("members: {e}"))
    }

    /// The leader's id per `GET /admin/cluster/leader`.
    pub fn leader(&self, address: &str, port: u16) -> Result<String, String> {
        let resp = self.get(&Self::url(address, port, "/admin/cluster/leader"))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let v: Value = resp.json().map_err(|e| e.to_string())?;
        v["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no leader id in {v}"))
    }

    /// `DELETE /admin/member/<id>` starting at `url_root` (`https://ip:port`), following the
    /// contract's redirects and leader hints (at most 5). `Ok(false)`: no such member (404).
    pub fn remove_member(&self, url_root: &str, id: &str) -> Result<bool, String> {
        let mut url = format!("{url_root}/admin/member/{id}");
        for _ in 0..5 {
            let resp = self.http.delete(&url).send().map_err(|e| describe(&e))?;
            let status = resp.status();
            match status {
                s if s.is_success() => return Ok(true),
                StatusCode::NOT_FOUND => return Ok(false),
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => {
                    let next = resp
                        .headers()
                        .get("location")
                        .and_then(|l| l.to_str().ok())
                        .ok_or("redirect without Location")?;
                    let next = reqwest::Url::parse(&url)
                        .and_then(|base| base.join(next))
                        .map_err(|e| e.to_string())?;
                    if next.scheme() != "https" {
                        return Err(format!("refusing a redirect to {next}"));
                    }
                    url = next.to_string();
                }
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::MISDIRECTED_REQUEST => {
                    let hint: LeaderHint = resp
                        .json()
                        .map_err(|_| format!("{status} without a leader hint"))?;
                    if !hint.leader.starts_with("https://") {
                        return Err(format!("refusing a leader hint to {}", hint.leader));
                    }
                    url = format!("{}/admin/member/{id}", hint.leader.trim_end_matches('/'));
                }
                other => {
                    let body = resp.text().unwrap_or_default();
                    return Err(format!("{other}: {}", body.trim()));
                }
            }
        }
        Err("more than 5 redirects or leader hints".into())
    }
}

/// One service's state on one node, for the table.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    pub status: String,
    pub role: String,
}

/// The whole cluster's health, all problems at once.
#[derive(Debug, Default)]
pub struct Health {
    /// `node → service → (status, role)`; IAM as `iam` with its `database` as the role.
    pub cells: BTreeMap<String, BTreeMap<&'static str, Cell>>,
    /// Service → the leader's id, when there is exactly one.
    pub leaders: BTreeMap<&'static str, String>,
    pub problems: Vec<String>,
    /// Service → membership as seen (for decommission's quorum check).
    pub members: BTreeMap<&'static str, Members>,
}

impl Health {
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Ask the cluster: membership and leader of each Raft service (runbook 6.3), every member
/// healthy, nothing stale, one leader that every founding member agrees on; IAM healthy with
/// its database connected (6.2).
pub fn check(client: &AdminClient, nodes: &[ClusterNode]) -> Health {
    let mut health = Health::default();
    for svc in [CHAINFIRE, FLAREDB] {
        check_service(client, nodes, svc, &mut health);
    }
    for n in nodes.iter().filter(|n| n.iam) {
        let cell = match client.health(&n.address, IAM_PORT) {
            Ok(body) => {
                let db = body["database"].as_str().unwrap_or("?").to_string();
                if db != "connected" {
                    health
                        .problems
                        .push(format!("{}: iam database {db:?}", n.hostname));
                }
                Cell {
                    status: "healthy".into(),
                    role: db,
                }
            }
            Err(e) => {
                health
                    .problems
                    .push(format!("{}: iam /health: {e}", n.hostname));
                Cell {
                    status: "down".into(),
                    role: "-".into(),
                }
            }
        };
        health
            .cells
            .entry(n.hostname.clone())
            .or_default()
            .insert("iam", cell);
    }
    health
}

fn check_service(
    client: &AdminClient,
    nodes: &[ClusterNode],
    svc: RaftService,
    health: &mut Health,
) {
    let expected: Vec<&ClusterNode> = nodes.iter().filter(|n| n.raft.contains(&svc)).collect();
    if expected.is_empty() {
        return;
    }
    // Founding members first: they are the ones that must exist.
    let mut askable = expected.clone();
    askable.sort_by_key(|n| !n.bootstrap);
    let Some(members) = askable
        .iter()
        .find_map(|n| client.members(&n.address, svc.port).ok())
    else {
        health.problems.push(format!(
            "{}: no member answers /admin/cluster/members",
            svc.name
        ));
        return;
    };
    for n in &expected {
        let cell = match members.members.iter().find(|m| m.id == n.hostname) {
            Some(m) => {
                if m.status != "healthy" {
                    health.problems.push(format!(
                        "{}: {} is {} ({})",
                        svc.name, n.hostname, m.status, m.role
                    ));
                }
                Cell {
                    status: m.status.clone(),
                    role: m.role.clone(),
                }
            }
            None => {
                health
                    .problems
                    .push(format!("{}: {} is not a member", svc.name, n.hostname));
                Cell {
                    status: "absent".into(),
                    role: "-".into(),
                }
            }
        };
        if let Err(e) = client.health(&n.address, svc.port) {
            health
                .problems
                .push(format!("{}: {} /health: {e}", svc.name, n.hostname));
        }
        health
            .cells
            .entry(n.hostname.clone())
            .or_default()
            .insert(svc.name, cell);
    }
    for m in &members.members {
        if !expected.iter().any(|n| n.hostname == m.id) {
            health.problems.push(format!(
                "{}: member {} ({}) is not in the inventory: stale (plasmagen decommission, or DELETE /admin/member/{})",
                svc.name, m.id, m.raft_addr, m.id
            ));
        }
    }
    let leaders: Vec<&str> = members
        .members
        .iter()
        .filter(|m| m.role == "leader")
        .map(|m| m.id.as_str())
        .collect();
    match leaders.as_slice() {
        [one] => {
            for n in expected.iter().filter(|n| n.bootstrap) {
                match client.leader(&n.address, svc.port) {
                    Ok(id) if id == *one => {}
                    Ok(id) => health.problems.push(format!(
                        "{}: {} names {id} as leader, the membership names {one}",
                        svc.name, n.hostname
                    )),
                    Err(e) => health.problems.push(format!(
                        "{}: {} /admin/cluster/leader: {e}",
                        svc.name, n.hostname
                    )),
                }
            }
            health.leaders.insert(svc.name, one.to_string());
        }
        [] => health.problems.push(format!("{}: no leader", svc.name)),
        many => health.problems.push(format!(
            "{}: {} leaders: {}",
            svc.name,
            many.len(),
            many.join(", ")
        )),
    }
    health.members.insert(svc.name, members);
}
