//! `<state-dir>/<service>.joined`: written once the node is a healthy member; its presence
//! makes every later run a no-op (the units are oneshots that may be restarted at will).

use std::io::Write;
use std::path::{Path, PathBuf};

use plasma_wire::Phase;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub node_id: String,
    pub service: String,
    /// `joined` or `bootstrapped`.
    pub phase: Phase,
    pub at: String,
}

pub fn path(state_dir: &Path, service: &str) -> PathBuf {
    state_dir.join(format!("{service}.joined"))
}

/// The marker if present. An unreadable or foreign-format marker still counts as present:
/// the file is only ever created after success, and joining twice is what we must avoid.
pub fn read(state_dir: &Path, service: &str) -> Option<Result<Marker, String>> {
    let p = path(state_dir, service);
    match std::fs::read(&p) {
        Ok(b) => Some(serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(format!("{}: {e}", p.display()))),
    }
}

/// Atomic: a temp file in the same directory, fsynced, renamed over the target, directory
/// fsynced. A crash leaves either no marker or a complete one.
pub fn write(state_dir: &Path, marker: &Marker) -> std::io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(state_dir)?;
    serde_json::to_writer(&mut tmp, marker)?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all()?;
    tmp.persist(path(state_dir, &marker.service))
        .map_err(|e| e.error)?;
    std::fs::File::open(state_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path(), "chainfire").is_none());
        let m = Marker {
            node_id: "node04".into(),
            service: "chainfire".into(),
            phase: Phase::Joined,
            at: "2025-01-01T00:00:00Z".into(),
        };
        write(dir.path(), &m).unwrap();
        assert_eq!(read(dir.path(), "chainfire").unwrap().unwrap(), m);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["chainfire.joined"]);
    }

    #[test]
    fn garbage_marker_still_counts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path(), "flaredb"), "x").unwrap();
        assert!(read(dir.path(), "flaredb").unwrap().is_err());
    }
}
