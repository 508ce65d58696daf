//! The `<DIR>/secrets/` directory that `plasmagen generate` and `plasmagen certs` manage.
//!
//! - [`plan`]: what [`apply`] would do (for `--dry-run`); writes nothing.
//! - [`apply`]: create what is missing, re-issue what no longer matches, never replace a CA or a
//!   key; a second run with the same input changes no byte and no mtime.
//! - [`list`]: every certificate with subject, SANs, expiry and whether it verifies.
//! - [`rotate`]: new key and certificate; the old files are kept with a timestamp suffix.
//!
//! All of them take `<secrets>/.lock` (exclusive for writers, shared for readers), so two
//! concurrent runs cannot interleave; the second one waits. See [`layout`] for the files.

mod action;
mod fsio;
pub mod layout;

pub use action::{IssueReason, SecretAction};
pub use layout::{Layout, LeafId};

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::PublicKeyData;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::certificate::X509Certificate;

use crate::ca::parse_key;
use crate::inspect::{info_of, parse_der, pem_to_der, signed_by};
use crate::{Ca, KeyAlgorithm, LeafSpec, PkiError};
use layout::{MODE_CERT, MODE_KEY, MODE_PRIVATE_DIR};

pub const DEFAULT_NODE_VALIDITY_DAYS: u32 = 365;
pub const DEFAULT_CA_VALIDITY_DAYS: u32 = 3650;
pub const DEFAULT_RENEW_BEFORE_DAYS: u32 = 30;

/// What a node's certificate is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Short hostname; also the directory name under `nodes/` and the file-name prefix.
    pub hostname: String,
    pub fqdn: String,
    /// Production and provisioning addresses (loopback is added by [`LeafSpec::node`]).
    pub ips: Vec<IpAddr>,
}

/// Everything the store needs from the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInput {
    pub cluster_name: String,
    pub nodes: Vec<NodeIdentity>,
    /// IP SAN of the provisioning server (collector / PXE HTTP) certificate.
    pub pxe_server_ip: IpAddr,
    pub node_validity_days: u32,
    pub ca_validity_days: u32,
    pub renew_before_days: u32,
    pub prune_secrets: bool,
    /// Algorithm of new keys; existing keys are kept whatever their algorithm.
    pub key_algorithm: KeyAlgorithm,
}

impl StoreInput {
    /// Input with the default validities (365 / 3650 days), renew 30 days before expiry, no
    /// pruning, ECDSA P-256.
    pub fn new(
        cluster_name: impl Into<String>,
        nodes: Vec<NodeIdentity>,
        pxe_server_ip: IpAddr,
    ) -> Self {
        StoreInput {
            cluster_name: cluster_name.into(),
            nodes,
            pxe_server_ip,
            node_validity_days: DEFAULT_NODE_VALIDITY_DAYS,
            ca_validity_days: DEFAULT_CA_VALIDITY_DAYS,
            renew_before_days: DEFAULT_RENEW_BEFORE_DAYS,
            prune_secrets: false,
            key_algorithm: KeyAlgorithm::default(),
        }
    }
}

/// Which certificates [`rotate`] replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotate {
    /// One node, by hostname.
    Node(String),
    /// The provisioning-server certificate.
    PxeServer,
    /// The operator client certificate.
    Operator,
    /// Every node of the inventory, the provisioning server, the operator and the viewer
    /// (never the CA).
    All,
}

/// One certificate as shown by `plasmagen certs list`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListedCert {
    pub path: PathBuf,
    /// `None` for the CA.
    pub leaf: Option<LeafId>,
    pub subject: String,
    /// DNS names then IP addresses, in certificate order.
    pub sans: Vec<String>,
    /// RFC 3339, UTC.
    pub not_after: String,
    pub not_after_unix: i64,
    /// Whole days until expiry (negative when expired).
    pub days_left: i64,
    /// Signed by the current CA (for the CA itself: its self-signature checks out).
    pub verifies: bool,
    pub is_ca: bool,
    pub serial_hex: String,
}

/// What [`apply`] would do, without writing anything.
pub fn plan(
    secrets_dir: &Path,
    input: &StoreInput,
    now: OffsetDateTime,
) -> Result<Vec<SecretAction>, PkiError> {
    validate(input)?;
    let layout = Layout::new(secrets_dir);
    let _lock = fsio::lock_shared_if_present(&layout.lock_file())?;
    Ok(plan_locked(&layout, input, now)?.0)
}

/// Bring the secrets directory in line with `input`; returns what was done (empty, or only
/// [`SecretAction::KeepOrphan`], when nothing needed doing).
pub fn apply(
    secrets_dir: &Path,
    input: &StoreInput,
    now: OffsetDateTime,
) -> Result<Vec<SecretAction>, PkiError> {
    validate(input)?;
    let layout = Layout::new(secrets_dir);
    if let Some(parent) = secrets_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| PkiError::io("create directory", parent, e))?;
    }
    fsio::ensure_dir(layout.root(), MODE_PRIVATE_DIR)?;
    let _lock = fsio::lock_exclusive(&layout.lock_file())?;
    let (actions, mut ca) = plan_locked(&layout, input, now)?;
    let specs = desired(input);
    let mut durable = Vec::new();
    let result = actions
        .iter()
        .try_for_each(|action| execute(&layout, input, &specs, &mut ca, action, now, &mut durable));
    // Keys are the files whose loss needs the operator: fsync them (and, through their
    // directories, the certificate renames next to them) once at the end. A certificate or CA
    // copy lost in a crash is only re-issued or re-copied by the next run.
    fsio::sync_paths(&durable)?;
    result?;
    Ok(actions)
}

/// Every certificate under `secrets_dir` (CA, nodes, pxe-server, operator), as of now.
pub fn list(secrets_dir: &Path) -> Result<Vec<ListedCert>, PkiError> {
    list_at(secrets_dir, OffsetDateTime::now_utc())
}

/// [`list`] with an explicit "now" for `days_left`.
pub fn list_at(secrets_dir: &Path, now: OffsetDateTime) -> Result<Vec<ListedCert>, PkiError> {
    let layout = Layout::new(secrets_dir);
    require_generated(&layout)?;
    let _lock = fsio::lock_shared_if_present(&layout.lock_file())?;
    let ca_path = layout.ca_cert();
    let ca_pem = fsio::read_opt(&ca_path)?
        .ok_or_else(|| not_generated(ca_path.clone(), "no CA certificate"))?;
    // Parsed once: every listed certificate is checked against it.
    let ca_der = pem_to_der(&ca_pem, "CA certificate").map_err(|e| e.in_file(&ca_path))?;
    let ca = parse_der(&ca_der, "CA certificate").map_err(|e| e.in_file(&ca_path))?;
    let mut out = vec![listed(ca_path, None, &ca, &ca, now)];
    let mut leaves: Vec<LeafId> = node_dirs(&layout)?.into_iter().map(LeafId::Node).collect();
    leaves.extend([LeafId::PxeServer, LeafId::Operator, LeafId::Viewer]);
    for leaf in leaves {
        let path = layout.leaf_cert(&leaf);
        if let Some(pem) = fsio::read_opt(&path)? {
            let der = pem_to_der(&pem, "certificate").map_err(|e| e.in_file(&path))?;
            let cert = parse_der(&der, "certificate").map_err(|e| e.in_file(&path))?;
            out.push(listed(path, Some(leaf), &cert, &ca, now));
        }
    }
    Ok(out)
}

/// New key and certificate for the chosen leaves. The previous key and certificate stay next to
/// the new ones as `<file>.<YYYYMMDDTHHMMSSZ>` (hard links made before the new files are renamed
/// in, so the current path never disappears).
pub fn rotate(
    secrets_dir: &Path,
    input: &StoreInput,
    which: Rotate,
    now: OffsetDateTime,
) -> Result<Vec<SecretAction>, PkiError> {
    validate(input)?;
    let layout = Layout::new(secrets_dir);
    require_generated(&layout)?;
    let _lock = fsio::lock_exclusive(&layout.lock_file())?;
    let ca = load_ca(&layout)?.ok_or_else(|| not_generated(layout.ca_dir(), "no CA"))?;
    let specs = desired(input);
    let leaves: Vec<LeafId> = match which {
        Rotate::Node(h) => {
            let leaf = LeafId::Node(h.clone());
            if !specs.contains_key(&leaf) {
                return Err(PkiError::UnknownLeaf(h));
            }
            vec![leaf]
        }
        Rotate::PxeServer => vec![LeafId::PxeServer],
        Rotate::Operator => vec![LeafId::Operator],
        Rotate::All => leaf_order(input),
    };
    let stamp = timestamp(now)?;
    let mut actions = Vec::new();
    let mut durable = Vec::new();
    let result = rotate_leaves(
        &layout,
        &ca,
        &specs,
        input.key_algorithm,
        &leaves,
        &stamp,
        now,
        &mut actions,
        &mut durable,
    );
    fsio::sync_paths(&durable)?;
    result?;
    Ok(actions)
}

#[allow(clippy::too_many_arguments)]
fn rotate_leaves(
    layout: &Layout,
    ca: &Ca,
    specs: &HashMap<LeafId, LeafSpec>,
    key_algorithm: KeyAlgorithm,
    leaves: &[LeafId],
    stamp: &str,
    now: OffsetDateTime,
    actions: &mut Vec<SecretAction>,
    durable: &mut Vec<PathBuf>,
) -> Result<(), PkiError> {
    for leaf in leaves {
        let spec = &specs[leaf];
        ensure_leaf_dirs(layout, leaf)?;
        let issued = ca.issue_at(spec, None, key_algorithm, now)?;
        let key_path = layout.leaf_key(leaf);
        let cert_path = layout.leaf_cert(leaf);
        let key_tmp = fsio::write_temp(&key_path, issued.key_pem.as_bytes(), MODE_KEY)?;
        let cert_tmp = fsio::write_temp(&cert_path, issued.cert_pem.as_bytes(), MODE_CERT)?;
        let mut kept = Vec::new();
        for (path, tmp) in [(&key_path, key_tmp), (&cert_path, cert_tmp)] {
            if fsio::exists(path)? {
                let backup = backup_path(layout, path, stamp)?;
                fs::hard_link(path, &backup)
                    .map_err(|e| PkiError::io("keep a copy of", path, e))?;
                kept.push(backup);
            }
            fsio::persist(tmp, path, true)?;
            if *path == key_path {
                durable.push(path.clone());
            }
        }
        if kept.is_empty() {
            actions.push(SecretAction::NewKey { leaf: leaf.clone() });
        } else {
            actions.push(SecretAction::Rotated {
                leaf: leaf.clone(),
                kept,
            });
        }
        if let LeafId::Node(h) = &leaf {
            let copy = layout.node_ca_copy(h);
            if fsio::read_opt(&copy)?.as_deref() != Some(ca.cert_pem()) {
                fsio::write_atomic(&copy, ca.cert_pem().as_bytes(), MODE_CERT, true)?;
                actions.push(SecretAction::CopyCaCert {
                    hostname: h.clone(),
                });
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

/// `list` and `rotate` work on what `generate` made; without it there is nothing to do.
fn require_generated(layout: &Layout) -> Result<(), PkiError> {
    if fsio::exists(layout.root())? {
        return Ok(());
    }
    Err(not_generated(
        layout.root().to_path_buf(),
        "no such directory",
    ))
}

fn not_generated(path: PathBuf, what: &str) -> PkiError {
    PkiError::Layout {
        path,
        reason: format!("{what} (run plasmagen generate first)"),
    }
}

fn validate(input: &StoreInput) -> Result<(), PkiError> {
    let bad = |m: String| Err(PkiError::InvalidInput(m));
    if input.cluster_name.trim().is_empty() {
        return bad("the cluster name is empty".into());
    }
    if input.node_validity_days == 0 || input.ca_validity_days == 0 {
        return bad("certificate validity must be at least one day".into());
    }
    if input.renew_before_days >= input.node_validity_days {
        // Otherwise every run would re-issue every certificate.
        return bad(format!(
            "renew-before ({} days) must be shorter than the node certificate validity ({} days)",
            input.renew_before_days, input.node_validity_days
        ));
    }
    let mut seen = HashSet::new();
    for n in &input.nodes {
        if !is_dns_label(&n.hostname) {
            return bad(format!(
                "hostname {:?} is not a lower-case DNS label (a-z, 0-9, '-'; used as a directory name)",
                n.hostname
            ));
        }
        if !seen.insert(n.hostname.as_str()) {
            return bad(format!("hostname {:?} appears twice", n.hostname));
        }
        let fqdn = n.fqdn.to_ascii_lowercase();
        if fqdn.is_empty() || fqdn.len() > 253 || !fqdn.split('.').all(is_dns_label) {
            return bad(format!(
                "fqdn {:?} of {} is not a valid DNS name",
                n.fqdn, n.hostname
            ));
        }
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Nodes in inventory order, then the provisioning server and the operator.
fn leaf_order(input: &StoreInput) -> Vec<LeafId> {
    input
        .nodes
        .iter()
        .map(|n| LeafId::Node(n.hostname.clone()))
        .chain([LeafId::PxeServer, LeafId::Operator, LeafId::Viewer])
        .collect()
}

fn desired(input: &StoreInput) -> HashMap<LeafId, LeafSpec> {
    let days = input.node_validity_days;
    let mut m: HashMap<LeafId, LeafSpec> = input
        .nodes
        .iter()
        .map(|n| {
            (
                LeafId::Node(n.hostname.clone()),
                LeafSpec::node(&n.hostname, &n.fqdn, &n.ips, days),
            )
        })
        .collect();
    m.insert(
        LeafId::PxeServer,
        LeafSpec::pxe_server(input.pxe_server_ip, days),
    );
    m.insert(LeafId::Operator, LeafSpec::operator(days));
    m.insert(LeafId::Viewer, LeafSpec::viewer(days));
    m
}

/// The CA, `None` when `ca/` holds neither file. Half a CA or a bad file is an error naming the
/// file: we never create a CA over the remains of another.
fn load_ca(layout: &Layout) -> Result<Option<Ca>, PkiError> {
    let (cert_path, key_path) = (layout.ca_cert(), layout.ca_key());
    let cert = fsio::read_opt(&cert_path)?;
    let key = fsio::read_opt(&key_path)?;
    let refuse = |present: &Path, missing: PathBuf| PkiError::Layout {
        path: missing,
        reason: format!(
            "missing while {} exists; refusing to create a new CA (restore the file, or move ca/ away deliberately)",
            present.display()
        ),
    };
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(refuse(&cert_path, key_path)),
        (None, Some(_)) => Err(refuse(&key_path, cert_path)),
        (Some(c), Some(k)) => match Ca::from_pem(&c, &k) {
            Ok(ca) => Ok(Some(ca)),
            Err(e @ (PkiError::InvalidKey { .. } | PkiError::KeyMismatch { .. })) => {
                Err(e.in_file(key_path))
            }
            Err(e) => Err(e.in_file(cert_path)),
        },
    }
}

fn plan_locked(
    layout: &Layout,
    input: &StoreInput,
    now: OffsetDateTime,
) -> Result<(Vec<SecretAction>, Option<Ca>), PkiError> {
    let mut actions = Vec::new();
    let mut checked_dirs = HashSet::new();
    let mut check_mode =
        |actions: &mut Vec<SecretAction>, path: PathBuf, want: u32| -> Result<(), PkiError> {
            if !checked_dirs.insert(path.clone()) {
                return Ok(());
            }
            if let Some(have) = fsio::mode_of(&path)?
                && have != want
            {
                actions.push(SecretAction::FixMode {
                    path,
                    from: have,
                    to: want,
                });
            }
            Ok(())
        };

    let ca = load_ca(layout)?;
    let existing_nodes = node_dirs(layout)?;
    let orphans: BTreeSet<String> = {
        let wanted: HashSet<&str> = input.nodes.iter().map(|n| n.hostname.as_str()).collect();
        existing_nodes
            .iter()
            .filter(|h| !wanted.contains(h.as_str()))
            .cloned()
            .collect()
    };
    match &ca {
        None => {
            // Leaves without a CA mean the CA was lost: a new one would silently split the
            // cluster, so stop and let the operator decide.
            let mut issued = existing_nodes
                .iter()
                .map(|h| layout.node_root(h))
                .collect::<Vec<_>>();
            for leaf in [LeafId::PxeServer, LeafId::Operator, LeafId::Viewer] {
                for p in [layout.leaf_cert(&leaf), layout.leaf_key(&leaf)] {
                    if fsio::exists(&p)? {
                        issued.push(p);
                    }
                }
            }
            if let Some(first) = issued.first() {
                return Err(PkiError::Layout {
                    path: layout.ca_dir(),
                    reason: format!(
                        "no CA, but secrets issued by one exist (e.g. {}); refusing to create a new CA (restore ca/ or remove the old secrets)",
                        first.display()
                    ),
                });
            }
            actions.push(SecretAction::CreateCa);
            check_mode(&mut actions, layout.root().to_path_buf(), MODE_PRIVATE_DIR)?;
        }
        Some(_) => {
            check_mode(&mut actions, layout.root().to_path_buf(), MODE_PRIVATE_DIR)?;
            check_mode(&mut actions, layout.ca_dir(), MODE_PRIVATE_DIR)?;
            check_mode(&mut actions, layout.ca_key(), MODE_KEY)?;
            check_mode(&mut actions, layout.ca_cert(), MODE_CERT)?;
        }
    }

    let specs = desired(input);
    let ca_pem = ca.as_ref().map(|c| c.cert_pem());
    // Parsed once for the signature checks of all leaves (it loaded, so it parses).
    let ca_der = ca_pem
        .map(|p| pem_to_der(p, "CA certificate"))
        .transpose()?;
    let ca_x509 = ca_der
        .as_deref()
        .map(|d| parse_der(d, "CA certificate"))
        .transpose()?;
    for leaf in leaf_order(input) {
        let spec = &specs[&leaf];
        for (dir, mode) in layout.leaf_dirs(&leaf) {
            check_mode(&mut actions, dir, mode)?;
        }
        let key_path = layout.leaf_key(&leaf);
        let cert_path = layout.leaf_cert(&leaf);
        match fsio::read_opt(&key_path)? {
            None => actions.push(SecretAction::NewKey { leaf: leaf.clone() }),
            Some(key_pem) => {
                // A key we cannot read is never replaced behind the operator's back; `rotate`
                // is the way to get a new one.
                let key = parse_key(&key_pem, "private key").map_err(|e| e.in_file(&key_path))?;
                check_mode(&mut actions, key_path.clone(), MODE_KEY)?;
                let reason = match (fsio::read_opt(&cert_path)?, &ca_x509) {
                    (None, _) | (_, None) => Some(IssueReason::Missing),
                    (Some(cert_pem), Some(ca)) => {
                        reissue_reason(&cert_pem, &key, spec, ca, input.renew_before_days, now)
                    }
                };
                match reason {
                    Some(reason) => actions.push(SecretAction::IssueCert {
                        leaf: leaf.clone(),
                        reason,
                    }),
                    None => check_mode(&mut actions, cert_path, MODE_CERT)?,
                }
            }
        }
        if let LeafId::Node(h) = &leaf {
            let copy = layout.node_ca_copy(h);
            let current = fsio::read_opt(&copy)?;
            if ca_pem.is_none() || current.as_deref() != ca_pem {
                actions.push(SecretAction::CopyCaCert {
                    hostname: h.clone(),
                });
            } else {
                check_mode(&mut actions, copy, MODE_CERT)?;
            }
        }
    }

    for hostname in orphans {
        actions.push(if input.prune_secrets {
            SecretAction::Prune { hostname }
        } else {
            SecretAction::KeepOrphan { hostname }
        });
    }
    Ok((actions, ca))
}

/// Why the certificate next to `key` must be re-issued, or `None` when it is still right.
fn reissue_reason(
    cert_pem: &str,
    key: &rcgen::KeyPair,
    spec: &LeafSpec,
    ca: &X509Certificate<'_>,
    renew_before_days: u32,
    now: OffsetDateTime,
) -> Option<IssueReason> {
    let unreadable = |e: PkiError| {
        Some(IssueReason::Unreadable {
            problem: e.to_string(),
        })
    };
    let der = match pem_to_der(cert_pem, "certificate") {
        Ok(d) => d,
        Err(e) => return unreadable(e),
    };
    let x509 = match parse_der(&der, "certificate") {
        Ok(x) => x,
        Err(e) => return unreadable(e),
    };
    if x509.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
        return Some(IssueReason::KeyMismatch);
    }
    if !signed_by(&x509, ca) {
        return Some(IssueReason::NotIssuedByCa);
    }
    let info = info_of(&x509);
    if info.subject_cn != spec.common_name {
        return Some(IssueReason::SubjectChanged {
            from: info.subject_cn,
            to: spec.common_name.clone(),
        });
    }
    let have: BTreeSet<String> = info.san_strings().into_iter().collect();
    let want: BTreeSet<String> = spec.san_strings().into_iter().collect();
    if have != want {
        return Some(IssueReason::SansChanged {
            added: want.difference(&have).cloned().collect(),
            removed: have.difference(&want).cloned().collect(),
        });
    }
    let left = info.not_after_unix - now.unix_timestamp();
    if left < i64::from(renew_before_days) * 86_400 {
        return Some(IssueReason::ExpiresSoon {
            days_left: left.div_euclid(86_400),
        });
    }
    None
}

fn execute(
    layout: &Layout,
    input: &StoreInput,
    specs: &HashMap<LeafId, LeafSpec>,
    ca: &mut Option<Ca>,
    action: &SecretAction,
    now: OffsetDateTime,
    durable: &mut Vec<PathBuf>,
) -> Result<(), PkiError> {
    match action {
        SecretAction::CreateCa => *ca = Some(create_ca(layout, input, now)?),
        SecretAction::NewKey { leaf } => {
            let ca = need_ca(ca)?;
            ensure_leaf_dirs(layout, leaf)?;
            let issued = ca.issue_at(&specs[leaf], None, input.key_algorithm, now)?;
            // Key first: a crash in between leaves a key without certificate, which the next
            // run completes with the same key.
            let (key_path, cert_path) = (layout.leaf_key(leaf), layout.leaf_cert(leaf));
            fsio::write_atomic(&key_path, issued.key_pem.as_bytes(), MODE_KEY, false)?;
            durable.push(key_path);
            fsio::write_atomic(&cert_path, issued.cert_pem.as_bytes(), MODE_CERT, true)?;
        }
        SecretAction::IssueCert { leaf, .. } => {
            let ca = need_ca(ca)?;
            let key_path = layout.leaf_key(leaf);
            let key_pem = fsio::read_opt(&key_path)?.ok_or_else(|| {
                PkiError::io("read", &key_path, std::io::ErrorKind::NotFound.into())
            })?;
            let issued = ca
                .issue_at(&specs[leaf], Some(&key_pem), input.key_algorithm, now)
                .map_err(|e| e.in_file(&key_path))?;
            let cert_path = layout.leaf_cert(leaf);
            fsio::write_atomic(&cert_path, issued.cert_pem.as_bytes(), MODE_CERT, true)?;
        }
        SecretAction::CopyCaCert { hostname } => {
            let ca = need_ca(ca)?;
            ensure_leaf_dirs(layout, &LeafId::Node(hostname.clone()))?;
            let copy = layout.node_ca_copy(hostname);
            fsio::write_atomic(&copy, ca.cert_pem().as_bytes(), MODE_CERT, true)?;
        }
        SecretAction::FixMode { path, to, .. } => fsio::set_mode(path, *to)?,
        SecretAction::Prune { hostname } => {
            let dir = layout.node_root(hostname);
            fs::remove_dir_all(&dir).map_err(|e| PkiError::io("remove", &dir, e))?;
        }
        SecretAction::KeepOrphan { .. } | SecretAction::Rotated { .. } => {}
    }
    Ok(())
}

fn need_ca(ca: &Option<Ca>) -> Result<&Ca, PkiError> {
    // plan_locked puts CreateCa first whenever there is no CA.
    ca.as_ref()
        .ok_or_else(|| PkiError::Crypto("internal: no CA loaded before issuing".into()))
}

/// Build the CA in a private temporary directory and rename it to `ca/` in one step, so a crash
/// never leaves half a CA behind (which the next run would refuse).
fn create_ca(layout: &Layout, input: &StoreInput, now: OffsetDateTime) -> Result<Ca, PkiError> {
    let ca = Ca::generate_at(
        &input.cluster_name,
        input.ca_validity_days,
        input.key_algorithm,
        now,
    )?;
    let tmp = tempfile::Builder::new()
        .prefix(".ca-new-")
        .tempdir_in(layout.root())
        .map_err(|e| PkiError::io("create a temporary directory in", layout.root(), e))?;
    fsio::set_mode(tmp.path(), MODE_PRIVATE_DIR)?;
    fsio::write_atomic(
        &tmp.path().join("ca-key.pem"),
        ca.key_pem().as_bytes(),
        MODE_KEY,
        false,
    )?;
    fsio::write_atomic(
        &tmp.path().join("ca-cert.pem"),
        ca.cert_pem().as_bytes(),
        MODE_CERT,
        false,
    )?;
    // The CA is the one thing that cannot be re-created: make it durable right away.
    fsio::sync_paths(&[
        tmp.path().join("ca-key.pem"),
        tmp.path().join("ca-cert.pem"),
    ])?;
    // rename(2) replaces an empty ca/ but fails on a non-empty one: never over an existing CA.
    let dest = layout.ca_dir();
    fs::rename(tmp.path(), &dest).map_err(|e| PkiError::io("create", &dest, e))?;
    // Already renamed away: nothing left for TempDir to clean up.
    let _ = tmp.keep();
    fsio::sync_paths(&[dest])?;
    Ok(ca)
}

fn ensure_leaf_dirs(layout: &Layout, leaf: &LeafId) -> Result<(), PkiError> {
    // A stat is much cheaper than a failing mkdir, and most of these directories exist.
    if layout.leaf_dir(leaf).is_dir() {
        return Ok(());
    }
    for (dir, mode) in layout.leaf_dirs(leaf) {
        if !dir.is_dir() {
            fsio::ensure_dir(&dir, mode)?;
        }
    }
    Ok(())
}

/// Hostnames that have a directory under `nodes/`, sorted.
fn node_dirs(layout: &Layout) -> Result<Vec<String>, PkiError> {
    let dir = layout.nodes_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PkiError::io("read directory", &dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| PkiError::io("read directory", &dir, e))?;
        let is_dir = entry
            .file_type()
            .map_err(|e| PkiError::io("inspect", entry.path(), e))?
            .is_dir();
        if is_dir && let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

fn listed(
    path: PathBuf,
    leaf: Option<LeafId>,
    cert: &X509Certificate<'_>,
    ca: &X509Certificate<'_>,
    now: OffsetDateTime,
) -> ListedCert {
    let info = info_of(cert);
    let verifies = signed_by(cert, ca);
    let not_after = OffsetDateTime::from_unix_timestamp(info.not_after_unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| info.not_after_unix.to_string());
    ListedCert {
        path,
        leaf,
        subject: info.subject_cn.clone(),
        sans: info
            .dns_names
            .iter()
            .cloned()
            .chain(info.ip_addresses.iter().map(ToString::to_string))
            .collect(),
        not_after,
        not_after_unix: info.not_after_unix,
        days_left: (info.not_after_unix - now.unix_timestamp()).div_euclid(86_400),
        verifies,
        is_ca: info.is_ca,
        serial_hex: info.serial_hex,
    }
}

fn timestamp(now: OffsetDateTime) -> Result<String, PkiError> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    now.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .map_err(|e| PkiError::Crypto(format!("internal: cannot format timestamp: {e}")))
}

/// `<secrets>/rotated/<path under secrets>.<stamp>` (`.N` appended when two rotations share a
/// second: never overwrite). Outside `nodes/<host>/`, so `nixos-anywhere --extra-files` never
/// copies a retired key onto a machine.
fn backup_path(layout: &Layout, path: &Path, stamp: &str) -> Result<PathBuf, PkiError> {
    let rel = path.strip_prefix(layout.root()).unwrap_or(path);
    let kept = layout.rotated_dir().join(rel);
    let dir = kept.parent().unwrap_or(layout.root());
    // Every level private: these are private keys.
    let mut level = layout.root().to_path_buf();
    for part in dir.strip_prefix(layout.root()).unwrap_or(dir).components() {
        level.push(part);
        fsio::ensure_dir(&level, MODE_PRIVATE_DIR)?;
    }
    let base = format!("{}.{stamp}", kept.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 1;
    while fsio::exists(&candidate)? {
        candidate = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    Ok(candidate)
}
