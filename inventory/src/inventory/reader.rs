//! Tree → model, collecting every structural problem: syntax, unknown and missing fields
//! (with did-you-mean), wrong types and malformed values.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;

use super::tree::{self, Entry, Item, Value};
use super::*;
use crate::diag::{Diagnostic, Positions, Severity, did_you_mean, line_col};

const CLUSTER_KEYS: &[&str] = &[
    "name",
    "domain",
    "bootstrap",
    "ssh_authorized_keys",
    "state_version",
    "collector_url",
    "cert_validity_days",
    "health_timeout_secs",
    "join_timeout_secs",
    "luks_unlock",
];
const CLUSTER_REQUIRED: &[&str] = &[
    "name",
    "domain",
    "bootstrap",
    "ssh_authorized_keys",
    "state_version",
    "collector_url",
];
const PROV_KEYS: &[&str] = &[
    "subnet",
    "gateway",
    "nameservers",
    "dhcp_range",
    "pxe_server",
    "interface",
];
const PROV_REQUIRED: &[&str] = &[
    "subnet",
    "gateway",
    "nameservers",
    "dhcp_range",
    "pxe_server",
];
const PROD_KEYS: &[&str] = &["subnet", "gateway", "nameservers", "vlan", "bond_mode"];
const PROD_REQUIRED: &[&str] = &["subnet", "gateway", "nameservers"];
const MGMT_KEYS: &[&str] = &["subnet"];
const TOP_KEYS: &[&str] = &[
    "cluster",
    "networks",
    "nodes",
    "vips",
    "flake",
    "allocation",
];

mod node;

pub(super) struct Reader<'a> {
    file: String,
    positions: Positions<'a>,
    pub diags: Vec<Diagnostic>,
    pub broken: BTreeSet<String>,
    pub spans: BTreeMap<String, Range<usize>>,
}

impl<'a> Reader<'a> {
    fn push(
        &mut self,
        severity: Severity,
        span: Option<&Range<usize>>,
        node: Option<&str>,
        field: &str,
        message: String,
    ) {
        let (line, column) = self.positions.of(span);
        self.diags.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line,
            column,
            node: node.map(str::to_string),
            field: field.to_string(),
            message,
        });
    }

    fn error(&mut self, span: Option<&Range<usize>>, node: Option<&str>, field: &str, msg: String) {
        self.broken.insert(field.to_string());
        self.push(Severity::Error, span, node, field, msg);
    }

    /// Check a table's keys; returns its entries when `item` is a table.
    fn table<'t>(
        &mut self,
        item: &'t Item,
        path: &str,
        node: Option<&str>,
        known: &[&str],
        required: &[&str],
    ) -> Option<&'t [Entry]> {
        let Value::Table(entries) = &item.value else {
            self.error(
                item.span.as_ref(),
                node,
                path,
                format!("expected a table, found {}", item.value.type_name()),
            );
            return None;
        };
        for e in entries {
            if !known.contains(&e.key.as_str()) {
                let field = join(path, &e.key);
                let hint = did_you_mean(&e.key, known)
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_else(|| format!("; known fields: {}", known.join(", ")));
                self.error(
                    e.key_span.as_ref(),
                    node,
                    &field,
                    format!("unknown field `{}`{hint}", e.key),
                );
            }
        }
        for r in required {
            if !entries.iter().any(|e| e.key == *r) {
                let field = join(path, r);
                self.error(
                    item.span.as_ref(),
                    node,
                    &field,
                    "missing required field".into(),
                );
            }
        }
        Some(entries)
    }

    fn record(&mut self, path: &str, item: &Item) {
        if let Some(s) = &item.span {
            self.spans.insert(path.to_string(), s.clone());
        }
    }

    fn string(&mut self, item: &Item, path: &str, node: Option<&str>) -> Option<String> {
        self.record(path, item);
        match &item.value {
            Value::String(s) => Some(s.clone()),
            other => {
                self.error(
                    item.span.as_ref(),
                    node,
                    path,
                    format!("expected a string, found {}", other.type_name()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, item: &Item, path: &str, node: Option<&str>) -> Option<bool> {
        self.record(path, item);
        match &item.value {
            Value::Bool(b) => Some(*b),
            other => {
                self.error(
                    item.span.as_ref(),
                    node,
                    path,
                    format!("expected true or false, found {}", other.type_name()),
                );
                None
            }
        }
    }

    fn integer(&mut self, item: &Item, path: &str, node: Option<&str>, max: i64) -> Option<i64> {
        self.record(path, item);
        match &item.value {
            Value::Integer(n) if (1..=max).contains(n) => Some(*n),
            Value::Integer(n) => {
                self.error(
                    item.span.as_ref(),
                    node,
                    path,
                    format!("{n} is out of range 1..={max}"),
                );
                None
            }
            other => {
                self.error(
                    item.span.as_ref(),
                    node,
                    path,
                    format!("expected an integer, found {}", other.type_name()),
                );
                None
            }
        }
    }

    /// An array whose every element `elem` reads; the whole field counts as broken if one
    /// element is.
    fn array<T>(
        &mut self,
        item: &Item,
        path: &str,
        node: Option<&str>,
        what: &str,
        mut elem: impl FnMut(&mut Self, &Item, &str, Option<&str>) -> Option<T>,
    ) -> Option<Vec<T>> {
        self.record(path, item);
        let Value::Array(items) = &item.value else {
            self.error(
                item.span.as_ref(),
                node,
                path,
                format!(
                    "expected an array of {what}, found {}",
                    item.value.type_name()
                ),
            );
            return None;
        };
        let read: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(i, it)| elem(self, it, &format!("{path}[{i}]"), node))
            .collect();
        let all: Option<Vec<T>> = read.into_iter().collect();
        if all.is_none() {
            self.broken.insert(path.to_string());
        }
        all
    }

    fn strings(&mut self, item: &Item, path: &str, node: Option<&str>) -> Option<Vec<String>> {
        self.array(item, path, node, "strings", Self::string)
    }

    fn parsed<T: FromStr<Err = String>>(
        &mut self,
        item: &Item,
        path: &str,
        node: Option<&str>,
    ) -> Option<T> {
        let s = self.string(item, path, node)?;
        match s.parse::<T>() {
            Ok(v) => Some(v),
            Err(msg) => {
                self.error(item.span.as_ref(), node, path, msg);
                None
            }
        }
    }

    fn ipv4(&mut self, item: &Item, path: &str, node: Option<&str>) -> Option<Ipv4Addr> {
        let s = self.string(item, path, node)?;
        match s.parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.error(
                    item.span.as_ref(),
                    node,
                    path,
                    format!("malformed IPv4 address {s:?}"),
                );
                None
            }
        }
    }

    fn ipv4s(&mut self, item: &Item, path: &str, node: Option<&str>) -> Option<Vec<Ipv4Addr>> {
        self.array(item, path, node, "IPv4 addresses", Self::ipv4)
    }

    /// A string that must be one of `names`, with a did-you-mean when it is not.
    fn choice<T>(
        &mut self,
        item: &Item,
        path: &str,
        node: Option<&str>,
        what: &str,
        names: &[&str],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let s = self.string(item, path, node)?;
        let value = parse(&s);
        if value.is_none() {
            let hint = did_you_mean(&s, names)
                .map(|m| format!("; did you mean {m:?}?"))
                .unwrap_or_default();
            self.error(
                item.span.as_ref(),
                node,
                path,
                format!(
                    "unknown {what} {s:?}; expected one of {}{hint}",
                    names.join(", ")
                ),
            );
        }
        value
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn get<'t>(entries: &'t [Entry], key: &str) -> Option<&'t Item> {
    entries.iter().find(|e| e.key == key).map(|e| &e.item)
}

/// Parse source text into a model. Syntax errors return early (nothing else can be read);
/// everything else is collected and the model is filled with placeholders where a value was
/// broken, so the semantic rules can still run on the rest.
pub(super) fn parse(path: &Path, text: &str) -> Result<Parsed, Vec<Diagnostic>> {
    let file = path.display().to_string();
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let root = if is_json {
        tree::parse_json(text)
    } else {
        tree::parse_toml(text)
    };
    let root = match root {
        Ok(r) => r,
        Err(e) => {
            let (line, column) = match (e.line_col, e.offset) {
                (Some((l, c)), _) => (Some(l), Some(c)),
                (None, Some(o)) => {
                    let (l, c) = line_col(text, o);
                    (Some(l), Some(c))
                }
                _ => (None, None),
            };
            return Err(vec![Diagnostic {
                severity: Severity::Error,
                file,
                line,
                column,
                node: None,
                field: "(syntax)".into(),
                message: format!(
                    "invalid {}: {}",
                    if is_json { "JSON" } else { "TOML" },
                    e.message
                ),
            }]);
        }
    };
    let mut r = Reader {
        file,
        positions: Positions::new(text),
        diags: Vec::new(),
        broken: BTreeSet::new(),
        spans: BTreeMap::new(),
    };
    let empty = Item {
        value: Value::Table(vec![]),
        span: None,
    };
    let top = r
        .table(&root, "", None, TOP_KEYS, &["cluster", "networks", "nodes"])
        .unwrap_or(&[]);

    let cluster = read_cluster(
        &mut r,
        get(top, "cluster").unwrap_or(&empty),
        top.iter().any(|e| e.key == "cluster"),
    );
    let networks_item = get(top, "networks");
    let nets = match networks_item {
        Some(item) => r
            .table(
                item,
                "networks",
                None,
                &["provisioning", "production", "management"],
                &["provisioning", "production"],
            )
            .unwrap_or(&[]),
        None => &[],
    };
    let provisioning = read_provisioning(&mut r, get(nets, "provisioning"));
    let production = read_production(&mut r, get(nets, "production"));
    let management_subnet = get(nets, "management").and_then(|m| {
        let entries = r.table(m, "networks.management", None, MGMT_KEYS, &["subnet"])?;
        let s = get(entries, "subnet")?;
        r.parsed::<Cidr>(s, "networks.management.subnet", None)
    });

    let mut nodes = Vec::new();
    match get(top, "nodes").map(|n| &n.value) {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                nodes.push(node::read_node(&mut r, item, i));
            }
        }
        Some(other) => {
            let item = get(top, "nodes").expect("present");
            r.error(
                item.span.as_ref(),
                None,
                "nodes",
                format!(
                    "expected an array of tables ([[nodes]]), found {}",
                    other.type_name()
                ),
            );
        }
        None => {}
    }

    let mut vips = BTreeMap::new();
    if let Some(item) = get(top, "vips") {
        if let Value::Table(entries) = &item.value {
            for e in entries {
                let path = format!("vips.{}", e.key);
                if let Some(ip) = r.ipv4(&e.item, &path, None) {
                    vips.insert(e.key.clone(), ip);
                }
            }
        } else {
            r.error(
                item.span.as_ref(),
                None,
                "vips",
                "expected a table of name = \"address\"".into(),
            );
        }
    }

    let mut flake_inputs = FlakeInputs::defaults();
    if let Some(item) = get(top, "flake")
        && let Some(entries) = r.table(item, "flake", None, &["inputs"], &[])
        && let Some(inputs) = get(entries, "inputs")
        && let Some(entries) = r.table(inputs, "flake.inputs", None, &FlakeInputs::KEYS, &[])
    {
        for e in entries {
            let path = format!("flake.inputs.{}", e.key);
            let Some(url) = r.string(&e.item, &path, None) else {
                continue;
            };
            match e.key.as_str() {
                "nixpkgs" => flake_inputs.nixpkgs = url,
                "disko" => flake_inputs.disko = url,
                "plasmacloud-provisioning" => flake_inputs.provisioning = url,
                "plasmacloud-services" => flake_inputs.services = url,
                _ => {}
            }
        }
    }

    let mut allocation = Allocation::default();
    if let Some(item) = get(top, "allocation")
        && let Some(entries) = r.table(item, "allocation", None, &Allocation::KEYS, &[])
    {
        for e in entries {
            let path = format!("allocation.{}", e.key);
            let Some(text) = r.string(&e.item, &path, None) else {
                continue;
            };
            match parse_range(&text) {
                Ok(range) => allocation.set(&e.key, range),
                Err(msg) => r.error(e.item.span.as_ref(), None, &path, msg),
            }
        }
    }

    Ok(Parsed {
        inventory: Inventory {
            source: path.to_path_buf(),
            source_text: text.to_string(),
            cluster,
            provisioning,
            production,
            management_subnet,
            nodes,
            vips,
            flake_inputs,
            allocation,
        },
        broken: r.broken,
        spans: r.spans,
        source_text: text.to_string(),
        diagnostics: r.diags,
    })
}

fn read_cluster(r: &mut Reader<'_>, item: &Item, present: bool) -> Cluster {
    let entries = if present {
        r.table(item, "cluster", None, CLUSTER_KEYS, CLUSTER_REQUIRED)
            .unwrap_or(&[])
    } else {
        &[]
    };
    let s = |r: &mut Reader<'_>, key: &str| {
        get(entries, key).and_then(|i| r.string(i, &format!("cluster.{key}"), None))
    };
    let name = s(r, "name").unwrap_or_default();
    let domain = s(r, "domain").unwrap_or_default();
    let state_version = s(r, "state_version").unwrap_or_default();
    let collector_url = s(r, "collector_url").unwrap_or_default();
    let bootstrap = get(entries, "bootstrap")
        .and_then(|i| r.strings(i, "cluster.bootstrap", None))
        .unwrap_or_default();
    let ssh_authorized_keys = get(entries, "ssh_authorized_keys")
        .and_then(|i| r.strings(i, "cluster.ssh_authorized_keys", None))
        .unwrap_or_default();
    let num = |r: &mut Reader<'_>, key: &str, max: i64, default: i64| {
        get(entries, key)
            .and_then(|i| r.integer(i, &format!("cluster.{key}"), None, max))
            .unwrap_or(default)
    };
    let cert_validity_days = num(
        r,
        "cert_validity_days",
        3650,
        i64::from(DEFAULT_CERT_VALIDITY_DAYS),
    ) as u32;
    let health_timeout_secs = num(
        r,
        "health_timeout_secs",
        86_400,
        plasma_wire::config::DEFAULT_HEALTH_TIMEOUT_SECS as i64,
    ) as u64;
    let join_timeout_secs = num(
        r,
        "join_timeout_secs",
        86_400,
        plasma_wire::config::DEFAULT_JOIN_TIMEOUT_SECS as i64,
    ) as u64;
    let luks_unlock = get(entries, "luks_unlock")
        .and_then(|i| {
            r.choice(
                i,
                "cluster.luks_unlock",
                None,
                "LUKS unlock method",
                LuksUnlock::ALL.map(LuksUnlock::as_str).as_slice(),
                LuksUnlock::parse,
            )
        })
        .unwrap_or(LuksUnlock::InitrdSsh);
    Cluster {
        luks_unlock,
        name,
        domain,
        bootstrap,
        ssh_authorized_keys,
        state_version,
        collector_url,
        cert_validity_days,
        health_timeout_secs,
        join_timeout_secs,
    }
}

const PLACEHOLDER_NET: Cidr = Cidr {
    network: Ipv4Addr::UNSPECIFIED,
    prefix: 0,
};

fn read_provisioning(r: &mut Reader<'_>, item: Option<&Item>) -> ProvisioningNetwork {
    let base = "networks.provisioning";
    let entries = item
        .and_then(|i| r.table(i, base, None, PROV_KEYS, PROV_REQUIRED))
        .unwrap_or(&[]);
    let mut range = (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED);
    if let Some(ri) = get(entries, "dhcp_range") {
        let path = format!("{base}.dhcp_range");
        if let Some(re) = r.table(ri, &path, None, &["start", "end"], &["start", "end"]) {
            if let Some(s) =
                get(re, "start").and_then(|i| r.ipv4(i, &format!("{path}.start"), None))
            {
                range.0 = s;
            }
            if let Some(e) = get(re, "end").and_then(|i| r.ipv4(i, &format!("{path}.end"), None)) {
                range.1 = e;
            }
        }
    }
    if item.is_none() {
        r.broken.insert(base.to_string());
    }
    let (subnet, gateway, nameservers) = read_addressing(r, entries, base);
    ProvisioningNetwork {
        subnet,
        gateway,
        nameservers,
        dhcp_range: range,
        pxe_server: get(entries, "pxe_server")
            .and_then(|i| r.ipv4(i, &format!("{base}.pxe_server"), None))
            .unwrap_or(Ipv4Addr::UNSPECIFIED),
        interface: match get(entries, "interface") {
            Some(i) => r
                .string(i, &format!("{base}.interface"), None)
                .unwrap_or_default(),
            None => {
                if item.is_some() {
                    r.error(
                        item.and_then(|i| i.span.as_ref()),
                        None,
                        &format!("{base}.interface"),
                        "missing required field: the PXE server's NIC on this network as its kernel names it (`ip -br link` on that host), e.g. \"enp1s0\"; DHCP and TFTP bind to it".into(),
                    );
                }
                String::new()
            }
        },
    }
}

fn read_production(r: &mut Reader<'_>, item: Option<&Item>) -> ProductionNetwork {
    let base = "networks.production";
    let entries = item
        .and_then(|i| r.table(i, base, None, PROD_KEYS, PROD_REQUIRED))
        .unwrap_or(&[]);
    if item.is_none() {
        r.broken.insert(base.to_string());
    }
    let (subnet, gateway, nameservers) = read_addressing(r, entries, base);
    // 802.1Q ids 0 and 4095 are reserved (IEEE 802.1Q 9.6).
    let vlan = get(entries, "vlan")
        .and_then(|i| r.integer(i, &format!("{base}.vlan"), None, 4094))
        .map(|v| v as u16);
    let bond_mode = get(entries, "bond_mode")
        .and_then(|i| {
            r.choice(
                i,
                &format!("{base}.bond_mode"),
                None,
                "bond mode",
                BondMode::ALL.map(BondMode::as_str).as_slice(),
                BondMode::parse,
            )
        })
        .unwrap_or(BondMode::Lacp);
    ProductionNetwork {
        subnet,
        gateway,
        nameservers,
        vlan,
        bond_mode,
    }
}

/// `subnet`, `gateway` and `nameservers`, which both networks have.
fn read_addressing(
    r: &mut Reader<'_>,
    entries: &[Entry],
    base: &str,
) -> (Cidr, Ipv4Addr, Vec<Ipv4Addr>) {
    let subnet = get(entries, "subnet")
        .and_then(|i| r.parsed(i, &format!("{base}.subnet"), None))
        .unwrap_or(PLACEHOLDER_NET);
    let gateway = get(entries, "gateway")
        .and_then(|i| r.ipv4(i, &format!("{base}.gateway"), None))
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let nameservers = get(entries, "nameservers")
        .and_then(|i| r.ipv4s(i, &format!("{base}.nameservers"), None))
        .unwrap_or_default();
    (subnet, gateway, nameservers)
}
