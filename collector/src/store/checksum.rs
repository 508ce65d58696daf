//! Per-row checksums (CRC-32) of `history`, `discovered` and `store_meta`.
//!
//! SQLite checks the structure of its pages, not the bytes of a record: two changed bytes in a
//! message or a phase name read back as a valid, different row (the replay used to skip a row
//! whose phase no longer parsed, so a report vanished without a word). Each row carries a CRC
//! of its content, computed by the writer and verified by the start-up replay, which reads
//! every row anyway.

/// CRC-32 (IEEE), slicing-by-8 tables built at compile time (eight bytes per step: the
/// start-up replay checksums every row, ~80 MB for a 100 MB database).
const TABLES: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        s += 1;
    }
    t
};

struct Crc(u32);

impl Crc {
    fn new(tag: &[u8]) -> Crc {
        let mut c = Crc(!0);
        c.bytes(tag);
        c
    }

    fn bytes(&mut self, b: &[u8]) {
        let t = &TABLES;
        let mut c = self.0;
        let mut chunks = b.chunks_exact(8);
        for w in &mut chunks {
            let lo = c ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            c = t[7][(lo & 0xff) as usize]
                ^ t[6][((lo >> 8) & 0xff) as usize]
                ^ t[5][((lo >> 16) & 0xff) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][w[4] as usize]
                ^ t[2][w[5] as usize]
                ^ t[1][w[6] as usize]
                ^ t[0][w[7] as usize];
        }
        for &x in chunks.remainder() {
            c = t[0][((c ^ u32::from(x)) & 0xff) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    fn int(&mut self, v: i64) {
        self.bytes(&v.to_le_bytes());
    }

    /// Length-prefixed, so field boundaries and NULL vs "" count.
    fn text(&mut self, s: Option<&str>) {
        match s {
            None => self.bytes(&[0]),
            Some(s) => {
                self.bytes(&[1]);
                self.bytes(&(s.len() as u64).to_le_bytes());
                self.bytes(s.as_bytes());
            }
        }
    }

    fn finish(self) -> i64 {
        i64::from(!self.0)
    }
}

/// One `history` row, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRow<'a> {
    pub id: i64,
    pub node: &'a str,
    pub kind: &'a str,
    pub service: Option<&'a str>,
    pub phase: Option<&'a str>,
    pub status: Option<&'a str>,
    pub message: &'a str,
    pub sent_at: Option<&'a str>,
    pub received_ms: i64,
    pub actor: Option<&'a str>,
}

impl HistoryRow<'_> {
    pub fn crc(&self) -> i64 {
        let mut c = Crc::new(b"history");
        c.int(self.id);
        c.text(Some(self.node));
        c.text(Some(self.kind));
        c.text(self.service);
        c.text(self.phase);
        c.text(self.status);
        c.text(Some(self.message));
        c.text(self.sent_at);
        c.int(self.received_ms);
        c.text(self.actor);
        c.finish()
    }
}

/// One `history` row as read back: columns `node` … `actor`, `crc` from index 1 of a query
/// (the id passed in), what the replay and the salvage both verify.
pub struct StoredHistory {
    pub id: i64,
    pub node: String,
    pub kind: String,
    pub service: Option<String>,
    pub phase: Option<String>,
    pub status: Option<String>,
    pub message: String,
    pub sent_at: Option<String>,
    pub received_ms: i64,
    pub actor: Option<String>,
    crc: Option<i64>,
}

impl StoredHistory {
    pub fn read(id: i64, r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredHistory> {
        Ok(StoredHistory {
            id,
            node: r.get(1)?,
            kind: r.get(2)?,
            service: r.get(3)?,
            phase: r.get(4)?,
            status: r.get(5)?,
            message: r.get(6)?,
            sent_at: r.get(7)?,
            received_ms: r.get(8)?,
            actor: r.get(9)?,
            crc: r.get(10)?,
        })
    }

    pub fn row(&self) -> HistoryRow<'_> {
        HistoryRow {
            id: self.id,
            node: &self.node,
            kind: &self.kind,
            service: self.service.as_deref(),
            phase: self.phase.as_deref(),
            status: self.status.as_deref(),
            message: &self.message,
            sent_at: self.sent_at.as_deref(),
            received_ms: self.received_ms,
            actor: self.actor.as_deref(),
        }
    }

    /// Its checksum matches; a row written before checksums existed (schema 1, NULL) is not
    /// verified.
    pub fn intact(&self) -> bool {
        self.crc.is_none_or(|crc| crc == self.row().crc())
    }
}

/// One `discovered` row, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct DiscoveredRow<'a> {
    pub mac: &'a str,
    pub report: &'a str,
    pub remote: Option<&'a str>,
    pub first_ms: i64,
    pub last_ms: i64,
    pub count: i64,
}

impl DiscoveredRow<'_> {
    pub fn crc(&self) -> i64 {
        let mut c = Crc::new(b"discovered");
        c.text(Some(self.mac));
        c.text(Some(self.report));
        c.text(self.remote);
        c.int(self.first_ms);
        c.int(self.last_ms);
        c.int(self.count);
        c.finish()
    }
}

/// The store's counters (`store_meta`, mirrored in the `<db>.ack` sidecar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Random at creation: ties a sidecar to its database.
    pub store_id: i64,
    /// Writes acknowledged (2xx) since the database was created.
    pub acked: i64,
    /// Rows in `history` (ids are 1..=history: the writer never deletes).
    pub history: i64,
    /// Rows in `discovered`.
    pub discovered: i64,
}

impl Counters {
    pub fn crc(&self) -> i64 {
        let mut c = Crc::new(b"store_meta");
        c.int(self.store_id);
        c.int(self.acked);
        c.int(self.history);
        c.int(self.discovered);
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        let mut c = Crc(!0);
        c.bytes(b"123456789");
        assert_eq!(c.finish(), 0xCBF4_3926);
        // Split at every point (the 8-byte path and the tail agree).
        let text = b"The quick brown fox jumps over the lazy dog";
        for cut in 0..text.len() {
            let mut c = Crc(!0);
            c.bytes(&text[..cut]);
            c.bytes(&text[cut..]);
            assert_eq!(c.finish(), 0x414F_A339, "cut at {cut}");
        }
    }

    #[test]
    fn any_changed_field_changes_the_checksum() {
        let row = HistoryRow {
            id: 7,
            node: "node01",
            kind: "report",
            service: Some("chainfire"),
            phase: Some("joining"),
            status: Some("in-progress"),
            message: "report 7",
            sent_at: None,
            received_ms: 1,
            actor: None,
        };
        let base = row.crc();
        assert_ne!(base, HistoryRow { id: 8, ..row }.crc());
        assert_ne!(
            base,
            HistoryRow {
                phase: Some("jXiXing"),
                ..row
            }
            .crc()
        );
        assert_ne!(
            base,
            HistoryRow {
                sent_at: Some(""),
                ..row
            }
            .crc()
        );
        // A byte moved across a field boundary still counts.
        assert_ne!(
            HistoryRow {
                node: "node0",
                kind: "1report",
                ..row
            }
            .crc(),
            base
        );
    }
}
