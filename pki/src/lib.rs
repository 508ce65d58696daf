//! Cluster PKI for PlasmaCloud provisioning: a cluster CA, per-node certificates for mTLS, a
//! provisioning-server certificate and an operator client certificate, all with rcgen.
//!
//! - [`Ca`], [`LeafSpec`], [`inspect`], [`verifies_against`]: the certificate primitives.
//! - [`store`]: the `<DIR>/secrets/` layout that `plasmagen generate` and `plasmagen certs`
//!   manage (idempotent, locked, never replaces a CA or a key).

mod ca;
mod error;
mod inspect;
pub mod ssh;
pub mod store;

pub use ca::{Ca, Issued, LeafSpec, LeafUsage};
pub use error::PkiError;
pub use inspect::{CertInfo, inspect, verifies_against};

use std::fmt;
use std::str::FromStr;

/// Private-key algorithm for new keys. Existing keys keep whatever algorithm they have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    #[default]
    EcdsaP256,
    EcdsaP384,
    Ed25519,
}

impl KeyAlgorithm {
    pub(crate) fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ecdsa-p256" | "p256" | "p-256" => Ok(KeyAlgorithm::EcdsaP256),
            "ecdsa-p384" | "p384" | "p-384" => Ok(KeyAlgorithm::EcdsaP384),
            "ed25519" => Ok(KeyAlgorithm::Ed25519),
            other => Err(PkiError::InvalidInput(format!(
                "unknown key algorithm {other:?} (expected ecdsa-p256, ecdsa-p384 or ed25519)"
            ))),
        }
    }
}
