//! `plasmagen provision`: machines from power-off to their installed system, never over a
//! live node. Per node: guard (collector state + a look over SSH) → one-shot PXE boot and
//! power through the BMC → wait for the installer → look again → nixos-anywhere (kexec, disko,
//! install) → mark installed in the collector → reboot → (LUKS) unlock.
//!
//! Founding members go through a barrier: all of them must reach the installer before any is
//! installed, because two of three installed bootstrap members wait forever for a quorum.
//! Every step is journalled ([`crate::journal`]) for `--resume`, shown ([`crate::progress`])
//! and reported to the collector for its dashboard.

mod node;
pub mod plan;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::bmc::{Action, Bmc, BootMode};
use crate::install::Install;
use crate::journal::Journal;
use crate::progress::Progress;
use crate::ssh::{HostKeys, SshConfig};

/// One machine to provision, everything resolved from the inventory and secrets.
pub struct Target {
    pub hostname: String,
    /// The provisioning IP: the installer's and the installed system's SSH address.
    pub address: String,
    pub bootstrap: bool,
    pub boot_mode: BootMode,
    pub bmc: Box<dyn Bmc>,
    /// The BMC is driven through ipmitool (a tool to find before anything is powered).
    pub needs_ipmitool: bool,
    pub install: Install,
    /// `ssh-ed25519 AAAA…`, the host key the node is installed with (secrets).
    pub installed_host_key: Option<String>,
    /// LUKS root unlocked over initrd SSH after the reboot.
    pub unlock: bool,
}

/// The collector, as provisioning needs it.
pub trait Collector: Send + Sync {
    /// Marked installed, or a member of a Raft group by its own reports.
    fn installed(&self, node: &str) -> Result<bool, String>;
    fn reprovision(&self, node: &str) -> Result<(), String>;
    fn mark_installed(&self, node: &str) -> Result<(), String>;
    /// A provisioning step for the dashboard; best effort (failures are logged, not fatal).
    fn report(&self, node: &str, step: &str, ok: bool, message: &str);
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Install over a node the collector or its SSH says is installed (already confirmed).
    pub reinstall: bool,
    /// Skip what the journal says an earlier run finished.
    pub resume: bool,
    pub max_parallel: usize,
    pub poll: Duration,
    pub installer_timeout: Duration,
}

/// How one node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Skipped(String),
    Failed { step: &'static str, reason: String },
}

impl Outcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed { .. })
    }
}

pub type Unlock<'a> = dyn Fn(&Target, &Progress) -> Result<(), String> + Sync + 'a;

pub struct Run<'a> {
    pub ssh: SshConfig,
    pub log_dir: PathBuf,
    pub collector: &'a dyn Collector,
    pub progress: &'a Progress,
    pub journal: &'a Journal,
    pub options: Options,
    pub unlock: Option<&'a Unlock<'a>>,
}

impl Run<'_> {
    /// Founding members (`bootstrap`) first, through the barrier, then every other node,
    /// `max_parallel` at a time. Results in the order of `targets`.
    pub fn provision(&self, targets: &[Target]) -> Vec<(String, Outcome)> {
        let (founders, joiners): (Vec<&Target>, Vec<&Target>) =
            targets.iter().partition(|t| t.bootstrap);
        let mut results: Vec<(String, Outcome)> = Vec::new();
        if !founders.is_empty() {
            results.extend(self.bootstrap(&founders));
            if results.iter().any(|(_, o)| o.is_failure()) {
                for t in &joiners {
                    let reason = "not started: the founding members failed".to_string();
                    self.progress.finish(&t.hostname, false, &reason);
                    results.push((
                        t.hostname.clone(),
                        Outcome::Failed {
                            step: "barrier",
                            reason,
                        },
                    ));
                }
                return order(targets, results);
            }
        }
        results.extend(self.parallel(&joiners, |t| self.whole(t)));
        order(targets, results)
    }

    fn bootstrap(&self, founders: &[&Target]) -> Vec<(String, Outcome)> {
        let prepared = self.parallel_all(founders, |t| self.prepare(t));
        let failed: Vec<String> = prepared
            .iter()
            .filter(|(_, r)| matches!(r, Err(o) if o.is_failure()))
            .map(|(h, _)| h.clone())
            .collect();
        if !failed.is_empty() {
            let why = format!(
                "barrier: {} did not reach the installer; no founding member was installed",
                failed.join(", ")
            );
            self.progress.note(&why);
            return prepared
                .into_iter()
                .map(|(h, r)| {
                    let outcome = match r {
                        Err(o) => o,
                        Ok(()) => {
                            self.progress.finish(&h, false, &why);
                            Outcome::Failed {
                                step: "barrier",
                                reason: why.clone(),
                            }
                        }
                    };
                    (h, outcome)
                })
                .collect();
        }
        let ready: Vec<&Target> = founders
            .iter()
            .copied()
            .filter(|t| prepared.iter().any(|(h, r)| h == &t.hostname && r.is_ok()))
            .collect();
        let mut results: Vec<(String, Outcome)> = prepared
            .into_iter()
            .filter_map(|(h, r)| r.err().map(|o| (h, o)))
            .collect();
        results.extend(self.parallel_all(&ready, |t| self.finish(t)));
        results
    }

    fn whole(&self, t: &Target) -> Outcome {
        match self.prepare(t) {
            Ok(()) => self.finish(t),
            Err(outcome) => outcome,
        }
    }

    /// Runs `work` on every target at once (the founding members: they wait for each other).
    fn parallel_all<R: Send>(
        &self,
        targets: &[&Target],
        work: impl Fn(&Target) -> R + Sync,
    ) -> Vec<(String, R)> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = targets
                .iter()
                .map(|t| (t.hostname.clone(), scope.spawn(|| work(t))))
                .collect();
            handles
                .into_iter()
                .map(|(h, handle)| (h, handle.join().expect("provisioning thread panicked")))
                .collect()
        })
    }

    /// Runs `work` on the targets, at most `max_parallel` at a time.
    fn parallel(
        &self,
        targets: &[&Target],
        work: impl Fn(&Target) -> Outcome + Sync,
    ) -> Vec<(String, Outcome)> {
        let queue = Mutex::new(targets.iter());
        let results = Mutex::new(Vec::new());
        let workers = self.options.max_parallel.clamp(1, targets.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                        let Some(t) = next else { break };
                        let outcome = work(t);
                        results
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((t.hostname.clone(), outcome));
                    }
                });
            }
        });
        results.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// The installer's host key, recorded at first contact for this node and run.
    pub fn installer_keys(&self, t: &Target) -> HostKeys {
        HostKeys::FirstContact(self.log_dir.join(&t.hostname).join("installer_known_hosts"))
    }
}

fn order(targets: &[Target], mut results: Vec<(String, Outcome)>) -> Vec<(String, Outcome)> {
    results.sort_by_key(|(h, _)| targets.iter().position(|t| &t.hostname == h));
    results
}

/// Every command and request a run would send for `t`, in order, one per line (`--dry-run`).
pub fn dry_run(run: &Run<'_>, t: &Target, collector_url: &str) -> Vec<String> {
    let keys = run.installer_keys(t);
    let quote = |argv: &[String]| {
        argv.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let probe = quote(&run.ssh.argv(&t.address, &keys, "cat /etc/os-release"));
    let mut lines = vec![
        format!("# {}: guard", t.hostname),
        format!("GET {collector_url}/v1/nodes/{}", t.hostname),
        format!("ssh {probe}"),
        format!(
            "# {}: power (skipped when the installer already answers)",
            t.hostname
        ),
    ];
    lines.extend(t.bmc.plan(Action::PxeBootOnce(t.boot_mode)));
    lines.extend(t.bmc.plan(Action::PowerState));
    lines.push("# on: power cycle; off: power on".into());
    lines.extend(t.bmc.plan(Action::PowerOn));
    lines.push(format!(
        "# {}: wait for the installer (repeated until it answers)",
        t.hostname
    ));
    lines.push(format!("ssh {probe}"));
    lines.push(format!("# {}: install", t.hostname));
    lines.push(format!(
        "nixos-anywhere {} < /dev/null",
        quote(&t.install.argv(&run.ssh, &keys))
    ));
    lines.push(format!(
        "POST {collector_url}/v1/nodes/{}/installed",
        t.hostname
    ));
    lines.push(format!(
        "ssh {}",
        quote(&run.ssh.argv(&t.address, &keys, node::REBOOT))
    ));
    if t.unlock {
        lines.push(format!(
            "plasmagen unlock OUT {} --wait (initrd SSH, port 2222)",
            t.hostname
        ));
    }
    lines
}

/// POSIX shell single quotes when needed, so a dry run can be pasted.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+%#".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
