//! `plasmagen unlock OUT NODE`: send a `luks-lvm` node's passphrase to the prompt of its
//! initrd SSH server (`cluster.luks_unlock = "initrd-ssh"`), pinning the generated host key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Outcome;
use super::generate::layout;
use crate::diag::did_you_mean;
use crate::error::Error;
use crate::inventory::{DiskLayout, LuksUnlock};
use crate::render::boot::INITRD_SSH_PORT;
use crate::unlock::{self as session, Attempt, Passphrase, SessionError, Target};

/// Between two attempts with --wait.
const RETRY_EVERY: Duration = Duration::from_secs(5);
/// The ssh client that does the talking (from PATH).
const SSH: &str = "ssh";

pub const HELP: &str = "\
Connects with the system ssh to root@<provisioning_ip>, port 2222, accepting only the host key
pinned in <SECRETS>/luks/<NODE>.initrd-ssh.pub (a temporary known_hosts, nothing else trusted),
waits for the passphrase prompt (at most 30 s) and writes <SECRETS>/luks/<NODE>.key to ssh's
stdin. The passphrase is never an argument, never read from or shown on the terminal; the
remote output is echoed with it masked. A wrong passphrase makes the node ask again: run
unlock again after checking the key file.

Exit codes:
  0   the passphrase was sent and the initrd session ended
  2   unknown node, not a luks-lvm / initrd-ssh node, missing or unreadable secrets, the server
      refused the login (-i), the node asked again right away, or the HOST KEY DOES NOT MATCH
      the pinned one (nothing sent: check the node's console before anything else)
  69  unreachable (after --wait SECS: still), logged in but no passphrase asked (root already
      unlocked?), no prompt within 30 s, or the session did not end after the passphrase
  74  I/O error (temporary known_hosts)";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output directory of `plasmagen generate` (its flake/ holds the inventory copy).
    pub out: PathBuf,
    /// Inventory hostname of the luks-lvm node to unlock.
    pub node: String,
    /// Secrets directory (default <OUT>/secrets).
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// Private key to log in with (its public half in cluster.ssh_authorized_keys); default:
    /// ssh's own keys and agent. BatchMode: a key with a passphrase must be in ssh-agent.
    #[arg(short = 'i', long, value_name = "IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Keep trying every 5 s for up to SECS while the node is unreachable or not asking yet
    /// (right after an install reboot).
    #[arg(long, value_name = "SECS")]
    pub wait: Option<u64>,
    /// Print the ssh command line and the pinned known_hosts line; connect to nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &Args) -> Result<Outcome, Error> {
    let layout = layout(&args.out, args.secrets.as_deref())?;
    let loaded = super::fleet::load_fleet(&layout.flake)?;
    let inv_path = loaded.inventory.source.clone();
    let inv = &loaded.inventory;
    let Some(node) = inv.nodes.iter().find(|n| n.hostname == args.node) else {
        let names: Vec<&str> = inv.nodes.iter().map(|n| n.hostname.as_str()).collect();
        let hint = did_you_mean(&args.node, &names)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        return Err(Error::Usage(format!(
            "unknown node `{}` (not in {}){hint}",
            args.node,
            inv_path.display()
        )));
    };
    let host = node.hostname.as_str();
    if node.disk_layout != DiskLayout::LuksLvm {
        return Err(Error::Usage(format!(
            "node {host} has disk_layout = \"{}\": nothing to unlock (only luks-lvm nodes have an encrypted root)",
            node.disk_layout.as_str()
        )));
    }
    if inv.cluster.luks_unlock != LuksUnlock::InitrdSsh {
        return Err(Error::Usage(format!(
            "node {host}: cluster.luks_unlock = \"{}\" in {}: the node unlocks itself at boot; `unlock` is for \"initrd-ssh\"",
            inv.cluster.luks_unlock.as_str(),
            inv_path.display()
        )));
    }
    let key_path = crate::luks::key_path(&layout.secrets, host);
    let pub_path = crate::luks::initrd_host_pub_path(&layout.secrets, host);
    for (path, what) in [
        (&key_path, "LUKS passphrase"),
        (&pub_path, "initrd SSH host key"),
    ] {
        if !path.is_file() {
            return Err(Error::Usage(format!(
                "node {host}: {} missing (its {what}): run `plasmagen generate` (or pass the right --secrets DIR)",
                path.display()
            )));
        }
    }
    let pass = Passphrase::read(&key_path).map_err(|e| Error::Usage(e.to_string()))?;
    let pub_text = fs::read_to_string(&pub_path)
        .map_err(|e| Error::Usage(format!("node {host}: {}: {e}", pub_path.display())))?;
    let pinned_key = session::parse_pinned_key(&pub_text).ok_or_else(|| {
        Error::Usage(format!(
            "node {host}: {}: not an SSH public key line",
            pub_path.display()
        ))
    })?;
    if let Some(id) = &args.identity
        && !id.is_file()
    {
        return Err(Error::Usage(format!("-i {}: no such file", id.display())));
    }
    let target = Target {
        hostname: host.to_string(),
        ip: node.provisioning_ip,
        port: INITRD_SSH_PORT,
        pinned_key,
        identity: args.identity.clone(),
    };

    if args.dry_run {
        let placeholder = Path::new("<TMPDIR>/known_hosts");
        println!(
            "known_hosts ({}): {}",
            placeholder.display(),
            target.known_hosts_line()
        );
        let line: Vec<String> = std::iter::once(SSH.to_string())
            .chain(
                target
                    .ssh_args(placeholder)
                    .iter()
                    .map(|a| shell_quote(&a.to_string_lossy())),
            )
            .collect();
        println!("{}", line.join(" "));
        println!(
            "passphrase: {} (written to ssh's stdin at the prompt; never an argument)",
            key_path.display()
        );
        return Ok(Outcome::Ok);
    }

    let tmp = tempfile::Builder::new()
        .prefix("plasmagen-unlock-")
        .tempdir()
        .map_err(|source| Error::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let known_hosts = tmp.path().join("known_hosts");
    write_private(&known_hosts, &format!("{}\n", target.known_hosts_line()))?;
    let result = attempts(args, &target, &known_hosts, &pass, &pub_path, &key_path);
    drop(tmp);
    result
}

/// Log in until the passphrase is sent, an error is final, or --wait runs out.
fn attempts(
    args: &Args,
    target: &Target,
    known_hosts: &Path,
    pass: &Passphrase,
    pub_path: &Path,
    key_path: &Path,
) -> Result<Outcome, Error> {
    let (host, addr) = (target.hostname.as_str(), target.addr());
    let deadline = args.wait.map(|s| Instant::now() + Duration::from_secs(s));
    let mut stdout = std::io::stdout();
    let mut n = 0;
    loop {
        n += 1;
        let result =
            session::attempt(SSH, target, known_hosts, pass, &mut stdout).map_err(|e| match e {
                SessionError::Output(source) => Error::Io {
                    path: "<stdout>".into(),
                    source,
                },
                spawn => Error::Usage(spawn.to_string()),
            })?;
        let (why, err) = match result {
            Attempt::Sent => {
                eprintln!(
                    "unlock: sent {host}'s passphrase to {addr}; the initrd session ended. If it was accepted the node boots on (a wrong one makes it ask again)."
                );
                return Ok(Outcome::Ok);
            }
            Attempt::Unreachable(msg) => (
                format!("unreachable ({})", last_line(&msg)),
                Error::Unavailable(format!(
                    "node {host}: initrd SSH server at {addr} unreachable: {}\nIs the node in its initrd, waiting for the passphrase? {}",
                    last_line(&msg),
                    match args.wait {
                        Some(s) => format!("(Still, after --wait {s}.)"),
                        None => "Right after an install reboot use --wait SECS.".to_string(),
                    }
                )),
            ),
            Attempt::NoPrompt(_) => (
                "logged in, but no passphrase asked yet".to_string(),
                Error::Unavailable(format!(
                    "node {host}: logged in to the initrd at {addr}, but it asked for no passphrase: the root is probably unlocked already (or not asked for yet: --wait SECS retries)"
                )),
            ),
            other => return Err(final_error(other, host, &addr, pub_path, key_path)),
        };
        let left = deadline.map_or(Duration::ZERO, |d| {
            d.saturating_duration_since(Instant::now())
        });
        if left < Duration::from_secs(1) {
            return Err(err);
        }
        eprintln!(
            "unlock: attempt {n}: {host} ({addr}) {why}; retrying in {}s ({}s left)",
            RETRY_EVERY.min(left).as_secs(),
            left.as_secs()
        );
        std::thread::sleep(RETRY_EVERY.min(left));
    }
}

/// The errors no retry fixes.
fn final_error(a: Attempt, host: &str, addr: &str, pub_path: &Path, key_path: &Path) -> Error {
    match a {
        Attempt::HostKeyMismatch(msg) => Error::Usage(format!(
            "node {host}: refusing to send the passphrase: host key does not match the one pinned in {}\n\
             !!! The server at {addr} is not {host}'s initrd as generated. Nothing was sent. Check the\n\
             !!! node's console before anything else (another machine on that address, or a reinstall\n\
             !!! with a different secrets directory). Never work around this by skipping the pin.\n\
             ssh said: {}",
            pub_path.display(),
            host_key_lines(&msg)
        )),
        Attempt::AuthRefused(msg) => Error::Usage(format!(
            "node {host}: the initrd SSH server at {addr} refused the login as root: pass -i with a private key whose public half is in cluster.ssh_authorized_keys (keys with a passphrase must be loaded in ssh-agent)\nssh said: {}",
            last_line(&msg)
        )),
        Attempt::AskedAgain => Error::Usage(format!(
            "node {host}: asked for the passphrase again right after it was sent: {} was probably rejected (is it the key this node was installed with?)",
            key_path.display()
        )),
        Attempt::PromptTimeout => Error::Unavailable(format!(
            "node {host}: no passphrase prompt from {addr} within {}s; nothing was sent",
            session::PROMPT_TIMEOUT.as_secs()
        )),
        Attempt::NoExit => Error::Unavailable(format!(
            "node {host}: sent the passphrase, but the session at {addr} did not end within {}s; check the node's console",
            session::EXIT_TIMEOUT.as_secs()
        )),
        Attempt::SshFailed(code, msg) => Error::Unavailable(format!(
            "node {host}: ssh to {addr} failed (exit {}): {}",
            code.map_or("by a signal".to_string(), |c| c.to_string()),
            msg.trim()
        )),
        Attempt::Sent | Attempt::Unreachable(_) | Attempt::NoPrompt(_) => {
            Error::Internal(format!("unlock: {a:?} is not a final error"))
        }
    }
}

/// ssh's verdict and the offered key's fingerprint, without its advice to edit a known_hosts
/// file (ours is temporary, and the pin is not to be edited away).
fn host_key_lines(msg: &str) -> String {
    let keep = |l: &&str| {
        l.contains("fingerprint")
            || l.starts_with("SHA256:")
            || l.contains("Host key verification failed")
            || l.contains("host key is known")
    };
    let lines: Vec<&str> = msg.lines().map(str::trim).filter(keep).collect();
    if lines.is_empty() {
        last_line(msg).to_string()
    } else {
        lines.join(" ")
    }
}

fn last_line(msg: &str) -> &str {
    msg.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no message from ssh")
}

/// A new 0600 file (its directory is the private temporary one).
fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)
}

/// For printing a command line an operator can paste.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
