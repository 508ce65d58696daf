//! `plasmagen enlist INVENTORY (MAC… | --all) --role ROLE`: discovered machines become
//! inventory entries, written into the inventory file in place by plasma_inventory::enlist's
//! `apply` and `write_in_place` (the collector's dashboard enlists through the same code).

use std::path::{Path, PathBuf};

use plasma_collector::client::{ClientTls, OperatorClient};
use plasma_inventory::enlist::{self, ApplyError, Machine, Request};
use plasma_inventory::inventory::{DiskLayout, Role};

use super::Outcome;
use super::status::{block_on, client_err};
use crate::error::Error;
use crate::inventory;

pub const HELP: &str = "\
Reads the machines the collector has discovery reports for (GET /v1/nodes, operator
certificate) whose MAC no node has, and adds one [[nodes]] entry each: the next free hostname
(--hostname node##, default from the existing names), addresses from the [allocation] pools
(default: the runbook's plan, provisioning .50-.79 / production .10-.19 for control planes,
.80-.99 / .20-.99 for workers; never a taken address, the DHCP range, a gateway or the PXE
server), boot disks by /dev/disk/by-id (non-removable, at least 16 GiB; raid1: two of equal
size; else the smallest, SSD before rotational; --disk overrides), the fastest non-PXE NICs as
production_macs, the discovered firmware, and the BMC when reported and --bmc-user is given.
The file keeps every comment and line; the result is validated before it is written (invalid:
exit 2, file untouched). Re-running for an enlisted MAC changes nothing.

Exit codes:
  0   entries written (or nothing to do)
  1   --dry-run: entries would be written (the diff is printed)
  2   bad input: unknown MAC, a full pool, no usable disk, an invalid result
  69  the collector unreachable or failing";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The inventory file to edit (TOML or JSON).
    pub inventory: PathBuf,
    /// MACs of discovered machines to enlist.
    pub macs: Vec<String>,
    /// Every discovered machine that is in no inventory node.
    #[arg(long, conflicts_with = "macs")]
    pub all: bool,
    #[arg(long, value_parser = ["control-plane", "worker", "all-in-one"])]
    pub role: String,
    /// Hostname pattern, one run of # for the number (node## → node06).
    #[arg(long, value_name = "PATTERN")]
    pub hostname: Option<String>,
    /// Boot disk(s) by path instead of the rule (one machine at a time).
    #[arg(long = "disk", value_name = "PATH")]
    pub disks: Vec<String>,
    #[arg(long, default_value = "single", value_parser = ["single", "raid1", "luks-lvm"])]
    pub disk_layout: String,
    /// BMC user for machines that reported their BMC's address.
    #[arg(long, value_name = "USER")]
    pub bmc_user: Option<String>,
    /// Collector URL (default: the inventory's collector_url).
    #[arg(long)]
    pub collector: Option<String>,
    /// Generated secrets directory (CA and operator certificate).
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// Print the diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &Args) -> Result<Outcome, Error> {
    let text = std::fs::read_to_string(&args.inventory).map_err(Error::io_at(&args.inventory))?;
    let loaded = inventory::load_str(&args.inventory, &text)?;
    let inv = &loaded.inventory;
    if args.macs.is_empty() && !args.all {
        return Err(Error::Usage(
            "name the MACs to enlist, or pass --all".into(),
        ));
    }
    if !args.disks.is_empty() && (args.all || args.macs.len() != 1) {
        return Err(Error::Usage(
            "--disk chooses the disks of one machine".into(),
        ));
    }
    let url = args
        .collector
        .clone()
        .unwrap_or_else(|| inv.cluster.collector_url.clone());
    let tls = ClientTls {
        secrets: args.secrets.clone(),
        ..ClientTls::default()
    };
    let client = OperatorClient::new(&url, &tls).map_err(client_err)?;
    let unknown = block_on(client.unknown_discovered())?.map_err(client_err)?;

    let known = |mac: &str| enlist::enlisted(inv, mac);
    let mut chosen = Vec::new();
    if args.all {
        // The collector's list is from its own copy of the inventory, which an earlier
        // enlist may have outdated: this file decides what is known.
        for d in &unknown {
            match known(&d.mac) {
                Some(n) => eprintln!("enlist: {} is already enlisted as {}", d.mac, n.hostname),
                None => chosen.push(d),
            }
        }
    }
    for mac in &args.macs {
        let mac = mac.to_ascii_lowercase().replace('-', ":");
        if let Some(n) = known(&mac) {
            eprintln!("enlist: {mac} is already enlisted as {}", n.hostname);
            continue;
        }
        let d = unknown
            .iter()
            .find(|d| d.mac.eq_ignore_ascii_case(&mac))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{mac}: the collector at {url} has no discovery report for it \
                     (netboot the machine into discovery first)"
                ))
            })?;
        chosen.push(d);
    }
    if chosen.is_empty() {
        eprintln!("enlist: nothing to enlist");
        return Ok(Outcome::Ok);
    }

    let req = Request {
        role: Role::parse(&args.role).ok_or_else(|| Error::Usage("bad --role".into()))?,
        hostname_pattern: args.hostname.clone(),
        disks: (!args.disks.is_empty()).then(|| args.disks.clone()),
        disk_layout: DiskLayout::parse(&args.disk_layout)
            .ok_or_else(|| Error::Usage("bad --disk-layout".into()))?,
        bmc_user: args.bmc_user.clone(),
    };
    // The fleet list holds summaries; each machine's facts are one request.
    let mut machines: Vec<Machine> = Vec::with_capacity(chosen.len());
    for d in chosen {
        let view = block_on(client.discovered(&d.mac))?.map_err(client_err)?;
        machines.push(Machine {
            mac: view.mac,
            facts: view.facts,
        });
    }
    let applied = enlist::apply(&args.inventory, &text, &machines, &req).map_err(apply_err)?;
    let (entries, new_text) = (applied.entries, applied.text);

    for e in &entries {
        eprintln!(
            "enlist: {} → {} ({}), {} / {}, {} [{}], firmware {}{}",
            e.mac,
            e.hostname,
            e.role.as_str(),
            e.provisioning_ip,
            e.production_ip,
            e.disks.join(" "),
            e.disk_layout.as_str(),
            e.firmware,
            if e.production_macs.is_empty() {
                String::new()
            } else {
                format!(", production {}", e.production_macs.join(" "))
            }
        );
    }
    if args.dry_run {
        print!("{}", diff(&args.inventory, &text, &new_text));
        return Ok(Outcome::ChangesPending);
    }
    enlist::write_in_place(&args.inventory, &new_text).map_err(|e| Error::Io {
        path: e.path,
        source: e.source,
    })?;
    eprintln!(
        "enlist: {} written; next: plasmagen generate {} --out OUT",
        args.inventory.display(),
        args.inventory.display()
    );
    Ok(Outcome::Ok)
}

fn diff(path: &Path, old: &str, new: &str) -> String {
    let name = path.display().to_string();
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .header(&name, &name)
        .to_string()
}

/// Invalid inventories print their diagnostics; every other refusal is bad input (exit 2).
fn apply_err(e: ApplyError) -> Error {
    match e {
        ApplyError::Current(e) | ApplyError::Invalid(e) => e.into(),
        other => Error::Usage(other.to_string()),
    }
}
