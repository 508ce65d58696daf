//! The `<db>.ack` sidecar: the store's counters as of the last acknowledged commit.
//!
//! SQLite drops a WAL frame whose checksum fails, and every frame after it, without an error:
//! the database then opens "healthy" with the newest commits gone. Nothing inside the database
//! can notice that, so the writer also records, outside it, how many writes it acknowledged.
//! At start a database that holds fewer acknowledged writes than its sidecar lost some.
//!
//! Cost: one 160-byte `pwrite` per group commit, after the commit's fsync and before the 2xx
//! (so the sidecar never runs ahead of what is durable, and is exact after a crash of the
//! process: the page cache survives it). Its `fdatasync` runs on a thread of its own at most
//! every [`SYNC_EVERY`], off the path of any request: after a power loss the sidecar may lag
//! by that much, which makes the check weaker for that window, never wrong.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::time::Duration;

use super::checksum::Counters;

/// Longest time an acknowledged write's sidecar update stays only in the page cache.
pub const SYNC_EVERY: Duration = Duration::from_millis(200);

const MAGIC: &str = "plasma-collector-ack v1";
/// Fixed length: every update overwrites the same bytes, the file never changes size.
const LEN: usize = 160;

/// `<db>.ack`.
pub fn path_of(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".ack");
    PathBuf::from(p)
}

fn encode(c: &Counters) -> [u8; LEN] {
    let text = format!(
        "{MAGIC} store={:016x} acked={:020} history={:020} discovered={:020}",
        c.store_id as u64, c.acked, c.history, c.discovered
    );
    let mut out = [b' '; LEN];
    out[..text.len()].copy_from_slice(text.as_bytes());
    out[LEN - 1] = b'\n';
    out
}

fn decode(bytes: &[u8]) -> Option<Counters> {
    let text = std::str::from_utf8(bytes).ok()?;
    let rest = text.strip_prefix(MAGIC)?;
    let mut c = Counters {
        store_id: 0,
        acked: -1,
        history: -1,
        discovered: -1,
    };
    for field in rest.split_whitespace() {
        let (k, v) = field.split_once('=')?;
        match k {
            "store" => c.store_id = u64::from_str_radix(v, 16).ok()? as i64,
            "acked" => c.acked = v.parse().ok()?,
            "history" => c.history = v.parse().ok()?,
            "discovered" => c.discovered = v.parse().ok()?,
            _ => return None,
        }
    }
    (c.acked >= 0 && c.history >= 0 && c.discovered >= 0).then_some(c)
}

/// What the sidecar says: `Ok(None)` when there is none, `Err` (a sentence) when it is
/// unreadable or garbled.
pub fn read(db: &Path) -> Result<Option<Counters>, String> {
    let path = path_of(db);
    match std::fs::read(&path) {
        Ok(bytes) => decode(&bytes)
            .map(Some)
            .ok_or_else(|| format!("{} is not a collector ack file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Replace the sidecar with `c`, durably (temporary file, fsync, rename, fsync the directory).
pub fn replace(db: &Path, c: &Counters) -> std::io::Result<()> {
    let path = path_of(db);
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&encode(c))?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The open sidecar the writer updates after every commit.
pub struct AckFile {
    file: File,
    dirty: Arc<AtomicBool>,
    kick: SyncSender<()>,
}

impl AckFile {
    /// Write `c` durably, then keep the file open for [`AckFile::record`].
    pub fn start(db: &Path, c: &Counters) -> std::io::Result<AckFile> {
        replace(db, c)?;
        let file = OpenOptions::new().write(true).open(path_of(db))?;
        let dirty = Arc::new(AtomicBool::new(false));
        let (kick, wake) = mpsc::sync_channel::<()>(1);
        let sync = file.try_clone()?;
        let flag = dirty.clone();
        std::thread::Builder::new()
            .name("collector-ack-sync".into())
            .spawn(move || {
                // Ends when the writer (the only sender) is gone, after a last sync.
                while wake.recv().is_ok() {
                    std::thread::sleep(SYNC_EVERY);
                    flag.store(false, Ordering::SeqCst);
                    if let Err(e) = sync.sync_data() {
                        tracing::warn!(error = %e, "cannot fsync the ack file");
                    }
                }
            })?;
        Ok(AckFile { file, dirty, kick })
    }

    /// Record the counters of a commit that is durable (called before answering it).
    pub fn record(&self, c: &Counters) -> std::io::Result<()> {
        self.file.write_all_at(&encode(c), 0)?;
        if !self.dirty.swap(true, Ordering::SeqCst) {
            let _ = self.kick.try_send(());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let c = Counters {
            store_id: -5,
            acked: 123,
            history: 100,
            discovered: 2,
        };
        let bytes = encode(&c);
        assert_eq!(bytes.len(), LEN);
        assert_eq!(decode(&bytes), Some(c));
        let mut bad = bytes;
        bad[30] = b'x';
        assert_eq!(decode(&bad), None);
        assert_eq!(decode(b"plasma-collector-ack v1 acked=1"), None);
    }

    #[test]
    fn record_overwrites_in_place() {
        let dir = tempfile_dir();
        let db = dir.join("c.db");
        let mut c = Counters {
            store_id: 1,
            acked: 1,
            history: 1,
            discovered: 0,
        };
        let ack = AckFile::start(&db, &c).unwrap();
        c.acked = 99;
        ack.record(&c).unwrap();
        assert_eq!(read(&db), Ok(Some(c)));
        assert_eq!(std::fs::metadata(path_of(&db)).unwrap().len(), LEN as u64);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "plasma-ack-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
