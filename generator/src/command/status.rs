//! `plasmagen status --collector URL [--json|--all] [--wait --timeout 30m]`: the fleet as the
//! collector sees it; `--wait` replaces runbook 6.2's verify loop. Above
//! [`summary::FULL_TABLE_MAX`] nodes the human output is a summary (counts, the nodes that need
//! attention); `--all` prints every row anyway and `--json` is always complete.

mod summary;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Outcome;
use super::collector::parse_duration;
use crate::collector::client::{ClientError, ClientTls, OperatorClient};
use crate::collector::fleet::NodeState;
use crate::collector::view::{FleetView, NodeView};
use crate::error::Error;

/// TLS options shared by the operator commands.
#[derive(Debug, Clone, clap::Args)]
pub struct CollectorArgs {
    /// Collector URL, e.g. https://10.0.100.10:8443.
    #[arg(long)]
    pub collector: String,
    /// Generated secrets directory: ca/ca-cert.pem and operator/operator-{cert,key}.pem.
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// CA to verify the collector against (default <SECRETS>/ca/ca-cert.pem).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Operator client certificate (default <SECRETS>/operator/operator-cert.pem).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Operator client key (default <SECRETS>/operator/operator-key.pem).
    #[arg(long)]
    pub key: Option<PathBuf>,
}

impl CollectorArgs {
    pub fn client(&self) -> Result<OperatorClient, Error> {
        OperatorClient::new(
            &self.collector,
            &ClientTls {
                secrets: self.secrets.clone(),
                ca: self.ca.clone(),
                cert: self.cert.clone(),
                key: self.key.clone(),
            },
        )
        .map_err(client_err)
    }
}

/// Run one operator command's requests: they are sequential, so one thread is enough.
pub fn block_on<F: Future>(f: F) -> Result<F::Output, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    Ok(rt.block_on(f))
}

/// Arguments of the per-node operator actions (`mark-installed`, `reprovision`).
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// Inventory hostname of the node.
    pub node: String,
    #[command(flatten)]
    pub conn: CollectorArgs,
}

/// Post `action` (`installed` or `reprovision`) for the node and print its new state.
pub fn node_action(args: &NodeArgs, action: &str) -> Result<Outcome, Error> {
    let client = args.conn.client()?;
    let node = block_on(client.node_action(&args.node, action))?.map_err(client_err)?;
    println!(
        "{}: installed={} ({})",
        node.hostname,
        node.installed,
        node.last_message.as_deref().unwrap_or("")
    );
    Ok(Outcome::Ok)
}

pub fn client_err(e: ClientError) -> Error {
    match e {
        // Bad flags or unreadable TLS files are the caller's to fix (exit 2).
        ClientError::Config(_) => Error::Usage(e.to_string()),
        // Refused for what we sent (wrong certificate, unknown node): also the caller's (exit 2).
        ClientError::Http { status, .. } if (400..500).contains(&status) => {
            Error::Usage(e.to_string())
        }
        // Unreachable or failing collector: exit 69, so scripts can tell it from bad input.
        ClientError::Transport { .. } | ClientError::Http { .. } => {
            Error::Unavailable(e.to_string())
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub conn: CollectorArgs,
    /// Print the collector's fleet document as JSON (every node, whatever the fleet's size).
    #[arg(long)]
    pub json: bool,
    /// One row per node even for a large fleet (above 50 nodes the default is a summary: counts
    /// per state and phase, then only the failed and stuck nodes).
    #[arg(long)]
    pub all: bool,
    /// Wait until every node joined all its Raft services; exit 1 when a node fails or on timeout.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (e.g. 30m, 90s).
    #[arg(long, default_value = "30m", value_parser = parse_duration, requires = "wait")]
    pub timeout: Duration,
    /// With --wait: how often to ask the collector.
    #[arg(long, default_value = "2s", value_parser = parse_duration, requires = "wait")]
    pub interval: Duration,
}

pub fn run(args: &Args) -> Result<Outcome, Error> {
    let client = args.conn.client()?;
    block_on(async {
        if !args.wait {
            let fleet = client.fleet().await.map_err(client_err)?;
            print_fleet(&fleet, args)?;
            return Ok(Outcome::Ok);
        }
        wait(&client, args).await
    })?
}

fn print_fleet(fleet: &FleetView, args: &Args) -> Result<(), Error> {
    if args.json {
        let text =
            serde_json::to_string_pretty(fleet).map_err(|e| Error::Internal(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", human(fleet, args.all));
    }
    Ok(())
}

/// What a person reads: the whole table for a small fleet (or with `--all`), else a summary
/// that stays a screenful however many nodes there are.
pub fn human(fleet: &FleetView, all: bool) -> String {
    if all || fleet.nodes.len() <= summary::FULL_TABLE_MAX {
        table(fleet)
    } else {
        summary::summary(fleet)
    }
}

/// The human table: one row per node, one column per Raft service.
pub fn table(fleet: &FleetView) -> String {
    let nodes: Vec<&NodeView> = fleet.nodes.iter().collect();
    let mut out = node_rows(&nodes, usize::MAX);
    out.push_str(&counts_line(fleet));
    out.push_str(&unknown_line(fleet));
    out
}

/// Header and one aligned row per node; last messages cut to `message_max` characters.
fn node_rows(nodes: &[&NodeView], message_max: usize) -> String {
    let mut rows = vec![vec![
        "NODE".to_string(),
        "ROLE".into(),
        "STATE".into(),
        "CHAINFIRE".into(),
        "FLAREDB".into(),
        "IN PHASE".into(),
        "LAST MESSAGE".into(),
    ]];
    for n in nodes {
        let phase = |svc: &str| {
            n.services
                .iter()
                .find(|s| s.service == svc)
                .map(|s| s.phase.clone())
                .unwrap_or_else(|| {
                    if n.raft_services.iter().any(|r| r == svc) {
                        "-".into()
                    } else {
                        "n/a".into()
                    }
                })
        };
        rows.push(vec![
            n.hostname.clone(),
            n.role.clone(),
            n.state.as_str().to_string(),
            phase("chainfire"),
            phase("flaredb"),
            n.time_in_phase_secs
                .map(human_secs)
                .unwrap_or_else(|| "-".into()),
            cut(n.last_message.as_deref().unwrap_or_default(), message_max),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == r.len() {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `s` cut to `max` characters, marked with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

/// The state counts, one line (scripts read it: keep its shape).
fn counts_line(fleet: &FleetView) -> String {
    let s = &fleet.summary;
    format!(
        "{} nodes: {} joined, {} in progress, {} stuck, {} failed, {} pending\n",
        s.total,
        s.joined,
        s.in_progress,
        s.stuck,
        s.failed,
        s.pending + s.installed
    )
}

fn unknown_line(fleet: &FleetView) -> String {
    let unknown = fleet
        .unknown_discovered_total
        .max(fleet.unknown_discovered.len() as u64);
    if unknown > 0 {
        format!(
            "{unknown} discovered MAC(s) match no inventory node (plasmagen discovered lists them)\n"
        )
    } else {
        String::new()
    }
}

fn human_secs(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Progress line on stderr: redrawn in place on a terminal, one line per change otherwise.
struct Progress {
    tty: bool,
    last: String,
}

impl Progress {
    fn show(&mut self, fleet: &FleetView, elapsed: Duration) {
        let s = &fleet.summary;
        let width = 30usize;
        let done = if s.total == 0 {
            width
        } else {
            (s.joined as usize * width) / s.total as usize
        };
        let bar = format!("[{}{}]", "#".repeat(done), "-".repeat(width - done));
        let line = format!(
            "{bar} {}/{} joined, {} in progress, {} stuck, {} failed",
            s.joined, s.total, s.in_progress, s.stuck, s.failed
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line} ({})", human_secs(elapsed.as_secs()));
            let _ = err.flush();
        } else if line != self.last {
            let _ = writeln!(err, "{line}");
        }
        self.last = line;
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

async fn wait(client: &OperatorClient, args: &Args) -> Result<Outcome, Error> {
    let start = Instant::now();
    let mut progress = Progress {
        tty: std::io::stderr().is_terminal(),
        last: String::new(),
    };
    let mut last_fleet: Option<FleetView> = None;
    loop {
        match client.fleet().await {
            Ok(fleet) => {
                progress.show(&fleet, start.elapsed());
                let failed: Vec<&str> = fleet
                    .nodes
                    .iter()
                    .filter(|n| n.state == NodeState::Failed)
                    .map(|n| n.hostname.as_str())
                    .collect();
                let all_joined = fleet.nodes.iter().all(|n| n.state == NodeState::Joined);
                if !failed.is_empty() || all_joined {
                    progress.finish();
                    print_fleet(&fleet, args)?;
                    if all_joined {
                        eprintln!("every node joined its Raft services");
                        return Ok(Outcome::Ok);
                    }
                    eprintln!("failed: {}", summary::some_names(&failed));
                    return Ok(Outcome::ChangesPending);
                }
                last_fleet = Some(fleet);
            }
            // A restarting collector is not a reason to stop waiting; a refused identity is.
            Err(ClientError::Transport { message, .. }) => {
                tracing::warn!(error = %message, "collector unreachable; retrying");
            }
            Err(e) => {
                progress.finish();
                return Err(client_err(e));
            }
        }
        if start.elapsed() >= args.timeout {
            progress.finish();
            if let Some(f) = &last_fleet {
                print_fleet(f, args)?;
            }
            eprintln!(
                "timed out after {} waiting for every node to join",
                human_secs(args.timeout.as_secs())
            );
            return Ok(Outcome::ChangesPending);
        }
        let left = args.timeout.saturating_sub(start.elapsed());
        tokio::time::sleep(args.interval.min(left)).await;
    }
}
