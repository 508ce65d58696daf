//! One node's steps. `prepare` ends with the machine in the installer (or a reason why not);
//! `finish` installs it. Both check before they act and journal after.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use super::{Outcome, Run, Target};
use crate::bmc::PowerState;
use crate::journal::Step;
use crate::ssh::{HostKeys, Look};

/// Reboot in the background so the SSH session ends cleanly first (nixos-anywhere's own reboot
/// phase does the same, src/nixos-anywhere.sh:930).
pub const REBOOT: &str = "nohup sh -c 'sleep 2; reboot' >/dev/null 2>&1 &";
const REBOOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

fn failed(step: &'static str, reason: impl Into<String>) -> Outcome {
    Outcome::Failed {
        step,
        reason: reason.into(),
    }
}

impl Run<'_> {
    fn say(&self, t: &Target, step: &str, message: &str) {
        self.progress.step(&t.hostname, message);
        self.collector.report(&t.hostname, step, true, message);
    }

    fn fail(&self, t: &Target, outcome: Outcome) -> Outcome {
        if let Outcome::Failed { step, reason } = &outcome {
            self.progress
                .finish(&t.hostname, false, &format!("{step}: {reason}"));
            self.collector.report(&t.hostname, step, false, reason);
        }
        outcome
    }

    fn journal(&self, t: &Target, step: Step) -> Result<(), Outcome> {
        self.journal
            .record(&t.hostname, step)
            .map_err(|e| self.fail(t, failed("journal", e)))
    }

    fn resumed(&self, t: &Target) -> Option<Step> {
        if self.options.resume {
            self.journal.done(&t.hostname)
        } else {
            None
        }
    }

    /// Guard, power, wait: `Ok` when the node is in the installer, ready for `finish`.
    pub(super) fn prepare(&self, t: &Target) -> Result<(), Outcome> {
        let done = self.resumed(t);
        if done >= Some(Step::InInstaller) {
            self.progress
                .step(&t.hostname, "resuming after the installer was reached");
            return Ok(());
        }
        self.say(t, "guard", "checking the collector and the machine");
        let installed = self
            .collector
            .installed(&t.hostname)
            .map_err(|e| self.fail(t, failed("guard", format!("collector: {e}"))))?;
        if installed && !self.options.reinstall {
            let why = "already installed (collector); --reinstall to install it again".to_string();
            self.progress.finish(&t.hostname, true, &why);
            return Err(Outcome::Skipped(why));
        }
        let keys = self.installer_keys(t);
        forget_installer_key(&keys);
        let look = Look::at(
            &self.ssh,
            &t.address,
            &keys,
            t.installed_host_key.as_deref(),
        );
        let live = matches!(look, Look::Live { .. } | Look::NodeHostKey);
        if matches!(look, Look::HostKeyMismatch { .. }) || (live && !self.options.reinstall) {
            return Err(self.fail(
                t,
                failed(
                    "guard",
                    format!(
                        "{} answers as {look}; nothing was powered or installed \
                         (--reinstall installs over it, after confirmation)",
                        t.address
                    ),
                ),
            ));
        }
        if installed || live {
            self.collector.reprovision(&t.hostname).map_err(|e| {
                self.fail(t, failed("guard", format!("collector reprovision: {e}")))
            })?;
        }
        if look == Look::Installer {
            // The look just recorded this installer's key: nothing to power or wait for.
            self.say(t, "power", "already in the installer, not powered");
            self.journal(t, Step::Powered)?;
        } else {
            self.power(t)?;
            self.journal(t, Step::Powered)?;
            self.wait_for_installer(t)?;
        }
        self.journal(t, Step::InInstaller)
    }

    fn power(&self, t: &Target) -> Result<(), Outcome> {
        let bmc = &t.bmc;
        self.say(
            t,
            "power",
            &format!("PXE boot once through {}", bmc.describe()),
        );
        let step = |e: crate::bmc::BmcError| self.fail(t, failed("power", e.to_string()));
        bmc.pxe_boot_once(t.boot_mode).map_err(step)?;
        match bmc.power_state().map_err(step)? {
            PowerState::On => {
                self.say(t, "power", "powered on: hard reset into PXE");
                bmc.power_cycle().map_err(step)?;
            }
            PowerState::Off | PowerState::Unknown => {
                self.say(t, "power", "power on into PXE");
                bmc.power_on().map_err(step)?;
            }
        }
        Ok(())
    }

    fn wait_for_installer(&self, t: &Target) -> Result<(), Outcome> {
        let keys = self.installer_keys(t);
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        loop {
            let waited = start.elapsed().as_secs();
            self.progress.step(
                &t.hostname,
                &format!(
                    "waiting for the installer on {} ({waited} s; {last})",
                    t.address
                ),
            );
            // Each boot of the installer has a new key: record afresh until it answers.
            forget_installer_key(&keys);
            match Look::at(
                &self.ssh,
                &t.address,
                &keys,
                t.installed_host_key.as_deref(),
            ) {
                Look::Installer => {
                    self.say(t, "installer", "the installer answers SSH");
                    return Ok(());
                }
                look @ (Look::Live { .. } | Look::NodeHostKey) => {
                    return Err(self.fail(
                        t,
                        failed(
                            "installer",
                            format!(
                                "{} booted {look} instead of the installer (PXE boot not taken?)",
                                t.address
                            ),
                        ),
                    ));
                }
                other => last = other.to_string(),
            }
            if start.elapsed() >= self.options.installer_timeout {
                return Err(self.fail(
                    t,
                    failed(
                        "installer",
                        format!(
                            "no installer on {} after {} s: {last}",
                            t.address,
                            self.options.installer_timeout.as_secs()
                        ),
                    ),
                ));
            }
            thread::sleep(self.options.poll);
        }
    }

    /// Look again (the same installer, same key), install, mark installed, reboot, unlock.
    pub(super) fn finish(&self, t: &Target) -> Outcome {
        match self.finish_steps(t) {
            Ok(()) => {
                self.progress.finish(&t.hostname, true, "installed");
                self.collector.report(
                    &t.hostname,
                    "done",
                    true,
                    "installed by plasmagen provision",
                );
                Outcome::Done
            }
            Err(outcome) => outcome,
        }
    }

    fn finish_steps(&self, t: &Target) -> Result<(), Outcome> {
        let done = self.resumed(t);
        let keys = self.installer_keys(t);
        if done < Some(Step::Installed) {
            match Look::at(
                &self.ssh,
                &t.address,
                &keys,
                t.installed_host_key.as_deref(),
            ) {
                Look::Installer => {}
                look => {
                    return Err(self.fail(
                        t,
                        failed(
                            "install",
                            format!("{} is no longer the installer: {look}", t.address),
                        ),
                    ));
                }
            }
            self.install(t, &keys)?;
            self.journal(t, Step::Installed)?;
        }
        if done < Some(Step::MarkedInstalled) {
            self.say(t, "mark-installed", "marking installed in the collector");
            self.collector.mark_installed(&t.hostname).map_err(|e| {
                self.fail(
                    t,
                    failed(
                        "mark-installed",
                        format!("{e}; the node stays in the installer (run again with --resume)"),
                    ),
                )
            })?;
            self.journal(t, Step::MarkedInstalled)?;
        }
        if done < Some(Step::Rebooted) {
            self.say(t, "reboot", "rebooting into the installed system");
            let out = self
                .ssh
                .command(&t.address, &keys, REBOOT)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .map_err(|e| self.fail(t, failed("reboot", format!("cannot run ssh: {e}"))))?;
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
                return Err(self.fail(t, failed("reboot", err)));
            }
            self.wait_until_gone(t, &keys)?;
            self.journal(t, Step::Rebooted)?;
        }
        if t.unlock
            && done < Some(Step::Unlocked)
            && let Some(unlock) = self.unlock
        {
            self.say(t, "unlock", "sending the LUKS passphrase to the initrd");
            unlock(t, self.progress).map_err(|e| self.fail(t, failed("unlock", e)))?;
            self.journal(t, Step::Unlocked)?;
        }
        Ok(())
    }

    /// The reboot runs in the background on the node, so its success says nothing: wait until
    /// the installer stops answering (nixos-anywhere's reboot phase waits the same way,
    /// src/nixos-anywhere.sh:933-934).
    fn wait_until_gone(&self, t: &Target, keys: &HostKeys) -> Result<(), Outcome> {
        let start = Instant::now();
        let limit = self.options.installer_timeout.min(REBOOT_TIMEOUT);
        while Look::at(&self.ssh, &t.address, keys, None) == Look::Installer {
            if start.elapsed() >= limit {
                return Err(self.fail(
                    t,
                    failed(
                        "reboot",
                        format!(
                            "the installer still answers {} s after the reboot command",
                            limit.as_secs()
                        ),
                    ),
                ));
            }
            thread::sleep(self.options.poll);
        }
        Ok(())
    }

    /// nixos-anywhere with its output in `logs/<node>/nixos-anywhere.log`; its `### step ###`
    /// lines (src/nixos-anywhere.sh:214) become the node's progress line.
    fn install(&self, t: &Target, keys: &HostKeys) -> Result<(), Outcome> {
        let log_path = self.progress.log_file(&t.hostname, "nixos-anywhere.log");
        self.say(
            t,
            "install",
            &format!("nixos-anywhere (log: {})", log_path.display()),
        );
        let log = fs::File::create(&log_path)
            .map_err(|e| self.fail(t, failed("install", format!("{}: {e}", log_path.display()))))?;
        let mut cmd: Command = t.install.command(&self.ssh, keys);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                self.fail(
                    t,
                    failed("install", format!("cannot run nixos-anywhere: {e}")),
                )
            })?;
        let log = Arc::new(Mutex::new(log));
        let pipes: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        let last = Arc::new(Mutex::new(String::new()));
        thread::scope(|scope| {
            for pipe in pipes {
                let log = Arc::clone(&log);
                let last = Arc::clone(&last);
                scope.spawn(move || {
                    for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                        let _ = writeln!(log.lock().unwrap_or_else(|e| e.into_inner()), "{line}");
                        if let Some(step) = line
                            .strip_prefix("### ")
                            .and_then(|l| l.strip_suffix(" ###"))
                        {
                            self.progress
                                .step(&t.hostname, &format!("nixos-anywhere: {step}"));
                        }
                        if !line.trim().is_empty() {
                            *last.lock().unwrap_or_else(|e| e.into_inner()) = line;
                        }
                    }
                });
            }
        });
        let status = child
            .wait()
            .map_err(|e| self.fail(t, failed("install", e.to_string())))?;
        if status.success() {
            return Ok(());
        }
        let last = last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Err(self.fail(
            t,
            failed(
                "install",
                format!(
                    "nixos-anywhere failed ({status}): {last} (log: {})",
                    log_path.display()
                ),
            ),
        ))
    }
}

fn forget_installer_key(keys: &HostKeys) {
    if let HostKeys::FirstContact(file) = keys {
        if let Some(dir) = file.parent() {
            let _ = fs::create_dir_all(dir);
        }
        let _ = fs::remove_file(file);
    }
}
