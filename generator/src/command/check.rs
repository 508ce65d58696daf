//! `plasmagen check <INVENTORY> [--nix [--flake DIR]]`: validate; with `--nix`, also evaluate
//! every node's NixOS system and disko script with `nix` (docs/nix.md).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Outcome, print_warnings};
use crate::diag::{Diagnostic, Severity};
use crate::error::Error;
use crate::inventory::{self, Inventory, LoadError};
use crate::nixcheck::{self, Nix, NodeOutcome};
use crate::render::{self, Rendered};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Inventory file (TOML, or JSON when it ends in .json).
    pub inventory: PathBuf,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also evaluate every node's NixOS system and disko script with `nix` (skipped, exit 0,
    /// when no nix with flakes support is on PATH); exit 2 when one fails to evaluate.
    #[arg(long)]
    pub nix: bool,
    /// With --nix: the flake directory `plasmagen generate` wrote (<OUT>/flake), locked
    /// (flake.lock). Default: the inventory's flake, rendered into a temporary directory and
    /// locked there (needs network access).
    #[arg(long, requires = "nix", value_name = "DIR")]
    pub flake: Option<PathBuf>,
}

/// Printed (stderr) when `--nix` finds no usable `nix`.
pub const NIX_SKIPPED: &str = "nix not found on PATH (or without flakes support): skipping the Nix evaluation; the inventory is valid";

pub fn run(args: &Args) -> Result<Outcome, Error> {
    let result = inventory::load(&args.inventory);
    if args.json {
        let loaded = match result {
            Ok(l) => l,
            Err(LoadError::Invalid(d)) => {
                let nix = args.nix.then(|| json!({ "ran": false, "nodes": {} }));
                print_json_with(&args.inventory, false, &d, 0, nix)?;
                return Err(Error::Invalid(Vec::new()));
            }
            Err(e) => return Err(e.into()),
        };
        let report = if args.nix {
            Some(nix_check(args, &loaded.inventory)?)
        } else {
            None
        };
        let nix = report.as_ref().map(NixReport::to_json);
        let n = loaded.inventory.nodes.len();
        print_json_with(&args.inventory, true, &loaded.warnings, n, nix)?;
        return match report {
            Some(r) if r.failed() > 0 => Err(Error::Invalid(Vec::new())),
            _ => Ok(Outcome::Ok),
        };
    }
    let loaded = result?;
    print_warnings(&loaded.warnings);
    let inv = &loaded.inventory;
    println!(
        "{}: valid: cluster {}, {} nodes ({} bootstrap), {} warnings",
        args.inventory.display(),
        inv.cluster.name,
        inv.nodes.len(),
        inv.cluster.bootstrap.len(),
        loaded.warnings.len()
    );
    if !args.nix {
        return Ok(Outcome::Ok);
    }
    let report = nix_check(args, inv)?;
    report.print_text(&args.inventory);
    if report.failed() > 0 {
        Err(Error::Invalid(Vec::new()))
    } else {
        Ok(Outcome::Ok)
    }
}

/// What `--nix` found.
struct NixReport {
    ran: bool,
    version: Option<String>,
    /// The flake directory evaluated (a temporary one is gone by the time this is printed).
    flake: Option<PathBuf>,
    temporary: bool,
    /// Rendered `.nix` files that differ from the `--flake` directory's.
    stale: Vec<PathBuf>,
    nodes: Vec<NodeOutcome>,
}

impl NixReport {
    fn failed(&self) -> usize {
        self.nodes.iter().filter(|n| !n.ok()).count()
    }

    fn to_json(&self) -> Value {
        let nodes: serde_json::Map<String, Value> = self
            .nodes
            .iter()
            .map(|n| {
                let drvs: serde_json::Map<String, Value> = n
                    .checks
                    .iter()
                    .filter_map(|c| Some((c.attr.clone(), json!(c.result.as_ref().ok()?))))
                    .collect();
                let doc = json!({ "ok": n.ok(), "error": n.error(), "drv_paths": drvs });
                (n.host.clone(), doc)
            })
            .collect();
        json!({
            "ran": self.ran,
            "version": self.version,
            "flake": if self.temporary { None } else { self.flake.as_ref().map(|f| f.display().to_string()) },
            "stale": self.stale.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "nodes": nodes,
        })
    }

    fn print_text(&self, inventory: &Path) {
        if !self.ran {
            return;
        }
        let file = inventory.display();
        for n in &self.nodes {
            if let Some(error) = n.error() {
                eprintln!("{file}: node {}: nix evaluation failed: {error}", n.host);
            }
        }
        let failed = self.failed();
        if failed == 0 {
            println!(
                "{file}: nix: {} nodes evaluate (system and disko script)",
                self.nodes.len()
            );
            return;
        }
        if let Some(check) = self
            .nodes
            .iter()
            .flat_map(|n| &n.checks)
            .find(|c| c.result.is_err())
        {
            if self.temporary {
                // The temporary flake is gone: point at the one generate writes.
                let flake_ref = nixcheck::drv_path_ref("<OUT>/flake", &check.attr);
                eprintln!(
                    "the whole trace: generate the flake, then run {} --show-trace",
                    nixcheck::command_line(&flake_ref)
                );
            } else {
                eprintln!(
                    "the whole trace: {} --show-trace",
                    nixcheck::command_line(&check.flake_ref)
                );
            }
        }
        eprintln!(
            "{file}: nix evaluation failed for {failed} of {} nodes",
            self.nodes.len()
        );
    }
}

fn nix_check(args: &Args, inv: &Inventory) -> Result<NixReport, Error> {
    let rendered = render::render_flake(inv)?;
    let mut report = NixReport {
        ran: false,
        version: None,
        flake: None,
        temporary: args.flake.is_none(),
        stale: Vec::new(),
        nodes: Vec::new(),
    };
    if let Some(dir) = &args.flake {
        if !dir.join("flake.nix").is_file() {
            return Err(Error::Usage(format!(
                "{}: no flake.nix here: --flake takes the directory `plasmagen generate` wrote (<OUT>/flake)",
                dir.display()
            )));
        }
        report.stale = stale_files(dir, &rendered);
        if !report.stale.is_empty() {
            let names: Vec<String> = report
                .stale
                .iter()
                .take(3)
                .map(|p| p.display().to_string())
                .collect();
            let more = report.stale.len().saturating_sub(3);
            eprintln!(
                "warning: {} is stale: {}{} differ from what {} renders now: run plasmagen generate first (evaluating the flake as it is)",
                dir.display(),
                names.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                },
                args.inventory.display()
            );
        }
    }
    let Some(nix) = Nix::probe() else {
        eprintln!("{NIX_SKIPPED}");
        return Ok(report);
    };
    report.version = Some(nix.version.clone());
    let _tmp; // keeps a temporary flake alive until the evaluation is over
    let flake = match &args.flake {
        Some(dir) => {
            if !dir.join("flake.lock").is_file() {
                return Err(Error::Usage(format!(
                    "{}: no flake.lock: lock the flake first (`nix flake lock {}`, needs network access) and commit flake.lock; check --nix evaluates the inputs it pins and never picks them itself",
                    dir.display(),
                    dir.display()
                )));
            }
            fs::canonicalize(dir).map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?
        }
        None => {
            let tmp = tempfile::Builder::new()
                .prefix("plasmagen-check-")
                .tempdir()
                .map_err(|source| Error::Io {
                    path: std::env::temp_dir(),
                    source,
                })?;
            let flake = tmp.path().join("flake");
            crate::output::apply(&flake, &crate::output::plan(&flake, &rendered)?)?;
            _tmp = tmp;
            let flake = fs::canonicalize(&flake).map_err(|source| Error::Io {
                path: flake.clone(),
                source,
            })?;
            eprintln!(
                "nix: locking the flake inputs of {}",
                args.inventory.display()
            );
            nix.lock(&flake).map_err(|e| match e {
                nixcheck::NixCheckError::Lock { excerpt, .. } => Error::Usage(format!(
                    "{}: nix could not lock the flake inputs ([flake.inputs], or their defaults; needs network access): {excerpt}",
                    args.inventory.display()
                )),
                other => Error::Usage(other.to_string()),
            })?;
            flake
        }
    };
    let hosts: Vec<String> = inv.nodes.iter().map(|n| n.hostname.clone()).collect();
    let total = hosts.len();
    eprintln!(
        "nix: evaluating {total} nodes (system and disko script) of {} with {}",
        if args.flake.is_some() {
            flake.display().to_string()
        } else {
            format!("a temporary rendering of {}", args.inventory.display())
        },
        nix.version
    );
    let progress = |n: usize, node: &NodeOutcome| {
        let verdict = if node.ok() { "ok" } else { "FAILED" };
        eprintln!("[{n}/{total}] {} ... {verdict}", node.host);
    };
    report.nodes = nixcheck::evaluate_fleet(&nix, &flake, &hosts, nixcheck::EVAL_JOBS, &progress)
        .map_err(|e| Error::Usage(e.to_string()))?;
    report.ran = true;
    report.flake = Some(flake);
    Ok(report)
}

/// Rendered `.nix` files whose bytes differ from (or are missing in) `dir`. The `.nix` files
/// depend on the inventory alone, so any difference means `generate` has not run since.
fn stale_files(dir: &Path, rendered: &Rendered) -> Vec<PathBuf> {
    rendered
        .files
        .iter()
        .filter(|(rel, _)| rel.extension().is_some_and(|e| e == "nix"))
        .filter(|(rel, bytes)| fs::read(dir.join(rel)).ok().as_deref() != Some(bytes.as_slice()))
        .map(|(rel, _)| rel.clone())
        .collect()
}

/// `{"file", "valid", "nodes", "errors": [...], "warnings": [...]}` on stdout.
pub fn print_json(
    file: &Path,
    valid: bool,
    diags: &[Diagnostic],
    nodes: usize,
) -> Result<(), Error> {
    print_json_with(file, valid, diags, nodes, None)
}

/// [`print_json`], plus `"nix": {...}` when given.
fn print_json_with(
    file: &Path,
    valid: bool,
    diags: &[Diagnostic],
    nodes: usize,
    nix: Option<Value>,
) -> Result<(), Error> {
    let mut doc = json!({
        "file": file.display().to_string(),
        "valid": valid,
        "nodes": nodes,
        "errors": diags.iter().filter(|d| d.severity == Severity::Error).collect::<Vec<_>>(),
        "warnings": diags.iter().filter(|d| d.severity == Severity::Warning).collect::<Vec<_>>(),
    });
    if let Some(nix) = nix {
        doc["nix"] = nix;
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).map_err(|e| Error::Internal(e.to_string()))?
    );
    Ok(())
}
