//! `plasmagen certs list|rotate`: inspect and rotate the cluster PKI.

use std::path::{Path, PathBuf};

use plasma_pki::store::{self, Rotate};

use super::{Outcome, print_warnings};
use crate::error::Error;
use crate::inventory;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: CertsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CertsCommand {
    /// Every certificate with subject, SANs, expiry, days left and whether it verifies
    /// against the current CA.
    List(ListArgs),
    /// New key and certificate for a node (or all); the old files are kept with a timestamp
    /// suffix.
    Rotate(RotateArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The --out directory of `generate` (or the secrets directory itself).
    pub dir: PathBuf,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["node", "all"]))]
pub struct RotateArgs {
    pub inventory: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// Secrets directory (default <OUT>/secrets).
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// Rotate one node's key and certificate.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Rotate every node, the provisioning server, the operator and viewer certificates (never
    /// the CA).
    #[arg(long)]
    pub all: bool,
}

/// `DIR/secrets` when it exists, else DIR.
fn secrets_dir(dir: &Path) -> PathBuf {
    let nested = dir.join("secrets");
    if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

pub fn run(args: &Args) -> Result<Outcome, Error> {
    match &args.command {
        CertsCommand::List(a) => list(a),
        CertsCommand::Rotate(a) => rotate(a),
    }
}

fn list(args: &ListArgs) -> Result<Outcome, Error> {
    let certs = store::list(&secrets_dir(&args.dir))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&certs).map_err(|e| Error::Internal(e.to_string()))?
        );
        return Ok(Outcome::Ok);
    }
    println!(
        "{:<40} {:<22} {:>9} {:<8} SANS",
        "SUBJECT", "NOT AFTER", "DAYS LEFT", "VERIFIES"
    );
    for c in &certs {
        println!(
            "{:<40} {:<22} {:>9} {:<8} {}",
            c.subject,
            c.not_after,
            c.days_left,
            if c.verifies { "yes" } else { "NO" },
            c.sans.join(",")
        );
    }
    Ok(Outcome::Ok)
}

fn rotate(args: &RotateArgs) -> Result<Outcome, Error> {
    let loaded = inventory::load(&args.inventory)?;
    print_warnings(&loaded.warnings);
    let inv = &loaded.inventory;
    let layout = super::generate::layout(&args.out, args.secrets.as_deref())?;
    let which = match (&args.node, args.all) {
        (Some(name), _) => {
            if inv.node(name).is_none() {
                return Err(Error::Usage(format!(
                    "{}: no node named {name:?} in the inventory",
                    args.inventory.display()
                )));
            }
            Rotate::Node(name.clone())
        }
        (None, _) => Rotate::All,
    };
    let input = crate::pki::store_input(inv, store::DEFAULT_RENEW_BEFORE_DAYS, false);
    for action in store::rotate(
        &layout.secrets,
        &input,
        which,
        time::OffsetDateTime::now_utc(),
    )? {
        println!("{action}");
    }
    Ok(Outcome::Ok)
}
