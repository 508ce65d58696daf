//! Shared by the nix_* tests: the repository root and `nix-instantiate` runs.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// `nix-instantiate --eval --strict --json -E <expr>`: Ok(value) or Err(stderr).
pub fn eval_json(expr: &str) -> Result<serde_json::Value, String> {
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "-E", expr])
        .output()
        .expect("nix-instantiate runs (Debian package nix-bin)");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("nix-instantiate printed JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Evaluates `module` (a path relative to the repository) with nix/tests/stub-eval.nix;
/// `settings` and `world` are Nix expressions.
pub fn stub_eval(
    module: &str,
    settings: &str,
    world: &str,
    select: &str,
) -> Result<serde_json::Value, String> {
    let repo = repo();
    eval_json(&format!(
        "(import {}/nix/tests/stub-eval.nix {{ module = {}/{module}; settings = {settings}; world = {world}; }}).{select}",
        repo.display(),
        repo.display(),
    ))
}
