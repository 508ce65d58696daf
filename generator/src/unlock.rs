//! `plasmagen unlock`: answer a LUKS node's passphrase prompt over its initrd SSH server.
//!
//! The system `ssh` does the talking, with the host key pinned to the one `plasmagen generate`
//! made for the node (a one-line known_hosts file, nothing else trusted). The passphrase only
//! ever travels through ssh's stdin (a pipe), after the remote prompt appeared on its stdout;
//! it is never an argument, and the remote output echoed to the operator is redacted.

use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// How long ssh may take to connect (`ConnectTimeout`, also the banner exchange).
pub const CONNECT_TIMEOUT_SECS: u32 = 5;
/// From starting ssh until the passphrase prompt must have appeared.
pub const PROMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// From sending the passphrase until the session must have ended.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// The prompt is answered once the remote side was quiet this long after printing it.
const QUIET: Duration = Duration::from_millis(250);
/// ... or this long after it appeared, even if output keeps coming.
const QUIET_MAX: Duration = Duration::from_secs(2);
/// What the echoed output shows instead of the passphrase.
const MASK: &[u8] = b"********";

/// A secret `unlock` reads is missing, unreadable or unusable.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct SecretError {
    pub path: PathBuf,
    pub reason: String,
}

/// Problems running ssh itself.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot run `{program}` (install the OpenSSH client): {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the remote output: {0}")]
    Output(#[source] std::io::Error),
}

/// A LUKS passphrase: its `Debug` never shows it, and nothing here prints it.
pub struct Passphrase(Vec<u8>);

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl Passphrase {
    /// Read the key file; it has to be typeable at a prompt (one line, no control characters).
    pub fn read(path: &Path) -> Result<Passphrase, SecretError> {
        let invalid = |reason: String| SecretError {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
        if bytes.is_empty() {
            return Err(invalid("empty LUKS passphrase".into()));
        }
        if bytes.iter().any(|b| b.is_ascii_control()) {
            return Err(invalid(
                "the LUKS passphrase contains a newline or another control character, so it cannot be typed at a prompt".into(),
            ));
        }
        Ok(Passphrase(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The pinned public key line (`ssh-ed25519 AAAA… comment`) from a `.pub` file, if it is one.
pub fn parse_pinned_key(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut fields = line.split_whitespace();
    let kind = fields.next()?;
    let blob = fields.next()?;
    let known = ["ssh-", "ecdsa-sha2-", "sk-"]
        .iter()
        .any(|p| kind.starts_with(p));
    let base64 = blob
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    (known && base64 && blob.len() >= 16).then(|| line.to_string())
}

/// Where and how to log in to one node's initrd.
#[derive(Debug, Clone)]
pub struct Target {
    pub hostname: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    /// The pinned public key line.
    pub pinned_key: String,
    /// `-i`: the private key to log in with.
    pub identity: Option<PathBuf>,
}

impl Target {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// The only line of the temporary known_hosts file.
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}", self.ip, self.port, self.pinned_key)
    }

    /// ssh's arguments (never the passphrase): pinned host key, no prompts, a remote TTY.
    pub fn ssh_args(&self, known_hosts: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["-tt".into(), "-e".into(), "none".into()];
        args.extend(["-p".into(), self.port.to_string().into()]);
        let mut known = OsString::from("UserKnownHostsFile=");
        known.push(known_hosts);
        let options = [
            "StrictHostKeyChecking=yes".into(),
            known,
            "GlobalKnownHostsFile=/dev/null".into(),
            "UpdateHostKeys=no".into(),
            "BatchMode=yes".into(),
            "PreferredAuthentications=publickey".into(),
            format!("ConnectTimeout={CONNECT_TIMEOUT_SECS}").into(),
            // Never ride on a multiplexed connection some ssh_config set up: it skips the pin.
            "ControlPath=none".into(),
            // Keeps "Connection to … closed." out; errors (host key, refused) still show.
            "LogLevel=ERROR".into(),
        ];
        for o in options {
            args.push("-o".into());
            args.push(o);
        }
        if let Some(id) = &self.identity {
            args.push("-i".into());
            args.push(id.clone().into_os_string());
            args.extend(["-o".into(), "IdentitiesOnly=yes".into()]);
        }
        args.push(format!("root@{}", self.ip).into());
        args
    }
}

/// How one login attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The prompt appeared, the passphrase was written, the session ended.
    Sent,
    /// Nothing answered (refused, timed out, no route, closed before login): ssh's message.
    Unreachable(String),
    /// The server's host key is not the pinned one: ssh's message. Nothing was sent.
    HostKeyMismatch(String),
    /// The server refused our login: ssh's message.
    AuthRefused(String),
    /// Logged in, but the session ended without asking for a passphrase: ssh's stderr.
    NoPrompt(String),
    /// Logged in (or still connecting), but no prompt within [`PROMPT_TIMEOUT`].
    PromptTimeout,
    /// After the passphrase was sent, a passphrase prompt appeared again.
    AskedAgain,
    /// The passphrase was sent but the session did not end within [`EXIT_TIMEOUT`].
    NoExit,
    /// ssh failed in another way: its exit code and message.
    SshFailed(Option<i32>, String),
}

/// Sorts ssh's own failure (exit 255) by its message.
pub fn classify_ssh_error(stderr: &str) -> Attempt {
    let msg = stderr.trim().to_string();
    let has = |s: &str| stderr.contains(s);
    if has("REMOTE HOST IDENTIFICATION HAS CHANGED") || has("Host key verification failed") {
        Attempt::HostKeyMismatch(msg)
    } else if has("Permission denied") || has("Too many authentication failures") {
        Attempt::AuthRefused(msg)
    } else if [
        "Connection refused",
        "timed out",
        "No route to host",
        "Network is unreachable",
        "Connection reset",
        "Connection closed",
        "closed by remote host",
        "kex_exchange_identification",
        "Broken pipe",
    ]
    .iter()
    .any(|s| has(s))
    {
        Attempt::Unreachable(msg)
    } else {
        Attempt::SshFailed(Some(255), msg)
    }
}

/// Streams bytes on, replacing every occurrence of the secret (also one split across
/// chunks: a possible start of it is held back until the next chunk decides).
pub struct Redactor<'a> {
    secret: &'a [u8],
    pending: Vec<u8>,
}

impl<'a> Redactor<'a> {
    pub fn new(secret: &'a [u8]) -> Redactor<'a> {
        Redactor {
            secret,
            pending: Vec::new(),
        }
    }

    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(data);
        let n = self.secret.len();
        if n == 0 {
            return std::mem::take(&mut self.pending);
        }
        let mut out = Vec::with_capacity(self.pending.len());
        while let Some(i) = self.pending.windows(n).position(|w| w == self.secret) {
            out.extend_from_slice(&self.pending[..i]);
            out.extend_from_slice(MASK);
            self.pending.drain(..i + n);
        }
        let keep = (1..n)
            .rev()
            .find(|&k| self.pending.ends_with(&self.secret[..k]))
            .unwrap_or(0);
        out.extend(self.pending.drain(..self.pending.len() - keep));
        out
    }

    /// The held-back rest: masked when it is a sizeable start of the secret.
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.pending);
        if rest.len() >= 4 { MASK.to_vec() } else { rest }
    }
}

fn contains_prompt(output: &[u8]) -> bool {
    output
        .windows(b"passphrase".len())
        .any(|w| w.eq_ignore_ascii_case(b"passphrase"))
}

/// One login: run `ssh`, echo the remote output (redacted) to `out`, answer the first
/// passphrase prompt from `pass` through ssh's stdin, wait for the session to end.
pub fn attempt(
    ssh: &str,
    target: &Target,
    known_hosts: &Path,
    pass: &Passphrase,
    out: &mut dyn Write,
) -> Result<Attempt, SessionError> {
    let mut child = Command::new(ssh)
        .args(target.ssh_args(known_hosts))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SessionError::Spawn {
            program: ssh.to_string(),
            source,
        })?;
    let mut stdin = child.stdin.take();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let stdout_pump = child.stdout.take().map(|mut r| {
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        })
    });
    let stderr_pump = child.stderr.take().map(|mut r| {
        thread::spawn(move || {
            let mut all = Vec::new();
            let _ = r.read_to_end(&mut all);
            all
        })
    });

    let start = Instant::now();
    let mut redactor = Redactor::new(pass.as_bytes());
    let mut seen: Vec<u8> = Vec::new();
    let mut prompt_at: Option<Instant> = None;
    let mut sent_at: Option<Instant> = None;
    // Output length when the passphrase was sent: a prompt after it is a new one.
    let mut sent_mark = 0;
    // Set when the loop gave up early (the child is then killed).
    let mut early: Option<Attempt> = None;
    loop {
        let now = Instant::now();
        let wait = match (prompt_at, sent_at) {
            (_, Some(t)) => (t + EXIT_TIMEOUT).saturating_duration_since(now),
            (Some(_), None) => QUIET,
            (None, None) => (start + PROMPT_TIMEOUT).saturating_duration_since(now),
        };
        let chunk = match rx.recv_timeout(wait) {
            Ok(chunk) => Some(chunk),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Some(chunk) = &chunk {
            out.write_all(&redactor.push(chunk))
                .and_then(|()| out.flush())
                .map_err(SessionError::Output)?;
            let from = seen.len();
            seen.extend_from_slice(chunk);
            // Look a little before the chunk: the word may straddle two reads.
            let look = from.saturating_sub(b"passphrase".len()).max(sent_mark);
            if contains_prompt(&seen[look..]) {
                if sent_at.is_some() {
                    early = Some(Attempt::AskedAgain);
                    break;
                }
                prompt_at.get_or_insert_with(Instant::now);
            }
        }
        match (prompt_at, sent_at) {
            (Some(p), None) if chunk.is_none() || p.elapsed() >= QUIET_MAX => {
                let mut line = pass.as_bytes().to_vec();
                line.push(b'\n');
                let written = stdin
                    .as_mut()
                    .is_some_and(|w| w.write_all(&line).and_then(|()| w.flush()).is_ok());
                if !written {
                    // ssh is gone: its exit status tells why.
                    break;
                }
                sent_at = Some(Instant::now());
                sent_mark = seen.len();
            }
            (None, None) if chunk.is_none() => {
                early = Some(Attempt::PromptTimeout);
                break;
            }
            (_, Some(_)) if chunk.is_none() => {
                early = Some(Attempt::NoExit);
                break;
            }
            _ => {}
        }
    }
    let mut tail = redactor.finish();
    // The prompt ends without a newline: leave the operator's terminal at a line start.
    if tail.last().or(seen.last()).is_some_and(|&b| b != b'\n') {
        tail.push(b'\n');
    }
    let _ = out.write_all(&tail).and_then(|()| out.flush());

    let status = if early.is_some() {
        stop(&mut child);
        None
    } else {
        wait_bounded(&mut child)
    };
    drop(stdin);
    if let Some(p) = stdout_pump {
        let _ = p.join();
    }
    let stderr_raw = stderr_pump.and_then(|p| p.join().ok()).unwrap_or_default();
    let mut r = Redactor::new(pass.as_bytes());
    let mut stderr_bytes = r.push(&stderr_raw);
    stderr_bytes.extend(r.finish());
    let stderr = String::from_utf8_lossy(&stderr_bytes).into_owned();

    Ok(match (early, sent_at, status) {
        (Some(a), _, _) => a,
        // Once sent, any end counts: the initrd's sshd may die mid-session as the boot moves on.
        (None, Some(_), _) => Attempt::Sent,
        (None, None, Some(255)) => classify_ssh_error(&stderr),
        (None, None, Some(_)) => Attempt::NoPrompt(stderr),
        (None, None, None) => Attempt::SshFailed(None, stderr),
    })
}

/// Wait for ssh to exit (it closed its output); kill it if it lingers.
fn wait_bounded(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.code(),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            _ => {
                stop(child);
                return None;
            }
        }
    }
}

/// Kill our ssh child and reap it.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
