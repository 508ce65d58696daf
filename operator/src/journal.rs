//! What a provisioning run finished, per node, in `OUT_DIR/logs/provision-state.json`, so that
//! `--resume` continues where a failed or interrupted run stopped instead of starting over.
//! Written atomically (temporary file + rename) after every step.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A node's steps in order; a later step implies the earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Guard passed, machine powered into PXE (or already in the installer).
    Powered,
    /// The installer answered SSH.
    InInstaller,
    /// nixos-anywhere (kexec, disko, install) succeeded.
    Installed,
    /// The collector serves the local-disk boot script.
    MarkedInstalled,
    /// The node was told to reboot into its system.
    Rebooted,
    /// LUKS nodes: the passphrase reached the initrd.
    Unlocked,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Powered => "powered",
            Step::InInstaller => "in-installer",
            Step::Installed => "installed",
            Step::MarkedInstalled => "marked-installed",
            Step::Rebooted => "rebooted",
            Step::Unlocked => "unlocked",
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    nodes: BTreeMap<String, Step>,
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    record: Mutex<Record>,
}

impl Journal {
    pub const FILE: &'static str = "provision-state.json";

    /// Opens `logs/provision-state.json`; `fresh` forgets what an earlier run did.
    pub fn open(log_dir: &Path, fresh: bool) -> Result<Journal, String> {
        let path = log_dir.join(Self::FILE);
        let record = if fresh {
            Record::default()
        } else {
            match fs::read(&path) {
                Ok(bytes) => serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{}: {e} (delete it to start over)", path.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Record::default(),
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        };
        Ok(Journal {
            path,
            record: Mutex::new(record),
        })
    }

    pub fn done(&self, node: &str) -> Option<Step> {
        self.lock().nodes.get(node).copied()
    }

    /// Records `step` for `node` and writes the file.
    pub fn record(&self, node: &str, step: Step) -> Result<(), String> {
        let mut record = self.lock();
        record.nodes.insert(node.to_string(), step);
        let text = serde_json::to_vec_pretty(&*record).map_err(|e| e.to_string())?;
        write_atomic(&self.path, &text).map_err(|e| format!("{}: {e}", self.path.display()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_survive_a_new_run_unless_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), false).unwrap();
        assert_eq!(journal.done("node01"), None);
        journal.record("node01", Step::Installed).unwrap();
        drop(journal);
        let again = Journal::open(dir.path(), false).unwrap();
        assert_eq!(again.done("node01"), Some(Step::Installed));
        assert!(Step::Installed < Step::MarkedInstalled);
        assert_eq!(
            Journal::open(dir.path(), true).unwrap().done("node01"),
            None
        );
        fs::write(dir.path().join(Journal::FILE), "{").unwrap();
        assert!(
            Journal::open(dir.path(), false)
                .unwrap_err()
                .contains("delete it")
        );
    }
}
