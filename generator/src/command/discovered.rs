//! `plasmagen discovered --collector URL [--format toml|json]`: machines that netbooted the
//! discovery image and reported a MAC no inventory node has, as `[[nodes]]` entries to paste
//! into the inventory. Hostname, role and IPs cannot be discovered: they are placeholders
//! marked TODO, which `plasmagen check` refuses until someone fills them in.
//!
//! `--prune [--mac MAC]... [--yes]` forgets discovered machines instead (all unknown ones, or
//! those listed) after showing them and asking; an inventory node's MAC is never pruned.

use std::fmt::Write as _;

use plasma_inventory::enlist::choose::stable_path;
use plasma_inventory::inventory::Mac;
use serde::Serialize;

use super::Outcome;
use super::status::{CollectorArgs, block_on, client_err};
use crate::collector::client::{ClientError, OperatorClient};
use crate::collector::view::{DiscoveredSummary, DiscoveredView};
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `[[nodes]]` tables with TODO comments, for the inventory file.
    Toml,
    /// One object per machine, for scripts.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub conn: CollectorArgs,
    #[arg(long, value_enum, default_value_t = Format::Toml)]
    pub format: Format,
    /// Forget discovered machines no inventory node has (all, or those given with --mac).
    #[arg(long)]
    pub prune: bool,
    /// With --prune: only this machine (repeat for more).
    #[arg(long = "mac", value_name = "MAC", requires = "prune")]
    pub macs: Vec<String>,
    /// With --prune: do not ask.
    #[arg(long, requires = "prune")]
    pub yes: bool,
}

pub fn run(args: &Args) -> Result<Outcome, Error> {
    let client = args.conn.client()?;
    if args.prune {
        return prune(args, &client);
    }
    let views = block_on(unknown_machines(&client))??;
    let text = match args.format {
        Format::Toml => render_toml(&views, client.base()),
        Format::Json => render_json(&views)?,
    };
    print!("{text}");
    if views.is_empty() {
        eprintln!("no discovered machine is missing from the inventory");
    }
    Ok(Outcome::Ok)
}

/// Every discovered machine no inventory node has, with its facts: the fleet list holds
/// summaries, each machine's facts are one more request. A machine dropped between the two
/// (evicted, enlisted) is left out.
pub async fn unknown_machines(client: &OperatorClient) -> Result<Vec<DiscoveredView>, Error> {
    let unknown = client.unknown_discovered().await.map_err(client_err)?;
    let mut views = Vec::with_capacity(unknown.len());
    for d in &unknown {
        match client.discovered(&d.mac).await {
            Ok(v) => views.push(v),
            Err(ClientError::Http { status: 404, .. }) => {}
            Err(e) => return Err(client_err(e)),
        }
    }
    Ok(views)
}

/// MACs per prune request: well under the collector's 64 KiB body limit.
const PRUNE_CHUNK: usize = 1_000;

/// Machines listed before the question, at most.
const SHOWN: usize = 20;

fn prune(args: &Args, client: &OperatorClient) -> Result<Outcome, Error> {
    let unknown = block_on(client.unknown_discovered())?.map_err(client_err)?;
    let chosen: Vec<&DiscoveredSummary> = if args.macs.is_empty() {
        unknown.iter().collect()
    } else {
        let mut chosen = Vec::new();
        for given in &args.macs {
            let mac = Mac::parse_any_separator(given)
                .map_err(|e| Error::Usage(format!("--mac {given:?}: {e}")))?;
            let d = unknown
                .iter()
                .find(|d| d.mac == mac.as_str())
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--mac {given}: the collector at {} holds no discovery report for it \
                         from a machine outside the inventory; nothing was pruned",
                        client.base()
                    ))
                })?;
            if !chosen.iter().any(|c: &&DiscoveredSummary| c.mac == d.mac) {
                chosen.push(d);
            }
        }
        chosen
    };
    if chosen.is_empty() {
        eprintln!(
            "discovered: no discovered machine is missing from the inventory; nothing to prune"
        );
        return Ok(Outcome::Ok);
    }
    let n = chosen.len();
    eprintln!(
        "discovered: {n} machine(s) will be forgotten (a machine that reports again reappears):"
    );
    for d in chosen.iter().take(SHOWN) {
        eprintln!(
            "  {}  last seen {}  {} report(s){}",
            d.mac,
            d.last_seen,
            d.count,
            d.remote
                .as_deref()
                .map(|r| format!(" from {}", comment_safe(r)))
                .unwrap_or_default()
        );
    }
    if n > SHOWN {
        eprintln!("  ... and {} more", n - SHOWN);
    }
    if !args.yes {
        super::fleet::confirm(
            &format!("Type prune {n} to forget them: "),
            &["prune".to_string(), n.to_string()],
            "pruning discovered machines needs a confirmation: run it on a terminal or pass --yes",
        )?;
    }
    let macs: Vec<String> = chosen.iter().map(|d| d.mac.clone()).collect();
    let (mut pruned, mut gone, mut enlisted) = (0, 0, Vec::new());
    for chunk in macs.chunks(PRUNE_CHUNK) {
        let answer = block_on(client.prune_discovered(chunk))?.map_err(client_err)?;
        pruned += answer.pruned.len();
        gone += answer.not_found.len();
        enlisted.extend(answer.kept_inventory);
    }
    println!("pruned {pruned} discovered machine(s)");
    if gone > 0 {
        eprintln!("discovered: {gone} were gone already (evicted or pruned meanwhile)");
    }
    for mac in enlisted {
        eprintln!("discovered: {mac} kept: it is an inventory node's MAC now");
    }
    Ok(Outcome::Ok)
}

/// An inventory entry proposed for one discovered machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proposal {
    /// Placeholder derived from the MAC (`node-525400abcdef`).
    pub hostname: String,
    pub mac: String,
    /// One stable path per disk: `/dev/disk/by-id/...`, or `/dev/<name>` when the machine
    /// reported no by-id name for it (see `unstable_disks`).
    pub disks: Vec<String>,
    /// Disks listed by kernel name because they have no by-id name.
    pub unstable_disks: Vec<String>,
    pub disk_layout: &'static str,
    /// Fields the operator must fill in before the entry is valid.
    pub todo: Vec<&'static str>,
    pub first_seen: String,
    pub last_seen: String,
    pub reports: u64,
    pub remote: Option<String>,
    pub memory_bytes: u64,
    pub cpu_model: String,
    pub logical_cpus: u32,
    pub nics: Vec<String>,
}

const TODO_FIELDS: [&str; 4] = ["hostname", "role", "provisioning_ip", "production_ip"];

pub fn proposal(d: &DiscoveredView) -> Proposal {
    let mut disks = Vec::new();
    let mut unstable = Vec::new();
    for disk in &d.facts.disks {
        match stable_path(disk) {
            Some(p) => disks.push(p),
            None => {
                let p = format!("/dev/{}", disk.name);
                unstable.push(p.clone());
                disks.push(p);
            }
        }
    }
    let disk_layout = if disks.len() == 2 { "raid1" } else { "single" };
    Proposal {
        hostname: format!("node-{}", d.mac.replace([':', '-'], "")),
        mac: d.mac.clone(),
        disks,
        unstable_disks: unstable,
        disk_layout,
        todo: TODO_FIELDS.to_vec(),
        first_seen: d.first_seen.clone(),
        last_seen: d.last_seen.clone(),
        reports: d.count,
        remote: d.remote.clone(),
        memory_bytes: d.facts.memory_bytes,
        cpu_model: d.facts.cpu.model.clone(),
        logical_cpus: d.facts.cpu.logical_cpus,
        nics: d
            .facts
            .nics
            .iter()
            .map(|n| format!("{} {}", n.name, n.mac))
            .collect(),
    }
}

pub fn render_json(views: &[DiscoveredView]) -> Result<String, Error> {
    let all: Vec<Proposal> = views.iter().map(proposal).collect();
    let mut text =
        serde_json::to_string_pretty(&all).map_err(|e| Error::Internal(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// A TOML basic string (quotes and escapes).
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Comments may hold anything the machine reported: keep them on one line.
fn comment_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub fn render_toml(views: &[DiscoveredView], collector: &str) -> String {
    let mut out = String::new();
    let n = views.len();
    let _ = writeln!(
        out,
        "# {n} machine(s) reported to the collector at {} with a MAC no inventory node has.",
        comment_safe(collector)
    );
    if n > 0 {
        out.push_str(
            "# Fill in every TODO (plasmagen check refuses the placeholders), then add the entries\n\
             # to the inventory. Facts are as the machine reported them (unauthenticated).\n",
        );
    }
    for d in views {
        let p = proposal(d);
        let f = &d.facts;
        out.push('\n');
        let _ = writeln!(
            out,
            "# seen {} .. {} ({} report(s){})",
            p.first_seen,
            p.last_seen,
            p.reports,
            p.remote
                .as_deref()
                .map(|r| format!(", from {}", comment_safe(r)))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "# {} x {}, {} memory",
            p.logical_cpus,
            comment_safe(&p.cpu_model),
            human_bytes(p.memory_bytes)
        );
        for nic in &f.nics {
            let _ = writeln!(
                out,
                "# nic  {} {}",
                comment_safe(&nic.name),
                comment_safe(&nic.mac)
            );
        }
        for disk in &f.disks {
            let _ = writeln!(
                out,
                "# disk {} {}{}",
                comment_safe(&disk.name),
                human_bytes(disk.size_bytes),
                disk.model
                    .as_deref()
                    .map(|m| format!(" {}", comment_safe(m)))
                    .unwrap_or_default()
            );
        }
        out.push_str("[[nodes]]\n");
        let _ = writeln!(
            out,
            "hostname = {}  # TODO: choose the hostname",
            q(&p.hostname)
        );
        out.push_str("role = \"\"  # TODO: control-plane, worker or all-in-one\n");
        let _ = writeln!(out, "mac = {}", q(&p.mac));
        out.push_str("provisioning_ip = \"\"  # TODO: a free address in the provisioning subnet\n");
        out.push_str("production_ip = \"\"  # TODO: a free address in the production subnet\n");
        let disks: Vec<String> = p.disks.iter().map(|s| q(s)).collect();
        let _ = write!(out, "disks = [{}]", disks.join(", "));
        if !p.unstable_disks.is_empty() {
            out.push_str("  # TODO: no /dev/disk/by-id name reported for some disks");
        }
        out.push('\n');
        let layout_note = match p.disks.len() {
            1 | 2 => "",
            _ => "  # TODO: keep the disk(s) the layout uses",
        };
        let _ = writeln!(out, "disk_layout = {}{layout_note}", q(p.disk_layout));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use plasma_wire::discover::{Cpu, DiscoverReport, Disk, Nic};

    fn disk(name: &str, size: u64, by_id: &[&str]) -> Disk {
        Disk {
            name: name.into(),
            size_bytes: size,
            by_id: by_id.iter().map(|s| s.to_string()).collect(),
            model: Some("QEMU \"disk\"\nx".into()),
            rotational: Some(false),
            removable: None,
        }
    }

    fn fleet(disks: Vec<Disk>) -> Vec<DiscoveredView> {
        vec![DiscoveredView {
            mac: "52:54:00:ab:cd:ef".into(),
            first_seen: "2026-01-01T00:00:00Z".into(),
            last_seen: "2026-01-01T00:01:00Z".into(),
            count: 2,
            remote: Some("10.0.100.150".into()),
            facts: DiscoverReport {
                primary_mac: "52:54:00:ab:cd:ef".into(),
                nics: vec![Nic {
                    name: "eth0".into(),
                    mac: "52:54:00:ab:cd:ef".into(),
                    speed_mbps: None,
                    carrier: Some(true),
                    driver: None,
                }],
                disks,
                memory_bytes: 512 << 20,
                cpu: Cpu {
                    model: "QEMU Virtual CPU".into(),
                    logical_cpus: 1,
                },
                hostname: None,
                firmware: None,
                bmc: None,
            },
        }]
    }

    #[test]
    fn toml_entry_parses_and_prefers_serial_names() {
        let f = fleet(vec![
            disk(
                "sda",
                1 << 30,
                &[
                    "/dev/disk/by-id/wwn-0x5000",
                    "/dev/disk/by-id/ata-QEMU_HARDDISK_S1",
                ],
            ),
            disk("sdb", 2 << 30, &[]),
        ]);
        let text = render_toml(&f, "https://c:8443");
        let doc: toml::Table = toml::from_str(&text).expect(&text);
        let nodes = doc["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 1);
        let n = nodes[0].as_table().unwrap();
        assert_eq!(n["mac"].as_str(), Some("52:54:00:ab:cd:ef"));
        assert_eq!(n["hostname"].as_str(), Some("node-525400abcdef"));
        let disks: Vec<&str> = n["disks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(disks, ["/dev/disk/by-id/ata-QEMU_HARDDISK_S1", "/dev/sdb"]);
        assert_eq!(n["disk_layout"].as_str(), Some("raid1"));
        for key in ["role", "provisioning_ip", "production_ip"] {
            assert_eq!(n[key].as_str(), Some(""), "{key}");
        }
        // Every placeholder line says TODO; the model's newline did not break out of a comment.
        assert_eq!(text.matches("# TODO").count(), 5, "{text}");
        assert!(
            text.contains("# disk sda 1.0 GiB QEMU \"disk\" x\n"),
            "{text}"
        );
    }

    #[test]
    fn json_lists_proposals() {
        let text = render_json(&fleet(vec![disk(
            "vda",
            64 << 20,
            &["/dev/disk/by-id/virtio-S"],
        )]))
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v[0]["mac"], "52:54:00:ab:cd:ef");
        assert_eq!(v[0]["disks"][0], "/dev/disk/by-id/virtio-S");
        assert_eq!(v[0]["disk_layout"], "single");
        assert_eq!(v[0]["todo"].as_array().unwrap().len(), 4);
        assert_eq!(v[0]["memory_bytes"], 512u64 << 20);
    }

    #[test]
    fn empty_fleet_is_a_comment_only() {
        let mut f = fleet(vec![]);
        f.clear();
        let text = render_toml(&f, "https://c:8443");
        assert!(toml::from_str::<toml::Table>(&text).unwrap().is_empty());
        assert_eq!(render_json(&f).unwrap(), "[]\n");
    }
}
