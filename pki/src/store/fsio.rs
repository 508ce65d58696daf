//! Small filesystem helpers: optional reads, atomic writes with modes, directory modes, lock.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::PkiError;

/// File content, or `None` when the file does not exist. Invalid UTF-8 is kept lossily so the
/// PEM parser reports it as a bad file rather than as an I/O error.
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io("read", path, e)),
    }
}

pub(crate) fn exists(path: &Path) -> Result<bool, PkiError> {
    path.try_exists()
        .map_err(|e| PkiError::io("inspect", path, e))
}

/// Permission bits, or `None` when the path does not exist.
pub(crate) fn mode_of(path: &Path) -> Result<Option<u32>, PkiError> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m.permissions().mode() & 0o7777)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io("inspect", path, e)),
    }
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), PkiError> {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| PkiError::io("change the mode of", path, e))
}

/// Create `path` with `mode` if missing. An existing directory keeps its mode (the plan reports
/// a wrong one as a FixMode action).
pub(crate) fn ensure_dir(path: &Path, mode: u32) -> Result<(), PkiError> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        // The umask may have narrowed the mode.
        Ok(()) => set_mode(path, mode),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(PkiError::io("create directory", path, e)),
    }
}

/// Write `contents` to `path` atomically (temp file in the same directory, rename), with
/// `mode`; durability comes from [`sync_paths`] once a run has written everything. The temp file is 0600 from the start, so a key is never readable by others, not even
/// briefly. With `clobber == false` an existing `path` is never replaced (keys, CA).
pub(crate) fn write_atomic(
    path: &Path,
    contents: &[u8],
    mode: u32,
    clobber: bool,
) -> Result<(), PkiError> {
    let tmp = write_temp(path, contents, mode)?;
    persist(tmp, path, clobber)
}

/// First half of [`write_atomic`]: the data in a temp file next to `path`.
pub(crate) fn write_temp(
    path: &Path,
    contents: &[u8],
    mode: u32,
) -> Result<tempfile::NamedTempFile, PkiError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| PkiError::io("create a temporary file in", dir, e))?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(|e| PkiError::io("change the mode of", tmp.path(), e))?;
    tmp.write_all(contents)
        .map_err(|e| PkiError::io("write", tmp.path(), e))?;
    Ok(tmp)
}

pub(crate) fn persist(
    tmp: tempfile::NamedTempFile,
    path: &Path,
    clobber: bool,
) -> Result<(), PkiError> {
    let res = if clobber {
        tmp.persist(path).map(|_| ())
    } else {
        tmp.persist_noclobber(path).map(|_| ())
    };
    res.map_err(|e| PkiError::io("write", path, e.error))
}

/// fsync the given files and then their directories (which persists the renames).
///
/// Called once at the end of a run, not after each write, so the writes are not serialised
/// behind one flush each.
pub(crate) fn sync_paths(paths: &[std::path::PathBuf]) -> Result<(), PkiError> {
    let mut dirs = std::collections::BTreeSet::new();
    for p in paths {
        File::open(p)
            .and_then(|f| f.sync_all())
            .map_err(|e| PkiError::io("sync", p, e))?;
        if let Some(d) = p.parent() {
            dirs.insert(d.to_path_buf());
        }
    }
    for d in dirs {
        File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(|e| PkiError::io("sync", &d, e))?;
    }
    Ok(())
}

/// An exclusive lock on `<secrets>/.lock`, held until dropped. Blocks while another run holds
/// it. flock semantics: also excludes other threads of this process that open the file anew.
pub(crate) struct DirLock {
    _file: File,
}

pub(crate) fn lock_exclusive(path: &Path) -> Result<DirLock, PkiError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| PkiError::io("open the lock file", path, e))?;
    // File::lock is stable since Rust 1.89; the workspace's rust-version predates it.
    #[allow(clippy::incompatible_msrv)]
    file.lock().map_err(|e| PkiError::io("lock", path, e))?;
    Ok(DirLock { _file: file })
}

/// A shared lock for readers (plan, list), taken only when the lock file already exists so a
/// dry run creates nothing.
pub(crate) fn lock_shared_if_present(path: &Path) -> Result<Option<DirLock>, PkiError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PkiError::io("open the lock file", path, e)),
    };
    #[allow(clippy::incompatible_msrv)]
    file.lock_shared()
        .map_err(|e| PkiError::io("lock", path, e))?;
    Ok(Some(DirLock { _file: file }))
}
