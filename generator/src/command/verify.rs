//! `plasmagen verify OUT`: is the fleet what the inventory says (runbook 6.2-6.4)? Raft
//! membership and leaders, every member healthy, IAM with its database, and every node's SSH
//! host key the one generated for it.

use std::path::PathBuf;

use plasma_operator::cluster::{self, AdminClient};
use plasma_operator::fleet::cluster_nodes;
use plasma_operator::provision::shell_quote;
use plasma_operator::ssh::{HostKeys, Look, SshConfig};

use super::Outcome;
use super::fleet::{load_fleet, operator_layout};
use crate::error::Error;

pub const HELP: &str = "\
Asks the first founding member that answers for the Chainfire (:2379) and FlareDB (:2479)
membership: every inventory node that runs the service is a healthy member, nothing else is,
exactly one leader, and every founding member names it (GET /admin/cluster/leader). IAM
(:8080) /health must be healthy with its database connected. Mutual TLS with the operator
certificate, checked against the cluster CA, on the production IPs. Then an SSH login to every
node with the fleet's known_hosts, strictly (a changed host key is a failure).

Exit codes:
  0   everything as the inventory says
  1   a problem (each printed as FAIL: ...)
  2   bad input (no generated output, unreadable secrets)";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output directory of `plasmagen generate`.
    pub out: PathBuf,
    /// Secrets directory (default <OUT>/secrets).
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// SSH private key for the host key check.
    #[arg(short = 'i', long, value_name = "IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Skip the SSH host key check.
    #[arg(long)]
    pub no_ssh: bool,
    /// Print the requests and commands; send nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &Args) -> Result<Outcome, Error> {
    let layout = operator_layout(&args.out, args.secrets.as_deref())?;
    let loaded = load_fleet(&layout.flake)?;
    let fleet = cluster_nodes(&loaded.inventory);
    let ssh = SshConfig {
        identity: args.identity.clone(),
        ..SshConfig::default()
    };
    let keys = HostKeys::Pinned(layout.known_hosts());
    if args.dry_run {
        for n in &fleet {
            for svc in &n.raft {
                for path in ["/health", "/admin/cluster/members", "/admin/cluster/leader"] {
                    println!("GET {}", AdminClient::url(&n.address, svc.port, path));
                }
            }
            if n.iam {
                println!(
                    "GET {}",
                    AdminClient::url(&n.address, cluster::IAM_PORT, "/health")
                );
            }
            if !args.no_ssh {
                let argv: Vec<String> = ssh
                    .argv(&n.address, &keys, "true")
                    .iter()
                    .map(|a| shell_quote(a))
                    .collect();
                println!("ssh {}", argv.join(" "));
            }
        }
        return Ok(Outcome::Ok);
    }
    let client = AdminClient::new(&layout.secrets).map_err(Error::Usage)?;
    let mut health = cluster::check(&client, &fleet);
    if !args.no_ssh {
        for n in &fleet {
            match Look::at(&ssh, &n.address, &keys, None) {
                Look::Unreachable { reason } => health
                    .problems
                    .push(format!("{}: ssh {}: {reason}", n.hostname, n.address)),
                Look::HostKeyMismatch { detail } => health.problems.push(format!(
                    "{}: ssh {}: HOST KEY DOES NOT MATCH {} ({detail})",
                    n.hostname,
                    n.address,
                    layout.known_hosts().display()
                )),
                _ => {}
            }
        }
    }
    print_table(&fleet, &health);
    for p in &health.problems {
        eprintln!("FAIL: {p}");
    }
    Ok(if health.is_healthy() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

fn print_table(fleet: &[cluster::ClusterNode], health: &cluster::Health) {
    let width = fleet
        .iter()
        .map(|n| n.hostname.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:width$}  {:15}  {:24}  {:24}  IAM",
        "NODE", "ADDRESS", "CHAINFIRE", "FLAREDB"
    );
    for n in fleet {
        let cells = health.cells.get(&n.hostname);
        let cell = |svc: &str| {
            cells
                .and_then(|c| c.get(svc))
                .map_or("-".to_string(), |c| format!("{}/{}", c.status, c.role))
        };
        println!(
            "{:width$}  {:15}  {:24}  {:24}  {}",
            n.hostname,
            n.address,
            cell("chainfire"),
            cell("flaredb"),
            cell("iam")
        );
    }
    for (svc, leader) in &health.leaders {
        println!("{svc} leader: {leader}");
    }
}
