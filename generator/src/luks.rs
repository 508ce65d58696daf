//! LUKS passphrases for `luks-lvm` nodes: `<secrets>/luks/<hostname>.key`, uploaded at install
//! time with `nixos-anywhere --disk-encryption-keys /tmp/secret.key <file>`. Created once,
//! never overwritten and never deleted by plasmagen: losing one makes the disk unreadable.
//!
//! With `luks_unlock = "initrd-ssh"` each such node also gets the host key of its initrd SSH
//! server, made here so the client can pin it before the node ever boots:
//! `<secrets>/nodes/<host>/etc/secrets/initrd/ssh_host_ed25519_key` (inside the
//! `--extra-files` root, so it lands at /etc/secrets/initrd/ on the node, where boot.nix points
//! `boot.initrd.network.ssh.hostKeys`) and its public half `<secrets>/luks/<host>.initrd-ssh.pub`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::inventory::{DiskLayout, Inventory};
use crate::render::boot::INITRD_HOST_KEY;

pub fn key_path(secrets: &Path, hostname: &str) -> PathBuf {
    secrets.join("luks").join(format!("{hostname}.key"))
}

/// The initrd SSH server's private host key, inside the node's `--extra-files` root.
pub fn initrd_host_key_path(secrets: &Path, hostname: &str) -> PathBuf {
    secrets.join("nodes").join(hostname).join(INITRD_HOST_KEY)
}

/// Its public half (`ssh-ed25519 AAAA… <host>-initrd`), what `plasmagen unlock` pins.
pub fn initrd_host_pub_path(secrets: &Path, hostname: &str) -> PathBuf {
    secrets
        .join("luks")
        .join(format!("{hostname}.initrd-ssh.pub"))
}

/// Nodes that unlock over initrd SSH and have no host key yet.
pub fn missing_host_keys(inv: &Inventory, secrets: &Path) -> Vec<String> {
    inv.nodes
        .iter()
        .filter(|n| {
            inv.unlocks_over_initrd_ssh(n)
                && crate::hostkeys::pair_missing(
                    &initrd_host_key_path(secrets, &n.hostname),
                    &initrd_host_pub_path(secrets, &n.hostname),
                )
        })
        .map(|n| n.hostname.clone())
        .collect()
}

/// Create the missing initrd host keys; returns the hostnames that got one. An existing
/// private key is never replaced (clients pinned it); a lost public half is an error.
pub fn ensure_host_keys(inv: &Inventory, secrets: &Path) -> Result<Vec<String>, Error> {
    let todo = missing_host_keys(inv, secrets);
    for host in &todo {
        let private = initrd_host_key_path(secrets, host);
        let public = initrd_host_pub_path(secrets, host);
        let key_dir = private.parent().expect("key path has a parent");
        // etc/secrets lands on the node's /etc/secrets: keep it traversable, the key dir private.
        let etc_secrets = key_dir.parent().expect("initrd dir has a parent");
        fs::create_dir_all(etc_secrets).map_err(Error::io_at(etc_secrets))?;
        fs::set_permissions(etc_secrets, fs::Permissions::from_mode(0o755))
            .map_err(Error::io_at(etc_secrets))?;
        crate::output::ensure_private_dir(key_dir).map_err(Error::io_at(key_dir))?;
        let pub_dir = public.parent().expect("pub path has a parent");
        crate::output::ensure_private_dir(pub_dir).map_err(Error::io_at(pub_dir))?;
        crate::hostkeys::create_pair(&private, &public, 0o600, &format!("{host}-initrd"))?;
    }
    Ok(todo)
}

/// Write a new 0600 file atomically; never replace one another run created meanwhile.
pub(crate) fn write_new(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".new-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(Error::io_at(dir))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(Error::io_at(path))?;
    tmp.as_file().sync_all().map_err(Error::io_at(path))?;
    tmp.persist_noclobber(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
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
    crate::output::ensure_private_dir(&dir).map_err(Error::io_at(&dir))?;
    let random = Path::new("/dev/urandom");
    let mut urandom = fs::File::open(random).map_err(Error::io_at(random))?;
    for host in &todo {
        let mut raw = [0u8; 32];
        urandom.read_exact(&mut raw).map_err(Error::io_at(random))?;
        // Hex, no trailing newline: the same bytes work as a key file and as a typed passphrase.
        let pass: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        write_new(&dir, &key_path(secrets, host), pass.as_bytes())?;
    }
    Ok(todo)
}
