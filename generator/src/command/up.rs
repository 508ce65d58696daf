//! `plasmagen up OUT --inventory INVENTORY`: the runbook in one command, each stage the
//! command an operator would run by hand (generate, enlist, provision, status --wait), so a
//! stage that fails is fixed and `up` run again: every stage is safe to repeat, and provision
//! resumes from its journal.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use plasma_collector::client::OperatorClient;
use plasma_collector::view::FleetView;

use super::Outcome;
use super::fleet::{collector_client, load_fleet, operator_layout};
use super::status::{CollectorArgs, block_on, client_err};
use super::{enlist, generate, provision, status};
use crate::error::Error;

pub const HELP: &str = "\
Stages (each is the command of the same name, so a failed stage can also be finished by hand):
  1 generate   the flake and PKI from INVENTORY (nothing changes when nothing changed)
  2 collector  the configured collector answers (with the operator certificate)
  3 discover   with --enlist-as: wait for machines nobody typed in to report (--expect-unknown
               N of them, else until none new for --discover-settle; at most
               --discover-timeout); without: list them
  4 enlist     --enlist-as ROLE: they become INVENTORY entries (as `plasmagen enlist --all`),
               then generate again; a lab in OUT/lab is reloaded (dhcpd, collector), else
               deploy the PXE server yourself so its DHCP and collector see them
  5 provision  every node with a BMC (founding members first, through the barrier; as
               `plasmagen provision --all --resume`); nodes without a BMC are listed
  6 wait       until every node reports joined (as `status --wait`); --until installed stops
               after provisioning (the lab, where Nix cannot install)
  7 summary    the fleet as the collector sees it
Interrupted (Ctrl-C) or failed: run the same `up` again; OUT/logs/up.json says where it stopped.

Exit codes:
  0   every node installed (--until installed) or joined
  1   a node failed or the wait timed out (the summary says which; run `up` again)
  2   bad input (inventory, arguments, an enlist that does not fit); nothing was written
  69  the collector or a BMC unreachable";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output directory (as `generate --out`).
    pub out: PathBuf,
    /// The inventory file (enlisted machines are written into it).
    #[arg(long)]
    pub inventory: PathBuf,
    /// Secrets directory (default OUT/secrets).
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// SSH identity for the installer and the nodes.
    #[arg(short = 'i', long, value_name = "IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Collector URL (default: the inventory's collector_url).
    #[arg(long)]
    pub collector: Option<String>,
    /// Enlist machines nobody typed in with this role.
    #[arg(long, value_name = "ROLE", value_parser = ["control-plane", "worker", "all-in-one"])]
    pub enlist_as: Option<String>,
    /// Hostname pattern for enlisted machines (enlist --hostname).
    #[arg(long, value_name = "PATTERN", requires = "enlist_as")]
    pub hostname: Option<String>,
    /// Discovery is over when no new machine reported for this long.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub discover_settle: u64,
    /// Discovery is over once this many machines nobody typed in reported (instead of the
    /// settle time): the number you powered on.
    #[arg(long, value_name = "N", requires = "enlist_as")]
    pub expect_unknown: Option<usize>,
    /// At most this long for discovery.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub discover_timeout: u64,
    /// Stop once every node is installed (`installed`) or wait until each joined (`joined`).
    #[arg(long, default_value = "joined", value_parser = ["installed", "joined"])]
    pub until: String,
    /// How long to wait for every node to join.
    #[arg(long, default_value_t = 1800, value_name = "SECS")]
    pub join_timeout: u64,
    /// Nodes installed at once (provision --max-parallel).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_parallel: usize,
    /// How long a node may take to reach the installer (provision --installer-timeout).
    #[arg(long, default_value_t = 900, value_name = "SECS")]
    pub installer_timeout: u64,
}

/// Where `up` stopped, for the operator (OUT/logs/up.json).
#[derive(Debug, serde::Serialize)]
struct Record<'a> {
    stage: &'a str,
    result: &'a str,
    enlisted: &'a [String],
}

struct Stages<'a> {
    args: &'a Args,
    started: Instant,
    enlisted: Vec<String>,
}

impl Stages<'_> {
    fn say(&self, stage: usize, name: &str, line: &str) {
        eprintln!(
            "up [{stage}/7 {name}] {line} ({} s)",
            self.started.elapsed().as_secs()
        );
    }

    fn record(&self, stage: &str, result: &str) {
        let logs = self.args.out.join("logs");
        let record = Record {
            stage,
            result,
            enlisted: &self.enlisted,
        };
        if std::fs::create_dir_all(&logs).is_ok()
            && let Ok(text) = serde_json::to_vec_pretty(&record)
        {
            let _ = std::fs::write(logs.join("up.json"), text);
        }
    }
}

pub fn run(args: &Args) -> Result<Outcome, Error> {
    let mut s = Stages {
        args,
        started: Instant::now(),
        enlisted: Vec::new(),
    };
    let result = stages(&mut s);
    match &result {
        Ok(Outcome::Ok) => s.record("summary", "done"),
        Ok(_) => s.record("summary", "failed"),
        Err(e) => s.record("error", &e.to_string()),
    }
    result
}

fn stages(s: &mut Stages<'_>) -> Result<Outcome, Error> {
    let args = s.args;
    s.say(1, "generate", &format!("{}", args.inventory.display()));
    s.record("generate", "running");
    generate_flake(args)?;

    let layout = operator_layout(&args.out, args.secrets.as_deref())?;
    let inv = load_fleet(&layout.flake)?.inventory;
    let url = args
        .collector
        .clone()
        .unwrap_or_else(|| inv.cluster.collector_url.clone());
    s.say(2, "collector", &url);
    s.record("collector", "running");
    let client = collector_client(&url, &layout.secrets)?;
    let fleet = fetch(&client)?;
    s.say(
        2,
        "collector",
        &format!("answers: {} nodes in its inventory", fleet.nodes.len()),
    );

    s.record("discover", "running");
    let unknown = discover(s, &client)?;
    if let Some(role) = &args.enlist_as
        && !unknown.is_empty()
    {
        s.record("enlist", "running");
        s.say(4, "enlist", &format!("{} as {role}", unknown.join(" ")));
        let before = load_fleet(&layout.flake)?.inventory;
        enlist::run(&enlist::Args {
            inventory: args.inventory.clone(),
            macs: Vec::new(),
            all: true,
            role: role.clone(),
            hostname: args.hostname.clone(),
            disks: Vec::new(),
            disk_layout: "single".into(),
            bmc_user: None,
            collector: Some(url.clone()),
            secrets: Some(layout.secrets.clone()),
            dry_run: false,
        })?;
        generate_flake(args)?;
        let after = load_fleet(&layout.flake)?.inventory;
        s.enlisted = after
            .nodes
            .iter()
            .filter(|n| before.node(&n.hostname).is_none())
            .map(|n| n.hostname.clone())
            .collect();
        s.say(
            4,
            "enlist",
            &format!("enlisted and generated: {}", s.enlisted.join(" ")),
        );
        if super::lab::has_lab(&args.out) {
            super::lab::reload(&args.out)?;
        } else {
            s.say(
                4,
                "enlist",
                "deploy the PXE server now (its DHCP reservations and the collector's inventory \
                 changed), then run `up` again",
            );
        }
    }

    let inv = load_fleet(&layout.flake)?.inventory;
    let (with_bmc, without): (Vec<&str>, Vec<&str>) = inv
        .nodes
        .iter()
        .map(|n| n.hostname.as_str())
        .partition(|h| inv.node(h).is_some_and(|n| n.bmc.is_some()));
    for h in &without {
        s.say(
            5,
            "provision",
            &format!(
                "{h} has no BMC: boot it into PXE by hand, then `plasmagen provision {} {h}`",
                args.out.display()
            ),
        );
    }
    if with_bmc.is_empty() {
        return Err(Error::Usage(
            "no node has a BMC: provision them by hand (`plasmagen provision OUT NODE…`)".into(),
        ));
    }
    s.record("provision", "running");
    s.say(5, "provision", &with_bmc.join(" "));
    let provisioned = provision::run(&provision::Args {
        out: args.out.clone(),
        nodes: with_bmc.iter().map(|h| h.to_string()).collect(),
        bootstrap: false,
        all: false,
        secrets: args.secrets.clone(),
        identity: args.identity.clone(),
        collector: Some(url.clone()),
        reinstall: false,
        yes: false,
        resume: layout.logs.join("provision-state.json").is_file(),
        max_parallel: args.max_parallel,
        installer_timeout: args.installer_timeout,
        poll_interval: 5,
        no_hardware_report: false,
        dry_run: false,
        extra: Vec::new(),
    })?;
    if provisioned != Outcome::Ok {
        s.say(5, "provision", "a node failed: fix it and run `up` again");
        summary(s, &client)?;
        return Ok(Outcome::Failed);
    }

    let outcome = if args.until == "joined" {
        s.record("wait", "running");
        s.say(6, "wait", "until every node reports joined");
        status::run(&status::Args {
            conn: CollectorArgs {
                collector: url.clone(),
                secrets: Some(layout.secrets.clone()),
                ca: None,
                cert: None,
                key: None,
            },
            json: false,
            all: false,
            wait: true,
            timeout: Duration::from_secs(args.join_timeout),
            interval: Duration::from_secs(2),
        })?
    } else {
        Outcome::Ok
    };
    summary(s, &client)?;
    Ok(outcome)
}

/// `generate INVENTORY --out OUT [--secrets]`.
fn generate_flake(args: &Args) -> Result<(), Error> {
    let g = generate::Args {
        secrets: args.secrets.clone(),
        skip_certs: false,
        ..generate::Args::flake_only(args.inventory.clone(), args.out.clone())
    };
    generate::run(&g).map(|_| ())
}

fn fetch(client: &OperatorClient) -> Result<FleetView, Error> {
    block_on(client.fleet())?.map_err(client_err)
}

/// The MACs of machines nobody typed in. With --enlist-as, waits until none new reported for
/// --discover-settle (at most --discover-timeout).
fn discover(s: &Stages<'_>, client: &OperatorClient) -> Result<Vec<String>, Error> {
    let args = s.args;
    let inv = crate::inventory::load(&args.inventory)?.inventory;
    let unknown_now = || -> Result<Vec<String>, Error> {
        Ok(block_on(client.unknown_discovered())?
            .map_err(client_err)?
            .into_iter()
            .map(|d| d.mac)
            .filter(|mac| {
                !inv.nodes
                    .iter()
                    .any(|n| n.mac.as_str().eq_ignore_ascii_case(mac))
            })
            .collect())
    };
    if args.enlist_as.is_none() {
        let unknown = unknown_now()?;
        if !unknown.is_empty() {
            s.say(
                3,
                "discover",
                &format!(
                    "not in the inventory: {} (enlist them with --enlist-as ROLE)",
                    unknown.join(" ")
                ),
            );
        }
        return Ok(unknown);
    }
    let start = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    let mut last_new = Instant::now();
    let mut last_note = Instant::now();
    loop {
        let now = unknown_now()?;
        for mac in now {
            if !seen.contains(&mac) {
                s.say(3, "discover", &format!("{mac} reported"));
                seen.push(mac);
                last_new = Instant::now();
            }
        }
        let done = match args.expect_unknown {
            Some(n) => seen.len() >= n,
            None => last_new.elapsed() >= Duration::from_secs(args.discover_settle),
        };
        if done || start.elapsed() >= Duration::from_secs(args.discover_timeout) {
            break;
        }
        if seen.is_empty() && last_note.elapsed() >= Duration::from_secs(30) {
            s.say(
                3,
                "discover",
                "waiting for a machine nobody typed in to report",
            );
            last_note = Instant::now();
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    if seen.is_empty() {
        s.say(3, "discover", "no machine outside the inventory reported");
    }
    Ok(seen)
}

fn summary(s: &Stages<'_>, client: &OperatorClient) -> Result<(), Error> {
    let fleet = fetch(client)?;
    let width = fleet
        .nodes
        .iter()
        .map(|n| n.hostname.len())
        .max()
        .unwrap_or(4)
        .max(4);
    s.say(7, "summary", &format!("cluster {}", fleet.cluster));
    eprintln!("{:width$}  {:13}  {:9}  LAST", "NODE", "ROLE", "STATE");
    for n in &fleet.nodes {
        let state = n.state.as_str();
        eprintln!(
            "{:width$}  {:13}  {:9}  {}",
            n.hostname,
            n.role,
            state,
            n.last_message.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
