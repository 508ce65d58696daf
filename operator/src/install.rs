//! The one `nixos-anywhere` call per node. Flags, checked against nixos-anywhere's
//! src/nixos-anywhere.sh (nix-community/nixos-anywhere at 91fc9b70, docs/operator.md has the
//! table):
//! - `--flake FLAKE#HOST` (:224), `--target-host root@IP` (:228), `-i KEY` (:232, copied and
//!   used for every connection, :543-545), `--ssh-option O` (:240, appended after its own
//!   options, :70, so it cannot loosen or tighten host key checking: see [`crate::ssh`]);
//! - `--extra-files DIR` (:337): the node's SSH host key and TLS material, copied to `/`;
//! - `--disk-encryption-keys /tmp/secret.key FILE` (:346) for LUKS nodes (disko reads the
//!   passphrase there);
//! - `--generate-hardware-config nixos-facter PATH` (:253; :660-697 writes the report and
//!   `git add --intent-to-add`s it so the flake sees it);
//! - `--phases kexec,disko,install` (:351-362): without `reboot`, so the node is marked
//!   installed in the collector before it boots again (its boot script then says "local").
//!   kexec is skipped by nixos-anywhere itself on an installer (:701).
//!
//! The child's stdin is /dev/null: nixos-anywhere then uses `ssh -T` (:36-40) and never
//! touches the operator's terminal, so parallel installs cannot be stopped by SIGTTIN/SIGTTOU.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::ssh::{HostKeys, SshConfig};

/// Where disko reads a LUKS passphrase (the generated disko.nix's `passwordFile`).
pub const LUKS_KEY_REMOTE: &str = "/tmp/secret.key";
pub const PHASES: &str = "kexec,disko,install";

#[derive(Debug, Clone)]
pub struct Install {
    /// `FLAKE#HOST`.
    pub flake_ref: String,
    pub address: String,
    /// `SECRETS/nodes/HOST`.
    pub extra_files: PathBuf,
    pub luks_key: Option<PathBuf>,
    /// Where the hardware report goes (`FLAKE/nodes/FQDN/facter.json`); `None` keeps the one
    /// already there.
    pub facter_report: Option<PathBuf>,
    /// The operator's own extra arguments, after ours.
    pub extra_args: Vec<String>,
}

impl Install {
    pub fn argv(&self, ssh: &SshConfig, keys: &HostKeys) -> Vec<String> {
        let mut argv = vec![
            "--flake".to_string(),
            self.flake_ref.clone(),
            "--target-host".into(),
            ssh.destination(&self.address),
        ];
        if let Some(id) = &ssh.identity {
            argv.push("-i".into());
            argv.push(id.display().to_string());
        }
        for opt in ssh.options(keys) {
            argv.push("--ssh-option".into());
            argv.push(opt);
        }
        argv.push("--extra-files".into());
        argv.push(self.extra_files.display().to_string());
        if let Some(key) = &self.luks_key {
            argv.push("--disk-encryption-keys".into());
            argv.push(LUKS_KEY_REMOTE.into());
            argv.push(key.display().to_string());
        }
        if let Some(report) = &self.facter_report {
            argv.push("--generate-hardware-config".into());
            argv.push("nixos-facter".into());
            argv.push(report.display().to_string());
        }
        argv.push("--phases".into());
        argv.push(PHASES.into());
        argv.extend(self.extra_args.iter().cloned());
        argv
    }

    /// The command, stdin detached; the caller sends stdout and stderr to the node's log.
    pub fn command(&self, ssh: &SshConfig, keys: &HostKeys) -> Command {
        let mut cmd = Command::new("nixos-anywhere");
        cmd.args(self.argv(ssh, keys)).stdin(Stdio::null());
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luks_and_report_flags_only_when_asked() {
        let mut install = Install {
            flake_ref: "/o/flake#node01".into(),
            address: "10.0.100.50".into(),
            extra_files: "/o/secrets/nodes/node01".into(),
            luks_key: None,
            facter_report: None,
            extra_args: vec!["--debug".into()],
        };
        let ssh = SshConfig::default();
        let keys = HostKeys::FirstContact("/o/logs/node01/known_hosts".into());
        let argv = install.argv(&ssh, &keys);
        assert!(!argv.contains(&"--disk-encryption-keys".to_string()));
        assert!(!argv.contains(&"-i".to_string()));
        assert_eq!(argv.last().map(String::as_str), Some("--debug"));
        install.luks_key = Some("/o/secrets/luks/node01.key".into());
        let argv = install.argv(&ssh, &keys);
        let at = argv
            .iter()
            .position(|a| a == "--disk-encryption-keys")
            .unwrap();
        assert_eq!(
            argv[at + 1..at + 3],
            [LUKS_KEY_REMOTE, "/o/secrets/luks/node01.key"]
        );
    }
}
