//! `plasmagen check <INVENTORY>`: validate only.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{Outcome, print_warnings};
use crate::diag::{Diagnostic, Severity};
use crate::error::Error;
use crate::inventory::{self, LoadError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Inventory file (TOML, or JSON when it ends in .json).
    pub inventory: PathBuf,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> Result<Outcome, Error> {
    let result = inventory::load(&args.inventory);
    if args.json {
        let (valid, diags, nodes) = match &result {
            Ok(l) => (true, l.warnings.clone(), l.inventory.nodes.len()),
            Err(LoadError::Invalid(d)) => (false, d.clone(), 0),
            Err(LoadError::Io { .. }) => return Err(result.expect_err("an I/O error").into()),
        };
        print_json(&args.inventory, valid, &diags, nodes)?;
        return if valid {
            Ok(Outcome::Ok)
        } else {
            Err(Error::Invalid(Vec::new()))
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
    Ok(Outcome::Ok)
}

/// `{"file", "valid", "nodes", "errors": [...], "warnings": [...]}` on stdout.
pub fn print_json(
    file: &Path,
    valid: bool,
    diags: &[Diagnostic],
    nodes: usize,
) -> Result<(), Error> {
    let doc = json!({
        "file": file.display().to_string(),
        "valid": valid,
        "nodes": nodes,
        "errors": diags.iter().filter(|d| d.severity == Severity::Error).collect::<Vec<_>>(),
        "warnings": diags.iter().filter(|d| d.severity == Severity::Warning).collect::<Vec<_>>(),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).map_err(|e| Error::Internal(e.to_string()))?
    );
    Ok(())
}
