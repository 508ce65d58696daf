//! What a plan, an apply or a rotate does (or would do) to the secrets directory.

use std::fmt;
use std::path::PathBuf;

use super::layout::LeafId;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum SecretAction {
    /// Create the cluster CA (only when `ca/` is absent and no leaf exists yet).
    CreateCa,
    /// A new private key and a certificate for it (no key existed).
    NewKey { leaf: LeafId },
    /// A new certificate for the existing key.
    IssueCert { leaf: LeafId, reason: IssueReason },
    /// Write (or refresh) the node's copy of the CA certificate.
    CopyCaCert { hostname: String },
    /// Correct the permission bits of an existing file or directory.
    FixMode { path: PathBuf, from: u32, to: u32 },
    /// Remove the secrets of a node that left the inventory (`prune_secrets`).
    Prune { hostname: String },
    /// A node that left the inventory keeps its secrets (no `prune_secrets`); changes nothing.
    KeepOrphan { hostname: String },
    /// `rotate`: a new key and certificate; the previous files were kept under `kept`.
    Rotated { leaf: LeafId, kept: Vec<PathBuf> },
}

impl SecretAction {
    /// False only for actions that change nothing on disk ([`SecretAction::KeepOrphan`]).
    pub fn changes_files(&self) -> bool {
        !matches!(self, SecretAction::KeepOrphan { .. })
    }
}

/// Why an existing key gets a new certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum IssueReason {
    /// The key exists but the certificate does not.
    Missing,
    /// The certificate's SANs differ from the inventory.
    SansChanged {
        added: Vec<String>,
        removed: Vec<String>,
    },
    /// The certificate's CN differs from the inventory (fqdn changed).
    SubjectChanged { from: String, to: String },
    /// The certificate expires within `renew_before_days` (negative: already expired).
    ExpiresSoon { days_left: i64 },
    /// The certificate is not signed by the current CA.
    NotIssuedByCa,
    /// The certificate is for another key than the one on disk.
    KeyMismatch,
    /// The certificate file cannot be parsed; it is derived data, so it is re-issued.
    Unreadable { problem: String },
}

impl fmt::Display for IssueReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IssueReason::Missing => f.write_str("no certificate for the existing key"),
            IssueReason::SansChanged { added, removed } => {
                f.write_str("SANs changed:")?;
                for a in added {
                    write!(f, " +{a}")?;
                }
                for r in removed {
                    write!(f, " -{r}")?;
                }
                Ok(())
            }
            IssueReason::SubjectChanged { from, to } => write!(f, "CN changed: {from} -> {to}"),
            IssueReason::ExpiresSoon { days_left } if *days_left < 0 => {
                write!(f, "expired {} days ago", -days_left)
            }
            IssueReason::ExpiresSoon { days_left } => write!(f, "expires in {days_left} days"),
            IssueReason::NotIssuedByCa => f.write_str("not signed by the current CA"),
            IssueReason::KeyMismatch => f.write_str("certificate does not match the key"),
            IssueReason::Unreadable { problem } => write!(f, "certificate unreadable: {problem}"),
        }
    }
}

impl fmt::Display for SecretAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretAction::CreateCa => f.write_str("create CA"),
            SecretAction::NewKey { leaf } => write!(f, "new key and cert for {leaf}"),
            SecretAction::IssueCert { leaf, reason } => {
                write!(f, "re-issue cert for {leaf} because {reason}")
            }
            SecretAction::CopyCaCert { hostname } => write!(f, "copy CA cert for {hostname}"),
            SecretAction::FixMode { path, from, to } => {
                write!(f, "fix mode of {} ({from:04o} -> {to:04o})", path.display())
            }
            SecretAction::Prune { hostname } => write!(f, "prune {hostname}"),
            SecretAction::KeepOrphan { hostname } => {
                write!(
                    f,
                    "keep-orphan {hostname} (not in the inventory; --prune-secrets removes it)"
                )
            }
            SecretAction::Rotated { leaf, kept } => {
                write!(f, "rotate {leaf}")?;
                if !kept.is_empty() {
                    let names: Vec<String> = kept
                        .iter()
                        .map(|p| {
                            p.file_name()
                                .unwrap_or_default()
                                .to_string_lossy()
                                .into_owned()
                        })
                        .collect();
                    write!(f, " (kept {})", names.join(", "))?;
                }
                Ok(())
            }
        }
    }
}
