//! Hardware reports next to a node's files (`facter.json`, `hardware-configuration.nix`, what
//! `nixos-anywhere --generate-hardware-config` writes) reach Nix only if the flake can see them:
//! in a git repository a flake is the set of files git knows, so an untracked report is
//! silently ignored (`builtins.pathExists` is false) and the node evaluates with generic
//! hardware settings. nixos-anywhere `git add --intent-to-add`s the file it writes; a report
//! copied in by hand is not. This finds the ones git does not know.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The report files hardware.nix picks up.
pub const REPORTS: [&str; 2] = ["facter.json", "hardware-configuration.nix"];

/// Reports under `flake/nodes/*/` that git does not track, when `flake` is inside a git work
/// tree; empty when it is not (a path flake sees every file) or git is not installed.
pub fn untracked_reports(flake: &Path) -> Vec<PathBuf> {
    let inside = Command::new("git")
        .arg("-C")
        .arg(flake)
        .args(["rev-parse", "--is-inside-work-tree"])
        .output();
    match inside {
        Ok(o) if o.status.success() && o.stdout.starts_with(b"true") => {}
        _ => return Vec::new(),
    }
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(flake)
        .args(["ls-files", "-z", "--others", "--"]);
    for report in REPORTS {
        cmd.arg(format!("nodes/*/{report}"));
    }
    match cmd.output() {
        Ok(o) if o.status.success() => o
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
            .collect(),
        _ => Vec::new(),
    }
}
