//! Helpers shared by plasmagen's integration tests.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn plasmagen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_plasmagen"))
}

pub fn run(args: &[&str]) -> Output {
    plasmagen().args(args).output().expect("run plasmagen")
}

pub fn generate(inventory: &Path, out: &Path) -> Output {
    generate_with(inventory, out, &[])
}

/// `plasmagen generate INVENTORY --out OUT EXTRA...`, asserting success.
pub fn generate_with(inventory: &Path, out: &Path, extra: &[&str]) -> Output {
    let o = plasmagen()
        // Fixed date: DNS serials in golden files must not depend on the day the test runs.
        .env("SOURCE_DATE_EPOCH", "1764000000")
        .arg("generate")
        .arg(inventory)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("run plasmagen");
    assert!(
        o.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Fail with the Debian package to install when a required tool is missing.
pub fn require_tool(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(tool).is_file();
    assert!(
        found,
        "`{tool}` not found: install the Debian package `{package}` (scripts/test.sh does)"
    );
}

/// Evaluate a Nix expression strictly with the real evaluator, in `dir`.
pub fn nix_eval(dir: &Path, expr: &str) -> serde_json::Value {
    require_tool("nix-instantiate", "nix-bin");
    let o = Command::new("nix-instantiate")
        .current_dir(dir)
        .args(["--eval", "--strict", "--json", "-E", expr])
        .output()
        .expect("run nix-instantiate");
    assert!(
        o.status.success(),
        "nix-instantiate failed for {expr}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("nix-instantiate printed JSON")
}

/// Every regular file under `root`, relative, sorted.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read dir") {
            let e = e.expect("dir entry");
            let p = e.path();
            if e.file_type().expect("file type").is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).expect("under root").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// `generate --skip-certs`: the flake alone, byte-for-byte reproducible (golden files).
pub fn generate_flake_only(inventory: &Path, out: &Path) -> Output {
    generate_with(inventory, out, &["--skip-certs"])
}

/// The run's output, bounded: a hang fails the test instead of blocking it.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut pipes = (child.stdout.take(), child.stderr.take());
    let out = thread::spawn(move || read_all(pipes.0.take()));
    let err = thread::spawn(move || read_all(pipes.1.take()));
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "hung for {limit:?}; stderr so far:\n{}",
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    let output = Output {
        status,
        stdout: out.join().expect("stdout"),
        stderr: err.join().expect("stderr"),
    };
    (output, start.elapsed())
}

pub fn read_all(r: Option<impl Read>) -> Vec<u8> {
    let mut v = Vec::new();
    if let Some(mut r) = r {
        let _ = r.read_to_end(&mut v);
    }
    v
}
