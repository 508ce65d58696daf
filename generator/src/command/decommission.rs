//! `plasmagen decommission OUT NODE`: out of every Raft group at the leader, then powered off,
//! after a look at what the node is now and a confirmation (runbook 7.6).

use std::io::Write;
use std::path::PathBuf;

use plasma_operator::bmc::PowerState;
use plasma_operator::cluster::AdminClient;
use plasma_operator::decommission::{self, Membership};
use plasma_operator::fleet::{cluster_node, cluster_nodes};
use plasma_operator::provision::plan::{self, Settings};

use super::Outcome;
use super::fleet::{load_fleet, operator_layout, pick_nodes};
use crate::error::Error;

pub const HELP: &str = "\
Shows the node's Chainfire/FlareDB membership (asked of the other members) and its power
state, refuses when a group would be left without a healthy majority or the node is a founding
member (--force), asks for the node's name (--yes skips), then DELETE /admin/member/NODE at
FlareDB's and Chainfire's leader, reads the membership back, and powers the machine off
through its BMC (--no-power-off keeps it running). Drain the node first (runbook 7.5).

Exit codes:
  0   out of every group (and off)
  1   a removal or the power-off failed, or the cluster would lose quorum
  2   bad input, a founding member without --force, not confirmed";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output directory of `plasmagen generate`.
    pub out: PathBuf,
    /// The node to take out.
    pub node: String,
    /// Secrets directory (default <OUT>/secrets).
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// Do not ask.
    #[arg(long)]
    pub yes: bool,
    /// Also a founding member, or below quorum.
    #[arg(long)]
    pub force: bool,
    /// Leave the machine running.
    #[arg(long)]
    pub no_power_off: bool,
    /// Print the requests; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &Args) -> Result<Outcome, Error> {
    let layout = operator_layout(&args.out, args.secrets.as_deref())?;
    let loaded = load_fleet(&layout.flake)?;
    let inv = &loaded.inventory;
    let node = pick_nodes(inv, std::slice::from_ref(&args.node), false, false)?[0];
    let h = node.hostname.clone();
    if inv.is_bootstrap(node) && !args.force {
        return Err(Error::Usage(format!(
            "{h} is a founding member (cluster.bootstrap): the others' initial peers name it. \
             Move cluster.bootstrap and re-generate first, or pass --force"
        )));
    }
    let fleet = cluster_nodes(inv);
    let target = cluster_node(inv, node);
    let client = AdminClient::new(&layout.secrets).map_err(Error::Usage)?;
    let manual_out = || -> Box<dyn Write + Send> { Box::new(std::io::stderr()) };
    let settings = Settings {
        extra_args: &[],
        hardware_report: false,
        manual_out: &manual_out,
    };
    let bmc = if args.no_power_off {
        None
    } else {
        let targets = plan::targets(inv, &layout, &[node], &settings)
            .map_err(|p| Error::Usage(p.join("\n")))?;
        targets.into_iter().next().map(|t| t.bmc)
    };

    if args.dry_run {
        for svc in target.raft.iter().rev() {
            println!("GET https://<a member>:{}/admin/cluster/members", svc.port);
            println!(
                "DELETE https://<{} leader>:{}/admin/member/{h}",
                svc.name, svc.port
            );
        }
        if let Some(bmc) = &bmc {
            for line in bmc.plan(plasma_operator::bmc::Action::PowerState) {
                println!("{line}");
            }
            for line in bmc.plan(plasma_operator::bmc::Action::PowerOff) {
                println!("{line}");
            }
        }
        return Ok(Outcome::Ok);
    }

    let memberships =
        decommission::memberships(&client, &fleet, &target).map_err(Error::Unavailable)?;
    let power = bmc.as_ref().map(|b| (b.describe(), b.power_state()));
    describe(&h, &memberships, power.as_ref());
    let below: Vec<&Membership> = memberships
        .iter()
        .filter(|m| m.member.is_some() && !m.keeps_quorum())
        .collect();
    if !below.is_empty() && !args.force {
        for m in below {
            eprintln!(
                "decommission: without {h}, {} would have {} healthy of {} members: no quorum. \
                 Repair the group first (or --force)",
                m.service.name, m.after.0, m.after.1
            );
        }
        return Ok(Outcome::Failed);
    }
    if !args.yes {
        confirm(&h)?;
    }
    let mut failed = false;
    for m in memberships.iter().filter(|m| m.member.is_some()) {
        match decommission::remove(&client, &fleet, &target, m) {
            Ok(()) => eprintln!("decommission: {h} removed from {}", m.service.name),
            Err(e) => {
                eprintln!("decommission: {}: {e}", m.service.name);
                failed = true;
            }
        }
    }
    if failed {
        eprintln!("decommission: {h} was not powered off (a removal failed)");
        return Ok(Outcome::Failed);
    }
    if let Some(bmc) = &bmc {
        match bmc.power_state() {
            Ok(PowerState::Off) => eprintln!("decommission: {h} is already off"),
            _ => match bmc.power_off() {
                Ok(()) => eprintln!("decommission: {h} powered off through {}", bmc.describe()),
                Err(e) => {
                    eprintln!("decommission: power off: {e}");
                    return Ok(Outcome::Failed);
                }
            },
        }
    }
    eprintln!(
        "decommission: left to do: remove {h} from the inventory, `plasmagen generate` (DNS, \
         DHCP, firewall lose it), deploy the PXE server's configuration, `plasmagen verify`"
    );
    Ok(Outcome::Ok)
}

fn describe(
    h: &str,
    memberships: &[Membership],
    power: Option<&(String, Result<PowerState, plasma_operator::bmc::BmcError>)>,
) {
    for m in memberships {
        match &m.member {
            Some(x) => eprintln!(
                "{h}: {} member ({}, {}); leader {}",
                m.service.name,
                x.status,
                x.role,
                m.leader.as_deref().unwrap_or("none")
            ),
            None => eprintln!("{h}: not a {} member", m.service.name),
        }
    }
    match power {
        Some((bmc, Ok(state))) => eprintln!("{h}: power {state:?} ({bmc})"),
        Some((bmc, Err(e))) => eprintln!("{h}: power unknown ({bmc}: {e})"),
        None => {}
    }
}

fn confirm(h: &str) -> Result<(), Error> {
    super::fleet::confirm(
        &format!("Type {h} to take it out of the cluster and power it off: "),
        &[h.to_string()],
        &format!("decommissioning {h} needs a confirmation: run it on a terminal or pass --yes"),
    )
}
