//! LUKS passphrases for `luks-lvm` nodes: `<secrets>/luks/<hostname>.key`, uploaded at install
//! time with `nixos-anywhere --disk-encryption-keys /tmp/secret.key <file>`. Created once,
//! never overwritten and never deleted by plasmagen: losing one makes the disk unreadable.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::inventory::{DiskLayout, Inventory};

pub fn key_path(secrets: &Path, hostname: &str) -> PathBuf {
    secrets.join("luks").join(format!("{hostname}.key"))
}

/// Nodes whose passphrase file is missing.
pub fn missing(inv: &Inventory, secrets: &Path) -> Vec<String> {
    inv.nodes
        .iter()
        .filter(|n| {
            n.disk_layout == DiskLayout::LuksLvm && !key_path(secrets, &n.hostname).exists()
        })
        .map(|n| n.hostname.clone())
        .collect()
}

/// Create the missing passphrases; returns the hostnames that got one.
pub fn ensure(inv: &Inventory, secrets: &Path) -> Result<Vec<String>, Error> {
    let todo = missing(inv, secrets);
    if todo.is_empty() {
        return Ok(todo);
    }
    let dir = secrets.join("luks");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    crate::output::ensure_private_dir(&dir).map_err(io(&dir))?;
    let mut urandom = fs::File::open("/dev/urandom").map_err(io(Path::new("/dev/urandom")))?;
    for host in &todo {
        let mut raw = [0u8; 32];
        urandom
            .read_exact(&mut raw)
            .map_err(io(Path::new("/dev/urandom")))?;
        // Hex, no trailing newline: the same bytes work as a key file and as a typed passphrase.
        let pass: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let path = key_path(secrets, host);
        let mut tmp = tempfile::Builder::new()
            .prefix(".luks-")
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(&dir)
            .map_err(io(&dir))?;
        std::io::Write::write_all(&mut tmp, pass.as_bytes()).map_err(io(&path))?;
        tmp.as_file().sync_all().map_err(io(&path))?;
        // persist_noclobber: never replace a passphrase another run created meanwhile.
        tmp.persist_noclobber(&path).map_err(|e| Error::Io {
            path: path.clone(),
            source: e.error,
        })?;
    }
    Ok(todo)
}
