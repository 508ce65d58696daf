//! `plasmagen rollout`: a new configuration onto a running fleet without ever taking a Raft
//! group below quorum (runbook 7.4). Every closure is built before any node is touched; the
//! cluster must be healthy to start; per node `nixos-rebuild test` → gate (that node and every
//! member of both groups healthy, leaders present) → `nixos-rebuild switch`; workers first,
//! Raft leaders last. A failed test or gate stops the roll and re-activates the node's
//! current system (`switch-to-configuration test` of its system profile: `test` never changed
//! the profile or the boot loader, so that is the configuration it ran before).

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::cluster::{self, AdminClient, ClusterNode, Health};
use crate::progress::Progress;
use crate::ssh::{HostKeys, SshConfig};

pub const ROLLBACK: &str = "/nix/var/nix/profiles/system/bin/switch-to-configuration test";

pub struct Rollout<'a> {
    pub flake: PathBuf,
    pub known_hosts: PathBuf,
    pub ssh: SshConfig,
    pub client: &'a AdminClient,
    /// Every node of the inventory (the gate looks at all of them).
    pub fleet: Vec<ClusterNode>,
    pub progress: &'a Progress,
    pub gate_timeout: Duration,
    pub poll: Duration,
    pub log_dir: PathBuf,
}

#[derive(Debug)]
pub enum RolloutError {
    /// A closure did not build: no node was touched.
    Build(String),
    /// The cluster was not healthy before the first node.
    Unhealthy(Vec<String>),
    /// A node failed its test or gate; the roll stopped there.
    Node {
        node: String,
        reason: String,
        rollback: Result<(), String>,
        updated: Vec<String>,
        not_updated: Vec<String>,
    },
}

impl Rollout<'_> {
    /// Workers, then control-plane nodes, then the Raft leaders (FlareDB's, Chainfire's last).
    pub fn order(&self, targets: &[String], health: &Health) -> Vec<String> {
        let rank = |h: &String| {
            let leads: Vec<&str> = health
                .leaders
                .iter()
                .filter(|(_, id)| *id == h)
                .map(|(svc, _)| *svc)
                .collect();
            let node = self.fleet.iter().find(|n| &n.hostname == h);
            let raft = node.map_or(0, |n| n.raft.len());
            (leads.contains(&"chainfire"), !leads.is_empty(), raft)
        };
        let mut order = targets.to_vec();
        order.sort_by_key(|h| rank(h));
        order
    }

    /// `nix build` of every target's system closure, one invocation.
    pub fn build_argv(&self, targets: &[String]) -> Vec<String> {
        let mut argv: Vec<String> = [
            "build",
            "--extra-experimental-features",
            "nix-command flakes",
            "--no-link",
            "--print-out-paths",
        ]
        .map(String::from)
        .to_vec();
        argv.extend(targets.iter().map(|h| {
            format!(
                "{}#nixosConfigurations.{h}.config.system.build.toplevel",
                self.flake.display()
            )
        }));
        argv
    }

    pub fn rebuild_argv(&self, action: &str, node: &ClusterNode) -> Vec<String> {
        vec![
            action.to_string(),
            "--flake".into(),
            format!("{}#{}", self.flake.display(), node.hostname),
            "--target-host".into(),
            self.ssh.destination(&node.address),
        ]
    }

    /// What nixos-rebuild hands to ssh (it reads `NIX_SSHOPTS`): the fleet's known_hosts,
    /// strictly, and the operator's identity.
    pub fn nix_sshopts(&self) -> String {
        let keys = HostKeys::Pinned(self.known_hosts.clone());
        let mut opts: Vec<String> = Vec::new();
        if let Some(id) = &self.ssh.identity {
            opts.push(format!("-i {}", id.display()));
        }
        opts.extend(self.ssh.options(&keys).iter().map(|o| format!("-o {o}")));
        opts.join(" ")
    }

    pub fn build(&self, targets: &[String]) -> Result<(), RolloutError> {
        self.progress.note(&format!(
            "building {} system closure(s) first",
            targets.len()
        ));
        let log = self.log_dir.join("rollout-build.log");
        run_logged(Command::new("nix").args(self.build_argv(targets)), &log).map_err(|e| {
            RolloutError::Build(format!("{e} (log: {}); no node was touched", log.display()))
        })
    }

    pub fn run(&self, targets: &[String]) -> Result<Vec<String>, RolloutError> {
        self.build(targets)?;
        let health = cluster::check(self.client, &self.fleet);
        if !health.is_healthy() {
            return Err(RolloutError::Unhealthy(health.problems));
        }
        let order = self.order(targets, &health);
        let mut updated = Vec::new();
        for (i, h) in order.iter().enumerate() {
            let node = self
                .fleet
                .iter()
                .find(|n| &n.hostname == h)
                .expect("targets come from the fleet");
            if let Err(reason) = self.one(node) {
                self.progress.finish(h, false, &reason);
                let rollback = self.rollback(node);
                return Err(RolloutError::Node {
                    node: h.clone(),
                    reason,
                    rollback,
                    updated,
                    not_updated: order[i + 1..].to_vec(),
                });
            }
            self.progress.finish(h, true, "switched");
            updated.push(h.clone());
        }
        Ok(updated)
    }

    fn one(&self, node: &ClusterNode) -> Result<(), String> {
        let h = &node.hostname;
        let log = self.log_dir.join(h).join("nixos-rebuild.log");
        self.progress.step(h, "nixos-rebuild test");
        self.rebuild("test", node, &log)?;
        self.progress
            .step(h, "gate: waiting for the cluster to be healthy");
        let start = Instant::now();
        loop {
            let health = cluster::check(self.client, &self.fleet);
            if health.is_healthy() {
                break;
            }
            if start.elapsed() >= self.gate_timeout {
                return Err(format!(
                    "gate: not healthy after {} s: {}",
                    self.gate_timeout.as_secs(),
                    health.problems.join("; ")
                ));
            }
            self.progress
                .step(h, &format!("gate: {}", health.problems.join("; ")));
            thread::sleep(self.poll);
        }
        self.progress.step(h, "nixos-rebuild switch");
        self.rebuild("switch", node, &log)
    }

    fn rebuild(
        &self,
        action: &str,
        node: &ClusterNode,
        log: &std::path::Path,
    ) -> Result<(), String> {
        run_logged(
            Command::new("nixos-rebuild")
                .args(self.rebuild_argv(action, node))
                .env("NIX_SSHOPTS", self.nix_sshopts()),
            log,
        )
        .map_err(|e| format!("nixos-rebuild {action}: {e} (log: {})", log.display()))
    }

    /// Re-activate the node's current system profile over SSH (pinned host key).
    pub fn rollback(&self, node: &ClusterNode) -> Result<(), String> {
        self.progress.step(&node.hostname, "rolling back");
        let keys = HostKeys::Pinned(self.known_hosts.clone());
        let log = self.log_dir.join(&node.hostname).join("nixos-rebuild.log");
        run_logged(&mut self.ssh.command(&node.address, &keys, ROLLBACK), &log)
    }
}

/// Runs `cmd` with stdin detached and its output appended to `log`.
fn run_logged(cmd: &mut Command, log: &std::path::Path) -> Result<(), String> {
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        let tail = fs::read_to_string(log).unwrap_or_default();
        let last = tail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(format!("{status}: {last}"))
    }
}
