//! `plasmagen rollout OUT [NODE…]`: the flake's current configuration onto running nodes,
//! one at a time, never below quorum (docs/operator.md).

use std::path::PathBuf;
use std::time::Duration;

use plasma_operator::cluster::AdminClient;
use plasma_operator::fleet::cluster_nodes;
use plasma_operator::progress::Progress;
use plasma_operator::provision::shell_quote;
use plasma_operator::rollout::{ROLLBACK, Rollout, RolloutError};
use plasma_operator::ssh::{HostKeys, SshConfig};
use plasma_operator::tools;

use super::Outcome;
use super::fleet::{load_fleet, operator_layout, pick_nodes};
use crate::error::Error;

pub const HELP: &str = "\
1. nix build every target's system closure (one command): a build error stops here, no node
   was touched. 2. The cluster must be healthy (as `plasmagen verify`). 3. Per node, workers
first and the Raft leaders last: nixos-rebuild test --target-host root@PRODUCTION_IP, then the
gate (every member of both groups healthy, leaders present, within --gate-timeout), then
nixos-rebuild switch. A failed test or gate stops the roll and re-activates that node's
current system (switch-to-configuration test of its system profile). SSH: the fleet's
known_hosts, strictly (NIX_SSHOPTS).

Exit codes:
  0   every node switched
  1   a build, the health check, a test or a gate failed (the output says what was rolled back)
  2   bad input (unknown node, missing tools or secrets)";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output directory of `plasmagen generate`.
    pub out: PathBuf,
    /// Nodes to update (default: all).
    pub nodes: Vec<String>,
    /// Secrets directory (default <OUT>/secrets).
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// SSH private key (nixos-rebuild through NIX_SSHOPTS, and the rollback).
    #[arg(short = 'i', long, value_name = "IDENTITY")]
    pub identity: Option<PathBuf>,
    /// How long a node and the cluster may take to be healthy after `test` (seconds).
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub gate_timeout: u64,
    /// Between two health checks (seconds).
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub poll_interval: u64,
    /// Print the commands; run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &Args) -> Result<Outcome, Error> {
    let layout = operator_layout(&args.out, args.secrets.as_deref())?;
    let loaded = load_fleet(&layout.flake)?;
    let inv = &loaded.inventory;
    let all = args.nodes.is_empty();
    let targets: Vec<String> = pick_nodes(inv, &args.nodes, false, all)?
        .iter()
        .map(|n| n.hostname.clone())
        .collect();
    if !layout.known_hosts().is_file() {
        return Err(Error::Usage(format!(
            "{} is missing: run plasmagen generate (it writes the fleet's host keys)",
            layout.known_hosts().display()
        )));
    }
    let client = AdminClient::new(&layout.secrets).map_err(Error::Usage)?;
    let progress = if args.dry_run {
        Progress::new(&[], &layout.logs, "rollout.log", Some(false))
    } else {
        Progress::new(&targets, &layout.logs, "rollout.log", None)
    }
    .map_err(Error::io_at(&layout.logs))?;
    let rollout = Rollout {
        flake: layout.flake.clone(),
        known_hosts: layout.known_hosts(),
        ssh: SshConfig {
            identity: args.identity.clone(),
            ..SshConfig::default()
        },
        client: &client,
        fleet: cluster_nodes(inv),
        progress: &progress,
        gate_timeout: Duration::from_secs(args.gate_timeout),
        poll: Duration::from_secs(args.poll_interval.max(1)),
        log_dir: layout.logs.clone(),
    };
    if args.dry_run {
        return dry_run(&rollout, &targets);
    }
    let missing = tools::missing(&[tools::NIX, tools::NIXOS_REBUILD, tools::SSH]);
    if !missing.is_empty() {
        return Err(Error::Usage(format!(
            "preflight failed, nothing was touched:\n  {}",
            missing.join("\n  ")
        )));
    }
    match rollout.run(&targets) {
        Ok(updated) => {
            drop(progress);
            eprintln!("rollout: switched {}", updated.join(", "));
            Ok(Outcome::Ok)
        }
        Err(e) => {
            drop(progress);
            report(&e);
            Ok(Outcome::Failed)
        }
    }
}

fn report(e: &RolloutError) {
    match e {
        RolloutError::Build(why) => eprintln!("rollout: build failed: {why}"),
        RolloutError::Unhealthy(problems) => {
            eprintln!("rollout: the cluster is not healthy, no node was touched:");
            for p in problems {
                eprintln!("  FAIL: {p}");
            }
        }
        RolloutError::Node {
            node,
            reason,
            rollback,
            updated,
            not_updated,
        } => {
            eprintln!("rollout: stopped at {node}: {reason}");
            match rollback {
                Ok(()) => eprintln!("rollout: {node} rolled back to its current system profile"),
                Err(why) => eprintln!(
                    "rollout: ROLLBACK OF {node} FAILED: {why}; run `{ROLLBACK}` on it by hand"
                ),
            }
            eprintln!(
                "rollout: switched: {}; not updated: {}",
                list(updated),
                list(not_updated)
            );
        }
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn dry_run(rollout: &Rollout<'_>, targets: &[String]) -> Result<Outcome, Error> {
    let q = |argv: Vec<String>| {
        argv.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("nix {}", q(rollout.build_argv(targets)));
    println!(
        "# health check as `plasmagen verify`; then per node, workers first (the Raft leaders \
         are moved to the end once known):"
    );
    let sshopts = shell_quote(&rollout.nix_sshopts());
    let order = rollout.order(targets, &plasma_operator::cluster::Health::default());
    for h in &order {
        let node = rollout
            .fleet
            .iter()
            .find(|n| &n.hostname == h)
            .expect("from the inventory");
        println!(
            "NIX_SSHOPTS={sshopts} nixos-rebuild {}",
            q(rollout.rebuild_argv("test", node))
        );
        println!("# gate: the cluster healthy again");
        println!(
            "NIX_SSHOPTS={sshopts} nixos-rebuild {}",
            q(rollout.rebuild_argv("switch", node))
        );
        let keys = HostKeys::Pinned(rollout.known_hosts.clone());
        println!(
            "# on failure: ssh {}",
            q(rollout.ssh.argv(&node.address, &keys, ROLLBACK))
        );
    }
    Ok(Outcome::Ok)
}
