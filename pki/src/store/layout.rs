//! Where every file of the secrets directory lives, and with which mode.
//!
//! ```text
//! <secrets>/                          0700
//!   .lock                             0600
//!   ca/ca-cert.pem ca/ca-key.pem      0700 dir
//!   nodes/                            0700 (never copied anywhere)
//!     <host>/                         0755  <- the root passed to nixos-anywhere --extra-files
//!       etc/ etc/nixos/               0755  (modes land on the target's / and /etc: keep 0755)
//!       etc/nixos/secrets/            0700  ca-cert.pem <host>-cert.pem <host>-key.pem
//!   pxe-server/                       0700  pxe-server-cert.pem pxe-server-key.pem
//!   operator/                         0700  operator-cert.pem operator-key.pem
//!   viewer/                           0700  viewer-cert.pem viewer-key.pem (read-only)
//! ```
//!
//! nixos-anywhere copies `--extra-files` onto the target's root keeping modes, so the directories
//! above `etc/nixos/secrets` must carry the modes the target expects for `/`, `/etc` and
//! `/etc/nixos`; only the directory that holds the key is 0700.

use std::fmt;
use std::path::{Path, PathBuf};

pub const MODE_PRIVATE_DIR: u32 = 0o700;
pub const MODE_PUBLIC_DIR: u32 = 0o755;
pub const MODE_KEY: u32 = 0o600;
pub const MODE_CERT: u32 = 0o644;

/// Which leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "kebab-case")]
pub enum LeafId {
    Node(String),
    PxeServer,
    Operator,
    /// Read-only: the collector's dashboard and fleet reads, nothing else.
    Viewer,
}

impl fmt::Display for LeafId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeafId::Node(h) => f.write_str(h),
            LeafId::PxeServer => f.write_str("pxe-server"),
            LeafId::Operator => f.write_str("operator"),
            LeafId::Viewer => f.write_str("viewer"),
        }
    }
}

/// The paths of a secrets directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(secrets_dir: impl Into<PathBuf>) -> Layout {
        Layout {
            root: secrets_dir.into(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn lock_file(&self) -> PathBuf {
        self.root.join(".lock")
    }

    pub fn ca_dir(&self) -> PathBuf {
        self.root.join("ca")
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.ca_dir().join("ca-cert.pem")
    }

    pub fn ca_key(&self) -> PathBuf {
        self.ca_dir().join("ca-key.pem")
    }

    /// Retired keys and certificates from `rotate`, mirroring their original paths.
    pub fn rotated_dir(&self) -> PathBuf {
        self.root.join("rotated")
    }

    pub fn nodes_dir(&self) -> PathBuf {
        self.root.join("nodes")
    }

    /// The directory to pass to `nixos-anywhere --extra-files` for this node.
    pub fn node_root(&self, hostname: &str) -> PathBuf {
        self.nodes_dir().join(hostname)
    }

    /// `nodes/<host>/etc/nixos/secrets`: lands at the runbook's `/etc/nixos/secrets`.
    pub fn node_secrets(&self, hostname: &str) -> PathBuf {
        self.node_root(hostname).join("etc/nixos/secrets")
    }

    pub fn node_ca_copy(&self, hostname: &str) -> PathBuf {
        self.node_secrets(hostname).join("ca-cert.pem")
    }

    /// Directory holding the leaf's key and certificate.
    pub fn leaf_dir(&self, leaf: &LeafId) -> PathBuf {
        match leaf {
            LeafId::Node(h) => self.node_secrets(h),
            LeafId::PxeServer => self.root.join("pxe-server"),
            LeafId::Operator => self.root.join("operator"),
            LeafId::Viewer => self.root.join("viewer"),
        }
    }

    pub fn leaf_cert(&self, leaf: &LeafId) -> PathBuf {
        self.leaf_dir(leaf).join(format!("{leaf}-cert.pem"))
    }

    pub fn leaf_key(&self, leaf: &LeafId) -> PathBuf {
        self.leaf_dir(leaf).join(format!("{leaf}-key.pem"))
    }

    /// Directories from the secrets root down to the leaf's directory, with their modes, in
    /// creation order.
    pub(crate) fn leaf_dirs(&self, leaf: &LeafId) -> Vec<(PathBuf, u32)> {
        match leaf {
            LeafId::Node(h) => {
                let node = self.node_root(h);
                vec![
                    (self.nodes_dir(), MODE_PRIVATE_DIR),
                    (node.clone(), MODE_PUBLIC_DIR),
                    (node.join("etc"), MODE_PUBLIC_DIR),
                    (node.join("etc/nixos"), MODE_PUBLIC_DIR),
                    (node.join("etc/nixos/secrets"), MODE_PRIVATE_DIR),
                ]
            }
            other => vec![(self.leaf_dir(other), MODE_PRIVATE_DIR)],
        }
    }
}
