//! The `plasmagen` command line: one file per subcommand.

pub mod certs;
pub mod check;
pub mod collector;
pub mod decommission;
pub mod discovered;
pub mod enlist;
pub(crate) mod fleet;
pub mod generate;
pub mod lab;
pub mod mark_installed;
pub mod provision;
pub mod reprovision;
pub mod rollout;
pub mod status;
pub mod unlock;
pub mod up;
pub mod verify;

use clap::{Parser, Subcommand};

use crate::error::Error;

const EXIT_CODES: &str = "\
Exit codes:
  0   success (dry-run: nothing would change)
  1   dry-run: changes pending; provision/rollout/verify/decommission: a node or check failed
  2   invalid input (inventory, arguments, refused layout, unreadable CA); nothing was written
  69  unreachable or failing: the collector (status, mark-installed, reprovision, discovered,
      provision), a BMC (provision's preflight), a node's initrd (unlock), the cluster (decommission)
  70  internal error (a bug: please report it)
  74  I/O error writing the output";

#[derive(Debug, Parser)]
#[command(
    name = "plasmagen",
    version,
    about = "Render a PlasmaCloud fleet (NixOS flake, PKI, PXE/DNS/firewall, scripts) from one inventory",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Log more (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render <OUT>/flake and the secrets directory from an inventory.
    #[command(after_help = EXIT_CODES)]
    Generate(generate::Args),
    /// Validate an inventory and report every problem at once.
    #[command(after_help = EXIT_CODES)]
    Check(check::Args),
    /// Inspect (`list`) and rotate (`rotate`) the cluster PKI.
    #[command(after_help = EXIT_CODES)]
    Certs(certs::Args),
    /// Run the progress collector: mTLS report API, live dashboard, boot listener.
    #[command(after_help = EXIT_CODES)]
    Collector(collector::Args),
    /// Show the fleet as the collector sees it; --wait until every node joined.
    #[command(
        after_help = "Exit codes:\n  0   success (--wait: every node joined its Raft services)\n  1   --wait: a node failed or the timeout passed\n  2   bad arguments, unreadable TLS files, or the collector refused the request (4xx)\n  69  the collector could not be reached or failed (5xx)"
    )]
    Status(status::Args),
    /// Operator: record that a node is installed (its next PXE boot boots the local disk).
    MarkInstalled(mark_installed::Args),
    /// Operator: clear a node's installed state so its next PXE boot reinstalls it.
    Reprovision(reprovision::Args),
    /// Operator: discovered machines whose MAC is in no inventory node, as `[[nodes]]` entries.
    Discovered(discovered::Args),
    /// Operator: discovered machines become inventory entries (allocated, validated, in place).
    #[command(after_help = enlist::HELP)]
    Enlist(enlist::Args),
    /// Operator: PXE-boot nodes through their BMCs and install them (never over a live node).
    #[command(after_help = provision::HELP)]
    Provision(provision::Args),
    /// Operator: roll the flake's configuration onto running nodes, never below quorum.
    #[command(after_help = rollout::HELP)]
    Rollout(rollout::Args),
    /// Operator: take a node out of the Raft groups and power it off.
    #[command(after_help = decommission::HELP)]
    Decommission(decommission::Args),
    /// Operator: check the running fleet against the inventory (Raft, IAM, SSH host keys).
    #[command(after_help = verify::HELP)]
    Verify(verify::Args),
    /// Operator: the runbook in one command: generate, enlist, provision, wait until joined.
    #[command(after_help = up::HELP)]
    Up(up::Args),
    /// Rehearse the runbook on this machine: the generated network, servers and QEMU machines
    /// behind emulated BMCs, in a network namespace (`up`, `down`, `status`).
    #[command(after_help = lab::HELP)]
    Lab(lab::Args),
    /// Operator: send a luks-lvm node's passphrase to its initrd SSH prompt (host key pinned).
    #[command(after_help = unlock::HELP)]
    Unlock(unlock::Args),
}

/// What a successful command asks `main` to exit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    ChangesPending,
    /// An operator command finished, but some node failed (exit 1).
    Failed,
}

pub fn run(cli: Cli) -> Result<Outcome, Error> {
    match cli.command {
        Command::Generate(args) => generate::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Collector(args) => collector::run(&args),
        Command::Status(args) => status::run(&args),
        Command::MarkInstalled(args) => mark_installed::run(&args),
        Command::Reprovision(args) => reprovision::run(&args),
        Command::Discovered(args) => discovered::run(&args),
        Command::Certs(args) => certs::run(&args),
        Command::Unlock(args) => unlock::run(&args),
        Command::Provision(args) => provision::run(&args),
        Command::Enlist(args) => enlist::run(&args),
        Command::Rollout(args) => rollout::run(&args),
        Command::Decommission(args) => decommission::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Lab(args) => lab::run(&args),
        Command::Up(args) => up::run(&args),
    }
}

/// Print warnings to stderr (they never fail a command).
pub(crate) fn print_warnings(warnings: &[crate::diag::Diagnostic]) {
    for w in warnings {
        eprintln!("{w}");
    }
}
