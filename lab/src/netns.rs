//! A network namespace owned by the test, and daemons running in it. Both clean up on drop:
//! the namespace's processes are killed and the namespace (with its bridge and taps) deleted.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use crate::err;
use crate::{Result, tail};

/// `ip netns add <name>`; deleted on drop unless [`Netns::keep`] handed it on.
pub struct Netns {
    name: String,
    ip: PathBuf,
    owned: bool,
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(err!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

impl Netns {
    /// A fresh namespace `name` with loopback up. A namespace of that name left by a killed
    /// earlier run (its processes are killed) is removed first.
    pub fn create(ip: &Path, name: &str) -> Result<Netns> {
        if Netns::exists(name) {
            drop(Netns::open(ip, name));
        }
        run(Command::new(ip).args(["netns", "add", name]))?;
        let ns = Netns {
            name: name.to_string(),
            ip: ip.to_path_buf(),
            owned: true,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Whether `/run/netns/<name>` exists.
    pub fn exists(name: &str) -> bool {
        Path::new("/run/netns").join(name).exists()
    }

    /// An existing namespace, owned from now on: dropping it kills its processes and deletes
    /// it (`plasmagen lab down`).
    pub fn open(ip: &Path, name: &str) -> Netns {
        Netns {
            name: name.to_string(),
            ip: ip.to_path_buf(),
            owned: true,
        }
    }

    /// An existing namespace to run commands in, left in place on drop.
    pub fn attach(ip: &Path, name: &str) -> Netns {
        Netns {
            name: name.to_string(),
            ip: ip.to_path_buf(),
            owned: false,
        }
    }

    /// Leaves the namespace (and everything running in it) in place; its name.
    pub fn keep(mut self) -> String {
        self.owned = false;
        self.name.clone()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        run(Command::new(&self.ip).arg("-n").arg(&self.name).args(args))
    }

    /// A command that runs `program` inside the namespace, in a process group of its own
    /// (so a drop can kill it with everything it spawned).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(&self.ip);
        c.args(["netns", "exec", &self.name]).arg(program);
        c.process_group(0).stdin(Stdio::null());
        c
    }

    /// Runs `f` on a thread that joined the namespace: sockets it opens live there.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = Path::new("/run/netns").join(&self.name);
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        std::thread::scope(|s| {
            s.spawn(move || {
                move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&file),
                    Some(LinkNameSpaceType::Network),
                )
                .map_err(|e| format!("setns {}: {e}", path.display()))?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// PIDs of processes inside the namespace (`ip netns pids`).
    pub fn pids(&self) -> Vec<i32> {
        Command::new(&self.ip)
            .args(["netns", "pids", &self.name])
            .stderr(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        // Only the lab's own processes live here: the namespace was created by the lab.
        for pid in self.pids() {
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
        let _ = run(Command::new(&self.ip).args(["netns", "del", &self.name]));
    }
}

/// A long-running process (server or VM) with its output in a log file; its process group is
/// killed on drop.
pub struct Daemon {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Daemon> {
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {name} ({cmd:?}): {e}"))?;
        Ok(Daemon {
            name: name.to_string(),
            log: log.to_path_buf(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Err` with the log's tail when the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(err!(
                "{} exited ({status})\n{}",
                self.name,
                tail(&self.log, 30)
            )),
            Err(e) => Err(err!("{}: {e}", self.name)),
        }
    }

    /// Exit status if the process ended within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        crate::poll(timeout, Duration::from_millis(200), || {
            self.child.try_wait().ok().flatten()
        })
    }

    /// Waits until `needle` appears in the log; fails early when the process exits.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let log = self.log.clone();
        let found = crate::poll(timeout, Duration::from_millis(100), || {
            let text = std::fs::read(&log).unwrap_or_default();
            if String::from_utf8_lossy(&text).contains(needle) {
                return Some(Ok(()));
            }
            self.check_alive().err().map(Err)
        });
        found.unwrap_or_else(|| {
            Err(err!(
                "{} did not log {needle:?} within {timeout:?}\n{}",
                self.name,
                tail(&self.log, 30)
            ))
        })
    }

    /// Leaves the process running past this one (`plasmagen lab up`); its pid.
    pub fn detach(self) -> u32 {
        let pid = self.child.id();
        // Not dropped: the drop would kill it. Its log file handles belong to the child.
        std::mem::forget(self);
        pid
    }

    /// Kills the process group and reaps the child.
    pub fn stop(&mut self) {
        if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
            let _ = kill_process_group(pid, Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
