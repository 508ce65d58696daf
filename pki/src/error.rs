//! One error type for the whole crate. Its `Display` always says which file (when there is one)
//! and what is wrong, so a CLI can print it as is.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A certificate that cannot be parsed (bad PEM, wrong PEM label, bad DER).
    #[error("invalid {what}: {reason}")]
    InvalidCert { what: &'static str, reason: String },
    /// A private key that cannot be parsed or is of an unsupported kind.
    #[error("invalid {what}: {reason}")]
    InvalidKey { what: &'static str, reason: String },
    /// The private key does not belong to the certificate next to it.
    #[error("the {what} private key does not match its certificate")]
    KeyMismatch { what: &'static str },
    /// A certificate used as CA lacks basicConstraints CA:TRUE.
    #[error("the {what} is not a CA certificate (basicConstraints CA is not set)")]
    NotCa { what: &'static str },
    /// A leaf specification rcgen cannot encode (e.g. a DNS name with non-ASCII characters).
    #[error("invalid certificate request: {0}")]
    InvalidSpec(String),
    /// The store input is inconsistent (duplicate or unsafe hostnames, zero validity, ...).
    #[error("invalid certificate inventory: {0}")]
    InvalidInput(String),
    /// The secrets directory is in a state we refuse to touch (e.g. half a CA).
    #[error("{}: {reason}", path.display())]
    Layout { path: PathBuf, reason: String },
    /// An error about the content of one file; `cause` says what is wrong with it.
    #[error("{}: {cause}", path.display())]
    File { path: PathBuf, cause: Box<PkiError> },
    /// A filesystem operation failed.
    #[error("cannot {op} {}: {err}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    /// `rotate` was asked for a certificate the inventory does not know.
    #[error("cannot rotate {0}: no such node in the inventory")]
    UnknownLeaf(String),
    /// Key generation or signing failed inside rcgen/ring: not the user's fault.
    #[error("certificate generation failed: {0}")]
    Crypto(String),
}

impl PkiError {
    /// True when the problem lies in the user's input or files (a CLI exits 2), false when it is
    /// an internal failure (exit 1).
    pub fn is_user_error(&self) -> bool {
        match self {
            PkiError::File { cause, .. } => cause.is_user_error(),
            PkiError::Crypto(_) => false,
            // Unreadable, unwritable or missing files are about the user's directory.
            PkiError::Io { .. } => true,
            _ => true,
        }
    }

    /// The process exit code a CLI should use for this error: 2 for user errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.is_user_error() { 2 } else { 1 }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, err: io::Error) -> Self {
        PkiError::Io {
            op,
            path: path.into(),
            err,
        }
    }

    pub(crate) fn in_file(self, path: impl Into<PathBuf>) -> Self {
        PkiError::File {
            path: path.into(),
            cause: Box::new(self),
        }
    }
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Crypto(e.to_string())
    }
}
