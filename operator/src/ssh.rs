//! SSH to the fleet with OpenSSH's `ssh`: one set of options for every connection of a run
//! (the probe, nixos-anywhere's `--ssh-option`s, rollout), and the look at a target that
//! decides whether it may be installed over.
//!
//! Facts this relies on:
//! - A command-line `-o` option is used the first time it is given (ssh_config(5), "the first
//!   obtained value will be used"); so nixos-anywhere's own `UserKnownHostsFile=/dev/null
//!   StrictHostKeyChecking=no` (src/nixos-anywhere.sh:70) win over ours, and the live-node
//!   check has to happen here, immediately before it runs.
//! - nixos-anywhere treats a host as the installer when `/etc/os-release` is NixOS with
//!   `VARIANT_ID=installer` (src/get-facts.sh:6,11: `ID(_LIKE)?="?nixos"?`,
//!   `VARIANT_ID="?installer"?`) and then skips its kexec (src/nixos-anywhere.sh:701); anything
//!   else gets kexec'd and formatted. [`Look::at`] applies the same test.
//! - `ssh` exits 255 on its own errors (ssh(1), EXIT STATUS); "Host key verification failed."
//!   is its message for a key that does not match `known_hosts` under strict checking.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where host keys are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeys {
    /// The fleet's `known_hosts` (generated with the keys the nodes are installed with):
    /// strict, an unknown or different key is refused.
    Pinned(PathBuf),
    /// A netboot installer makes a new key every boot, so there is nothing to pin: the key
    /// is recorded in this file at first contact and must stay the same for the run.
    FirstContact(PathBuf),
}

/// The identity and options of every SSH connection of one operator run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    pub user: String,
    pub identity: Option<PathBuf>,
    pub connect_timeout_secs: u32,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            user: "root".into(),
            identity: None,
            connect_timeout_secs: 5,
        }
    }
}

impl SshConfig {
    /// The `-o` values (without the `-o`), in the order ssh receives them.
    pub fn options(&self, keys: &HostKeys) -> Vec<String> {
        let mut opts = vec![
            "BatchMode=yes".to_string(),
            format!("ConnectTimeout={}", self.connect_timeout_secs),
            "ServerAliveInterval=15".to_string(),
            "ServerAliveCountMax=4".to_string(),
        ];
        if self.identity.is_some() {
            opts.push("IdentitiesOnly=yes".into());
        }
        match keys {
            HostKeys::Pinned(file) => {
                opts.push(format!("UserKnownHostsFile={}", file.display()));
                opts.push("StrictHostKeyChecking=yes".into());
            }
            HostKeys::FirstContact(file) => {
                opts.push(format!("UserKnownHostsFile={}", file.display()));
                opts.push("StrictHostKeyChecking=accept-new".into());
                // Readable entries (Debian's ssh_config hashes them): the key is compared with
                // the node's own below.
                opts.push("HashKnownHosts=no".into());
            }
        }
        opts.push("GlobalKnownHostsFile=/dev/null".into());
        opts
    }

    /// `ssh -T [-i KEY] -o … user@host -- remote`, stdin detached (nothing ever reads the
    /// operator's terminal).
    pub fn command(&self, host: &str, keys: &HostKeys, remote: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(self.argv(host, keys, remote));
        cmd.stdin(Stdio::null());
        cmd
    }

    /// The arguments of [`SshConfig::command`] after `ssh`, for running and for `--dry-run`.
    pub fn argv(&self, host: &str, keys: &HostKeys, remote: &str) -> Vec<String> {
        let mut argv = vec!["-T".to_string()];
        if let Some(id) = &self.identity {
            argv.push("-i".into());
            argv.push(id.display().to_string());
        }
        for opt in self.options(keys) {
            argv.push("-o".into());
            argv.push(opt);
        }
        argv.push(self.destination(host));
        argv.push("--".into());
        argv.push(remote.into());
        argv
    }

    pub fn destination(&self, host: &str) -> String {
        format!("{}@{}", self.user, host)
    }
}

/// What is answering SSH on a node's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// A NixOS installer: safe to install on.
    Installer,
    /// Anything else: an installed system, named by its `PRETTY_NAME`.
    Live {
        os: String,
    },
    /// It presented the host key the node is installed with: the node's own system.
    NodeHostKey,
    /// The host key differs from the pinned or first-contact one.
    HostKeyMismatch {
        detail: String,
    },
    Unreachable {
        reason: String,
    },
}

impl fmt::Display for Look {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Look::Installer => f.write_str("the NixOS installer"),
            Look::Live { os } => write!(f, "an installed system ({os})"),
            Look::NodeHostKey => f.write_str("the node's installed system (its own host key)"),
            Look::HostKeyMismatch { detail } => write!(f, "a host key mismatch: {detail}"),
            Look::Unreachable { reason } => write!(f, "unreachable: {reason}"),
        }
    }
}

impl Look {
    /// Connect to `host` and read `/etc/os-release`. `installed_key` is the node's own host
    /// public key (`ssh-ed25519 AAAA…`); meeting it means the installed system answers,
    /// whatever its os-release says.
    pub fn at(ssh: &SshConfig, host: &str, keys: &HostKeys, installed_key: Option<&str>) -> Look {
        let out = match ssh
            .command(host, keys, "cat /etc/os-release")
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                return Look::Unreachable {
                    reason: format!("cannot run ssh: {e}"),
                };
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let detail = last_line(&stderr);
            if stderr.contains("Host key verification failed")
                || stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            {
                return Look::HostKeyMismatch { detail };
            }
            return Look::Unreachable { reason: detail };
        }
        // The first-contact file is this node's alone: any key in it is the one just met.
        if let (Some(expected), HostKeys::FirstContact(file)) = (installed_key, keys)
            && all_keys(file).iter().any(|k| same_key(k, expected))
        {
            return Look::NodeHostKey;
        }
        classify_os_release(&String::from_utf8_lossy(&out.stdout))
    }
}

/// The installer test of nixos-anywhere's get-facts.sh, applied to an os-release text.
pub fn classify_os_release(text: &str) -> Look {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|r| r.strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_string())
        })
    };
    let nixos = field("ID").as_deref() == Some("nixos")
        || field("ID_LIKE").is_some_and(|v| v.split_whitespace().any(|w| w == "nixos"));
    if nixos && field("VARIANT_ID").as_deref() == Some("installer") {
        return Look::Installer;
    }
    Look::Live {
        os: field("PRETTY_NAME")
            .or_else(|| field("ID"))
            .unwrap_or_else(|| "no /etc/os-release".into()),
    }
}

/// Every key of a known_hosts file, hashed host names or not.
pub fn all_keys(file: &Path) -> Vec<String> {
    let Ok(text) = fs::read_to_string(file) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.split_whitespace().skip(1);
            Some(format!("{} {}", parts.next()?, parts.next()?))
        })
        .collect()
}

/// Two OpenSSH public keys are the same when type and base64 blob are (comments differ).
pub fn same_key(a: &str, b: &str) -> bool {
    let words = |s: &str| {
        let mut w = s.split_whitespace();
        (w.next().map(str::to_owned), w.next().map(str::to_owned))
    };
    let (ka, ba) = words(a);
    ka.is_some() && ba.is_some() && (ka, ba) == words(b)
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .unwrap_or("ssh failed without a message")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_installer_test_matches_nixos_anywhere() {
        let installer = "NAME=NixOS\nID=nixos\nVARIANT_ID=installer\nPRETTY_NAME=\"NixOS 26.05\"\n";
        assert_eq!(classify_os_release(installer), Look::Installer);
        let quoted = "ID=\"nixos\"\nVARIANT_ID=\"installer\"\n";
        assert_eq!(classify_os_release(quoted), Look::Installer);
        let installed = "ID=nixos\nPRETTY_NAME=\"NixOS 26.05 (Yarara)\"\n";
        assert_eq!(
            classify_os_release(installed),
            Look::Live {
                os: "NixOS 26.05 (Yarara)".into()
            }
        );
        // A Debian rescue system calling itself an installer is still not NixOS.
        let debian = "ID=debian\nVARIANT_ID=installer\n";
        assert!(matches!(classify_os_release(debian), Look::Live { .. }));
        assert!(matches!(classify_os_release(""), Look::Live { .. }));
    }

    #[test]
    fn options_pin_or_record_host_keys_and_keep_the_identity() {
        let ssh = SshConfig {
            identity: Some("/keys/provision".into()),
            ..SshConfig::default()
        };
        let pinned = ssh.options(&HostKeys::Pinned("/s/known_hosts".into()));
        assert!(pinned.contains(&"StrictHostKeyChecking=yes".to_string()));
        assert!(pinned.contains(&"UserKnownHostsFile=/s/known_hosts".to_string()));
        assert!(pinned.contains(&"IdentitiesOnly=yes".to_string()));
        let first = ssh.options(&HostKeys::FirstContact("/l/k".into()));
        assert!(first.contains(&"StrictHostKeyChecking=accept-new".to_string()));
        let argv = ssh.argv("10.0.0.5", &HostKeys::FirstContact("/l/k".into()), "true");
        assert_eq!(&argv[..3], ["-T", "-i", "/keys/provision"]);
        assert_eq!(&argv[argv.len() - 3..], ["root@10.0.0.5", "--", "true"]);
    }

    #[test]
    fn known_hosts_keys_whether_names_are_hashed_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        fs::write(
            &file,
            // Debian's ssh_config hashes names (HashKnownHosts yes).
            "# c\nnode01,10.0.100.50 ssh-ed25519 AAAAone\n|1|c2FsdA==|aGFzaA== ssh-ed25519 AAAAtwo x\n",
        )
        .unwrap();
        let keys = all_keys(&file);
        assert_eq!(keys[0], "ssh-ed25519 AAAAone");
        assert!(same_key(&keys[1], "ssh-ed25519 AAAAtwo root@node02"));
        assert!(!same_key("ssh-ed25519 AAAAone", "ssh-ed25519 AAAAtwo"));
        assert_eq!(keys.len(), 2, "the comment line is no key");
        assert!(all_keys(&dir.path().join("absent")).is_empty());
    }
}
