//! The library's error type and its mapping to exit codes (documented in `--help`).

use crate::diag::Diagnostic;
use crate::inventory::LoadError;
use crate::output::OutputError;
use crate::render::RenderError;

pub const EXIT_OK: u8 = 0;
/// `--dry-run`: something would change. `status --wait`: a node failed or the wait timed out.
pub const EXIT_CHANGES: u8 = 1;
pub const EXIT_INVALID: u8 = 2;
pub const EXIT_INTERNAL: u8 = 70;
/// A service (the collector) could not be reached or refused the request.
pub const EXIT_UNAVAILABLE: u8 = 69;
pub const EXIT_IO: u8 = 74;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Empty when the diagnostics were already printed (e.g. as JSON).
    #[error("{}", render_diags(.0))]
    Invalid(Vec<Diagnostic>),
    /// Bad arguments or a layout we refuse (user's fault, exit 2).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Pki(#[from] plasma_pki::PkiError),
    #[error("{0}")]
    Internal(String),
    /// The collector's database is damaged (exit 74); the message names the file and the
    /// recovery steps.
    #[error("{0}")]
    Store(String),
    /// The collector was unreachable or answered with an error.
    #[error("{0}")]
    Unavailable(String),
}

fn render_diags(diags: &[Diagnostic]) -> String {
    if diags.is_empty() {
        return String::new();
    }
    let errors = diags
        .iter()
        .filter(|d| d.severity == crate::diag::Severity::Error)
        .count();
    let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    format!(
        "invalid input ({errors} error{}):\n{}",
        if errors == 1 { "" } else { "s" },
        lines.join("\n")
    )
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Invalid(d) => Error::Invalid(d),
            LoadError::Io { path, source } => Error::Usage(format!(
                "{}: cannot read inventory: {source}",
                path.display()
            )),
        }
    }
}

impl Error {
    /// `.map_err(Error::io_at(path))` for an I/O error about `path`.
    pub fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Invalid(_) | Error::Usage(_) => EXIT_INVALID,
            Error::Pki(e) if e.is_user_error() => EXIT_INVALID,
            Error::Output(_) | Error::Io { .. } | Error::Store(_) => EXIT_IO,
            Error::Unavailable(_) => EXIT_UNAVAILABLE,
            Error::Render(_) | Error::Pki(_) | Error::Internal(_) => EXIT_INTERNAL,
        }
    }
}
