//! `plasmagen check --nix`: evaluate every node of a generated flake with the real `nix`.
//!
//! The contract with Nix (docs/nix.md, "`plasmagen check --nix`", names the sources):
//!
//! - probe: `nix --version` must succeed, then
//!   `nix --extra-experimental-features 'nix-command flakes' flake --help` must exit 0 (Nix 2.3
//!   rejects the flag, a Nix without a `flake` subcommand rejects the subcommand);
//! - lock (only for a flake rendered into a temporary directory):
//!   `nix … flake lock <abs dir>`, once, so every node is evaluated against the same inputs;
//! - evaluate, per node and check:
//!   `nix … eval --no-update-lock-file --raw <abs dir>#checks.x86_64-linux.<host>[-disko].drvPath`,
//!   which prints the derivation's store path or fails with Nix's error on stderr.
//!   `--no-update-lock-file` makes a missing or incomplete flake.lock an error instead of
//!   silently pinning whatever the inputs point at today (and never writes the lock).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The only system the generated flake defines (`templates/flake/flake.nix`).
pub const SYSTEM: &str = "x86_64-linux";
/// Enables the `nix` command and flakes for one call, whatever nix.conf says.
pub const FEATURES: [&str; 2] = ["--extra-experimental-features", "nix-command flakes"];
/// Evaluations at a time: Nix's evaluator is single-threaded; the build host has two cores.
pub const EVAL_JOBS: usize = 2;
/// An error excerpt keeps at most this many lines, each at most this many characters.
const EXCERPT_LINES: usize = 20;
const EXCERPT_LINE_CHARS: usize = 240;

#[derive(Debug, thiserror::Error)]
pub enum NixCheckError {
    #[error(
        "{}: Nix cannot take this path as a flake reference (it is not absolute, not UTF-8, or holds '#', '?' or '^'): move the flake directory",
        .0.display()
    )]
    UnusablePath(PathBuf),
    #[error("cannot run nix: {0}")]
    Spawn(#[source] io::Error),
    #[error("nix could not lock the inputs of {}: {excerpt}", .flake.display())]
    Lock { flake: PathBuf, excerpt: String },
}

/// A `nix` on PATH that understands `--extra-experimental-features` and `nix flake`.
#[derive(Debug, Clone)]
pub struct Nix {
    program: PathBuf,
    /// `nix --version`'s first line, e.g. `nix (Nix) 2.18.1`.
    pub version: String,
}

impl Nix {
    /// `nix` from PATH, when it is there and supports flakes.
    pub fn probe() -> Option<Nix> {
        Nix::probe_program(Path::new("nix"))
    }

    pub fn probe_program(program: &Path) -> Option<Nix> {
        let out = Command::new(program)
            .arg("--version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let version = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("nix")
            .trim()
            .to_string();
        // stdout is not a terminal, so Nix renders the help without a pager.
        let flakes = Command::new(program)
            .args(FEATURES)
            .args(["flake", "--help"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        flakes.success().then(|| Nix {
            program: program.to_path_buf(),
            version,
        })
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(FEATURES).stdin(Stdio::null());
        c
    }

    /// `nix flake lock DIR`: writes DIR/flake.lock (fetches the inputs: needs the network).
    pub fn lock(&self, flake: &Path) -> Result<(), NixCheckError> {
        let dir = flake_base(flake)?;
        let out = self
            .command()
            .args(["flake", "lock", &dir])
            .output()
            .map_err(NixCheckError::Spawn)?;
        if out.status.success() {
            return Ok(());
        }
        Err(NixCheckError::Lock {
            flake: flake.to_path_buf(),
            excerpt: error_excerpt(&String::from_utf8_lossy(&out.stderr), out.status.code()),
        })
    }

    /// The derivation path of `attr`, or an excerpt of Nix's error.
    pub fn eval_drv_path(&self, flake_ref: &str) -> Result<String, String> {
        let out = self
            .command()
            .args(eval_args(flake_ref))
            .output()
            .map_err(|e| format!("cannot run nix: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(error_excerpt(
                &String::from_utf8_lossy(&out.stderr),
                out.status.code(),
            ))
        }
    }
}

/// Everything after `nix --extra-experimental-features 'nix-command flakes'`.
pub fn eval_args(flake_ref: &str) -> Vec<String> {
    ["eval", "--no-update-lock-file", "--raw", flake_ref]
        .map(String::from)
        .to_vec()
}

/// The whole command line of an evaluation, quoted for a shell: "re-run it with
/// --show-trace" hints.
pub fn command_line(flake_ref: &str) -> String {
    let mut words = vec![
        "nix".to_string(),
        FEATURES[0].to_string(),
        format!("'{}'", FEATURES[1]),
    ];
    words.extend(eval_args(flake_ref).into_iter().map(|a| {
        if a.contains(['#', ' ']) {
            format!("'{a}'")
        } else {
            a
        }
    }));
    words.join(" ")
}

/// A flake directory as a bare path flake reference: absolute (a relative `out/flake` would be
/// read as the registry flake `out`), without the characters Nix splits references at.
pub fn flake_base(flake: &Path) -> Result<String, NixCheckError> {
    match flake.to_str() {
        Some(s) if flake.is_absolute() && !s.contains(['#', '?', '^']) => Ok(s.to_string()),
        _ => Err(NixCheckError::UnusablePath(flake.to_path_buf())),
    }
}

/// The two flake checks of a node: its NixOS system and its disko script.
pub fn check_attrs(host: &str) -> [String; 2] {
    [
        format!("checks.{SYSTEM}.{host}"),
        format!("checks.{SYSTEM}.{host}-disko"),
    ]
}

/// `<dir>#<attr>.drvPath`.
pub fn drv_path_ref(base: &str, attr: &str) -> String {
    format!("{base}#{attr}.drvPath")
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    /// `checks.x86_64-linux.<host>` or `…<host>-disko`.
    pub attr: String,
    /// The flake reference evaluated.
    pub flake_ref: String,
    /// The derivation path, or an excerpt of Nix's error.
    pub result: Result<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeOutcome {
    pub host: String,
    pub checks: Vec<CheckOutcome>,
}

impl NodeOutcome {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.result.is_ok())
    }

    /// Each distinct error once, after the checks that produced it
    /// (`checks.x86_64-linux.n1, checks.x86_64-linux.n1-disko: error: …`).
    pub fn error(&self) -> Option<String> {
        let mut groups: Vec<(Vec<&str>, &str)> = Vec::new();
        for c in &self.checks {
            if let Err(e) = &c.result {
                match groups.iter_mut().find(|(_, text)| *text == e.as_str()) {
                    Some((attrs, _)) => attrs.push(&c.attr),
                    None => groups.push((vec![&c.attr], e)),
                }
            }
        }
        if groups.is_empty() {
            return None;
        }
        let parts: Vec<String> = groups
            .iter()
            .map(|(attrs, text)| format!("{}: {text}", attrs.join(", ")))
            .collect();
        Some(parts.join("\n"))
    }
}

/// Evaluate both checks of every host, `jobs` nodes at a time. `done(n, outcome)` is called
/// as each node finishes (`n` counts finished nodes from 1), one call at a time. The outcomes
/// come back in `hosts` order.
pub fn evaluate_fleet(
    nix: &Nix,
    flake: &Path,
    hosts: &[String],
    jobs: usize,
    done: &(dyn Fn(usize, &NodeOutcome) + Sync),
) -> Result<Vec<NodeOutcome>, NixCheckError> {
    let base = flake_base(flake)?;
    let next = AtomicUsize::new(0);
    let finished = Mutex::new(0usize);
    let slots: Vec<Mutex<Option<NodeOutcome>>> = hosts.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, hosts.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(host) = hosts.get(i) else { break };
                    let checks = check_attrs(host)
                        .into_iter()
                        .map(|attr| {
                            let flake_ref = drv_path_ref(&base, &attr);
                            let result = nix.eval_drv_path(&flake_ref);
                            CheckOutcome {
                                attr,
                                flake_ref,
                                result,
                            }
                        })
                        .collect();
                    let outcome = NodeOutcome {
                        host: host.clone(),
                        checks,
                    };
                    {
                        let mut n = finished.lock().unwrap_or_else(|p| p.into_inner());
                        *n += 1;
                        done(*n, &outcome);
                    }
                    *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                }
            });
        }
    });
    Ok(slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("every host evaluated")
        })
        .collect())
}

/// The part of Nix's stderr worth showing: from the first `error:` line on (warnings before it
/// dropped), blank lines and colours removed; when long, the first line, the innermost error
/// (the last `error:`) and what follows it, at most [`EXCERPT_LINES`] lines.
pub fn error_excerpt(stderr: &str, status: Option<i32>) -> String {
    let clean = strip_ansi(stderr);
    let lines: Vec<&str> = clean
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    let Some(first) = lines.iter().position(|l| l.starts_with("error:")) else {
        // No `error:` line (killed, or an unexpected format): the last lines as they are.
        let tail = &lines[lines.len().saturating_sub(10)..];
        return if tail.is_empty() {
            match status {
                Some(code) => format!("nix exited with status {code} and printed nothing"),
                None => "nix was killed by a signal".to_string(),
            }
        } else {
            tail.iter().map(|l| clip(l)).collect::<Vec<_>>().join("\n")
        };
    };
    let block = &lines[first..];
    let mut keep: Vec<String> = if block.len() <= EXCERPT_LINES {
        block.iter().map(|l| clip(l)).collect()
    } else {
        let last = block
            .iter()
            .rposition(|l| l.trim_start().starts_with("error:"))
            .unwrap_or(0);
        let mut keep = vec![clip(block[0])];
        if last > 1 {
            keep.push(format!("       … ({} lines omitted)", last - 1));
        }
        keep.extend(block[last.max(1)..].iter().map(|l| clip(l)));
        keep
    };
    if keep.len() > EXCERPT_LINES {
        let omitted = keep.len() - (EXCERPT_LINES - 1);
        keep.truncate(EXCERPT_LINES - 1);
        keep.push(format!("       … ({omitted} more lines)"));
    }
    keep.join("\n")
}

fn clip(line: &str) -> String {
    match line.char_indices().nth(EXCERPT_LINE_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

/// Remove ANSI escape sequences (Nix colours its messages when it thinks it may).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // CSI: ESC [ parameters… final byte in '@'..='~'.
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}
