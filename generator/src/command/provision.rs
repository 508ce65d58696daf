//! `plasmagen provision OUT (NODE… | --bootstrap | --all)`: PXE-boot machines through their
//! BMCs and install them with nixos-anywhere, never over a live node (docs/operator.md).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use plasma_operator::bmc::BmcError;
use plasma_operator::collector::FleetCollector;
use plasma_operator::journal::Journal;
use plasma_operator::progress::Progress;
use plasma_operator::provision::plan::{self, Layout, Settings};
use plasma_operator::provision::{self, Options, Outcome as NodeOutcome, Run, shell_quote};
use plasma_operator::ssh::SshConfig;
use plasma_operator::tools;

use super::Outcome;
use super::fleet::{collector_client, load_fleet, operator_layout, pick_nodes};
use crate::error::Error;

pub const HELP: &str = "\
Per node: the collector's state and an SSH look at the provisioning IP (only a NixOS installer,
VARIANT_ID=installer, is installed on), one-shot PXE boot + power on/reset through the BMC
(Redfish, IPMI, or a person: no bmc), wait for the installer, look again, nixos-anywhere
--phases kexec,disko,install, mark installed in the collector, reboot, and for LUKS nodes
`plasmagen unlock`. --bootstrap: every founding member must reach the installer before any is
installed. Progress per node on the terminal, logs in OUT/logs/<node>/, a journal for --resume.

Exit codes:
  0   every node installed (or skipped: already installed)
  1   a node failed (the summary names the step and the command to resume)
  2   bad input: unknown node, missing secrets/tools/password, --reinstall not confirmed
  69  the collector or a BMC unreachable in the preflight (nothing was powered)";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output directory of `plasmagen generate` (its flake/ holds the inventory copy).
    pub out: PathBuf,
    /// Inventory hostnames to provision.
    pub nodes: Vec<String>,
    /// The founding Raft members (cluster.bootstrap), together, through a barrier.
    #[arg(long, conflicts_with_all = ["nodes", "all"])]
    pub bootstrap: bool,
    /// Every node: the founding members first (barrier), then the others.
    #[arg(long, conflicts_with = "nodes")]
    pub all: bool,
    /// Secrets directory (default <OUT>/secrets).
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// SSH private key for the probe, nixos-anywhere and the reboot (same for all).
    #[arg(short = 'i', long, value_name = "IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Collector URL (default: the inventory's collector_url).
    #[arg(long)]
    pub collector: Option<String>,
    /// Install over nodes that are installed (collector) or answer as a system; asks first.
    #[arg(long)]
    pub reinstall: bool,
    /// Do not ask (for --reinstall).
    #[arg(long)]
    pub yes: bool,
    /// Skip the steps OUT/logs/provision-state.json records as done.
    #[arg(long)]
    pub resume: bool,
    /// Nodes installed at once after the founding members.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_parallel: usize,
    /// How long to wait for a node's installer (seconds).
    #[arg(long, default_value_t = 900, value_name = "SECS")]
    pub installer_timeout: u64,
    /// Between two looks at a booting node (seconds).
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub poll_interval: u64,
    /// Keep the flake's facter.json instead of writing a new one from the machine.
    #[arg(long)]
    pub no_hardware_report: bool,
    /// Print every command and request; run nothing, power nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Arguments appended to nixos-anywhere's.
    #[arg(last = true, value_name = "NIXOS-ANYWHERE-ARGS")]
    pub extra: Vec<String>,
}

pub fn run(args: &Args) -> Result<Outcome, Error> {
    let layout = operator_layout(&args.out, args.secrets.as_deref())?;
    let loaded = load_fleet(&layout.flake)?;
    let inv = &loaded.inventory;
    let nodes = pick_nodes(inv, &args.nodes, args.bootstrap, args.all)?;
    let manual_out = || -> Box<dyn Write + Send> { Box::new(std::io::stderr()) };
    let settings = Settings {
        extra_args: &args.extra,
        hardware_report: !args.no_hardware_report,
        manual_out: &manual_out,
    };
    let targets = plan::targets(inv, &layout, &nodes, &settings)
        .map_err(|problems| Error::Usage(problems.join("\n")))?;
    let ssh = SshConfig {
        identity: args.identity.clone(),
        ..SshConfig::default()
    };
    if let Some(id) = &args.identity
        && !id.is_file()
    {
        return Err(Error::Usage(format!("-i {}: no such file", id.display())));
    }
    let url = args
        .collector
        .clone()
        .unwrap_or_else(|| inv.cluster.collector_url.clone());
    let client = collector_client(&url, &layout.secrets)?;
    let collector = FleetCollector::new(client).map_err(Error::Internal)?;
    let journal = Journal::open(&layout.logs, false).map_err(Error::Usage)?;
    let names: Vec<String> = targets.iter().map(|t| t.hostname.clone()).collect();

    if args.dry_run {
        let progress = Progress::new(&[], &layout.logs, "provision.log", Some(false))
            .map_err(Error::io_at(&layout.logs))?;
        let run = runner(args, &ssh, &layout, &collector, &progress, &journal);
        for t in &targets {
            for line in provision::dry_run(&run, t, &url) {
                println!("{line}");
            }
        }
        return Ok(Outcome::Ok);
    }

    preflight(&targets, &collector)?;
    if args.reinstall && !args.yes {
        confirm(&names)?;
    }
    let progress = Progress::new(&names, &layout.logs, "provision.log", None)
        .map_err(Error::io_at(&layout.logs))?;
    let run = runner(args, &ssh, &layout, &collector, &progress, &journal);
    let unlock = |t: &provision::Target, _: &Progress| unlock_node(args, &t.hostname);
    let run = Run {
        unlock: Some(&unlock),
        ..run
    };
    let results = run.provision(&targets);
    drop(progress);
    Ok(summary(args, &layout, &results))
}

fn runner<'a>(
    args: &Args,
    ssh: &SshConfig,
    layout: &Layout,
    collector: &'a FleetCollector,
    progress: &'a Progress,
    journal: &'a Journal,
) -> Run<'a> {
    Run {
        ssh: ssh.clone(),
        log_dir: layout.logs.clone(),
        collector,
        progress,
        journal,
        options: Options {
            reinstall: args.reinstall,
            resume: args.resume,
            max_parallel: args.max_parallel,
            poll: Duration::from_secs(args.poll_interval.max(1)),
            installer_timeout: Duration::from_secs(args.installer_timeout),
        },
        unlock: None,
    }
}

/// Tools, the collector and every BMC, before anything is powered: all problems at once.
fn preflight(targets: &[provision::Target], collector: &FleetCollector) -> Result<(), Error> {
    let mut needed = vec![tools::SSH, tools::NIXOS_ANYWHERE];
    if targets.iter().any(|t| t.needs_ipmitool) {
        needed.push(tools::IPMITOOL);
    }
    let mut input = tools::missing(&needed);
    let mut unreachable = Vec::new();
    if let Err(e) = collector.reachable() {
        unreachable.push(format!("collector: {e}"));
    }
    for t in targets {
        match t.bmc.power_state() {
            Ok(_) => {}
            Err(e @ (BmcError::Unreachable { .. } | BmcError::Protocol { .. })) => {
                unreachable.push(format!("{}: {e}", t.hostname));
            }
            Err(e) => input.push(format!("{}: {e}", t.hostname)),
        }
    }
    let lines: Vec<String> = input.iter().chain(&unreachable).cloned().collect();
    if lines.is_empty() {
        return Ok(());
    }
    let text = format!(
        "preflight failed, nothing was powered:\n  {}",
        lines.join("\n  ")
    );
    Err(if input.is_empty() {
        Error::Unavailable(text)
    } else {
        Error::Usage(text)
    })
}

/// --reinstall wipes disks: the operator types the node names (from a terminal only).
fn confirm(names: &[String]) -> Result<(), Error> {
    let expected = names.join(" ");
    super::fleet::confirm(
        &format!(
            "--reinstall: the disks of {expected} will be ERASED if they answer as installed systems.\n\
             Type the node names to confirm ({expected}): "
        ),
        names,
        "--reinstall erases the nodes' disks: confirm on a terminal or pass --yes",
    )
}

fn unlock_node(args: &Args, node: &str) -> Result<(), String> {
    let unlock = super::unlock::Args {
        out: args.out.clone(),
        node: node.to_string(),
        secrets: args.secrets.clone(),
        identity: args.identity.clone(),
        wait: Some(args.installer_timeout),
        dry_run: false,
    };
    super::unlock::run(&unlock)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn summary(args: &Args, layout: &Layout, results: &[(String, NodeOutcome)]) -> Outcome {
    let width = results
        .iter()
        .map(|(h, _)| h.len())
        .max()
        .unwrap_or(4)
        .max(4);
    eprintln!("\n{:width$}  {:8}  DETAIL", "NODE", "RESULT");
    let mut failed = Vec::new();
    for (h, outcome) in results {
        let (result, detail) = match outcome {
            NodeOutcome::Done => ("ok", "installed".to_string()),
            NodeOutcome::Skipped(why) => ("skipped", why.clone()),
            NodeOutcome::Failed { step, reason } => {
                failed.push(h.clone());
                ("FAILED", format!("{step}: {reason}"))
            }
        };
        eprintln!("{h:width$}  {result:8}  {detail}");
    }
    eprintln!("logs: {}/<node>/", layout.logs.display());
    if failed.is_empty() {
        return Outcome::Ok;
    }
    let mut resume = vec![
        "plasmagen".to_string(),
        "provision".into(),
        shell_quote(&args.out.display().to_string()),
    ];
    if let Some(s) = &args.secrets {
        resume.push(format!(
            "--secrets {}",
            shell_quote(&s.display().to_string())
        ));
    }
    if let Some(i) = &args.identity {
        resume.push(format!("-i {}", shell_quote(&i.display().to_string())));
    }
    resume.push("--resume".into());
    resume.extend(failed);
    eprintln!("resume with: {}", resume.join(" "));
    Outcome::Failed
}
