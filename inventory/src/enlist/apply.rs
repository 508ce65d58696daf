//! Enlisting into an inventory file: the one code path `plasmagen enlist` and the collector's
//! `POST /v1/discovered/{mac}/enlist` share. [`apply`] plans every machine against the file's
//! current text, edits that text and validates the result with the full inventory loader;
//! [`write_in_place`] then replaces the file atomically. Nothing is written when `apply` fails.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use plasma_wire::discover::DiscoverReport;

use super::edit::{self, EditError};
use super::{EnlistError, Entry, Request, Taken, plan};
use crate::diag::Severity;
use crate::inventory::{self, Inventory, LoadError, Node};

/// A discovered machine: its MAC (normalised, as the collector keys it) and the facts its
/// discovery image reported.
#[derive(Debug, Clone)]
pub struct Machine {
    pub mac: String,
    pub facts: DiscoverReport,
}

/// What [`apply`] decided: the entries, the file's new text and the inventory it loads as.
#[derive(Debug)]
pub struct Applied {
    pub entries: Vec<Entry>,
    pub text: String,
    /// The validated result (what a collector serves after the edit).
    pub inventory: Inventory,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The file as it is now does not load (edited by hand since?).
    #[error("the inventory does not load as it is: {}", summary(.0))]
    Current(LoadError),
    #[error("{mac} is already enlisted as {hostname}")]
    Enlisted { mac: String, hostname: String },
    #[error(transparent)]
    Plan(#[from] EnlistError),
    #[error("{}: {source}", path.display())]
    Edit {
        path: PathBuf,
        #[source]
        source: EditError,
    },
    /// The edited text fails validation (e.g. a hostname pattern giving an invalid name).
    #[error("the result would not be a valid inventory: {}", summary(.0))]
    Invalid(LoadError),
}

/// The error diagnostics of a failed load on one line each (warnings left out).
fn summary(e: &LoadError) -> String {
    match e {
        LoadError::Invalid(diags) => diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

/// The node that has `mac` as its PXE MAC or one of its production MACs (any case).
pub fn enlisted<'a>(inv: &'a Inventory, mac: &str) -> Option<&'a Node> {
    inv.nodes.iter().find(|n| {
        n.mac.as_str().eq_ignore_ascii_case(mac)
            || n.production_macs
                .iter()
                .any(|m| m.as_str().eq_ignore_ascii_case(mac))
    })
}

/// Plan an entry for each machine (in order, each taking its hostname and addresses before the
/// next) against `text`, the current content of the inventory file at `path`; edit the text and
/// validate the result. A machine the inventory already has is an error: callers that skip
/// those ask [`enlisted`] first.
pub fn apply(
    path: &Path,
    text: &str,
    machines: &[Machine],
    req: &Request,
) -> Result<Applied, ApplyError> {
    let current = inventory::load_str(path, text)
        .map_err(ApplyError::Current)?
        .inventory;
    let mut taken = Taken::of(&current);
    let mut entries = Vec::with_capacity(machines.len());
    for m in machines {
        if let Some(n) = enlisted(&current, &m.mac) {
            return Err(ApplyError::Enlisted {
                mac: m.mac.clone(),
                hostname: n.hostname.clone(),
            });
        }
        // The collector's key is the normalised MAC; the report may spell it otherwise.
        let mut facts = m.facts.clone();
        facts.primary_mac = m.mac.clone();
        entries.push(plan(&current, &facts, req, &mut taken)?);
    }
    let json = path.extension().is_some_and(|e| e == "json");
    let new_text = if json {
        edit::json(text, &entries)
    } else {
        edit::toml(text, &entries)
    }
    .map_err(|source| ApplyError::Edit {
        path: path.to_path_buf(),
        source,
    })?;
    // The same loader every command uses: the result must be a valid inventory.
    let inventory = inventory::load_str(path, &new_text)
        .map_err(ApplyError::Invalid)?
        .inventory;
    Ok(Applied {
        entries,
        text: new_text,
        inventory,
    })
}

#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Temporary file in the same directory, same mode, then rename: never half an inventory.
/// Needs write access to the directory (not only the file).
pub fn write_in_place(path: &Path, text: &str) -> Result<(), WriteError> {
    let at = |p: &Path| {
        let p = p.to_path_buf();
        move |source| WriteError { path: p, source }
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (tmp, mut file) = create_temp(dir, path).map_err(at(dir))?;
    let res = (|| {
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        if let Ok(meta) = fs::metadata(path) {
            fs::set_permissions(&tmp, meta.permissions())?;
        }
        fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(at(path)(e));
    }
    // The rename is durable only once the directory is synced.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `.NAME.PID-N.tmp` next to `path`, created exclusively (never someone else's file).
fn create_temp(dir: &Path, path: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map_or_else(|| "inventory".into(), |n| n.to_string_lossy().into_owned());
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        match opts.open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use plasma_wire::discover::{Cpu, Disk};

    use super::*;
    use crate::inventory::{DiskLayout, Role};

    const RUNBOOK: &str = include_str!("../../../examples/runbook.toml");

    fn machine(mac: &str, disks: Vec<Disk>) -> Machine {
        Machine {
            mac: mac.into(),
            facts: DiscoverReport {
                // Another spelling than the key: the key is what the entry gets.
                primary_mac: mac.to_ascii_uppercase().replace(':', "-"),
                nics: vec![],
                disks,
                memory_bytes: 64 << 30,
                cpu: Cpu {
                    model: "x".into(),
                    logical_cpus: 8,
                },
                hostname: None,
                firmware: Some("bios".into()),
                bmc: None,
            },
        }
    }

    fn ssd() -> Vec<Disk> {
        vec![Disk {
            name: "sda".into(),
            size_bytes: 240 << 30,
            by_id: vec!["/dev/disk/by-id/ata-SSD_1".into()],
            model: None,
            rotational: Some(false),
            removable: Some(false),
        }]
    }

    fn worker(pattern: Option<&str>) -> Request {
        Request {
            role: Role::Worker,
            hostname_pattern: pattern.map(str::to_string),
            disks: None,
            disk_layout: DiskLayout::Single,
            bmc_user: None,
        }
    }

    #[test]
    fn apply_plans_edits_and_validates() {
        let path = Path::new("inventory.toml");
        let m = [
            machine("52:54:00:aa:bb:01", ssd()),
            machine("52:54:00:aa:bb:02", ssd()),
        ];
        let a = apply(path, RUNBOOK, &m, &worker(None)).unwrap();
        assert!(a.text.starts_with(RUNBOOK));
        let names: Vec<_> = a.entries.iter().map(|e| e.hostname.as_str()).collect();
        assert_eq!(names, ["node06", "node07"]);
        let node = a.inventory.node("node07").expect("in the loaded result");
        assert_eq!(node.mac.as_str(), "52:54:00:aa:bb:02");
        assert_ne!(a.entries[0].provisioning_ip, a.entries[1].provisioning_ip);

        // A MAC the file has: refused, naming the node.
        let again = apply(path, &a.text, &m[..1], &worker(None)).unwrap_err();
        assert!(
            matches!(&again, ApplyError::Enlisted { hostname, .. } if hostname == "node06"),
            "{again}"
        );
        // No usable disk: the plan's error.
        let e = apply(
            path,
            RUNBOOK,
            &[machine("52:54:00:aa:bb:03", vec![])],
            &worker(None),
        )
        .unwrap_err();
        assert!(
            matches!(e, ApplyError::Plan(EnlistError::Disks { .. })),
            "{e}"
        );
        // A pattern giving names the validator refuses: the result is invalid.
        let e = apply(path, RUNBOOK, &m[..1], &worker(Some("bad_name##"))).unwrap_err();
        assert!(matches!(e, ApplyError::Invalid(_)), "{e}");
        assert!(e.to_string().contains("hostname"), "{e}");
        // The file on disk no longer loads: said so, nothing planned.
        let e = apply(path, "[cluster]\n", &m[..1], &worker(None)).unwrap_err();
        assert!(matches!(e, ApplyError::Current(_)), "{e}");
    }

    #[test]
    fn write_in_place_keeps_the_mode_and_leaves_no_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("enlist-write-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("inventory.toml");
        fs::write(&path, "old\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_in_place(&path, "new\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("inventory.toml")]);
        // A directory that does not exist: an error naming it, nothing created.
        let err = write_in_place(&dir.join("missing/inventory.toml"), "x").unwrap_err();
        assert!(err.path.ends_with("missing"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
