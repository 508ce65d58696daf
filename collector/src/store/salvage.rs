//! Reading what is left of a damaged table, for [`super::recover()`].
//!
//! A scan in rowid order stops where SQLite reports a damaged page; the next readable row is
//! found by probing `rowid >= p` one id at a time (a leaf holds a few dozen rows), then with a
//! doubling step (a damaged interior page hides many), bisecting back after an overshoot, so
//! one bad page costs only the rows it holds.

use rusqlite::{Connection, OptionalExtension, Row};

use super::recover::TableRecovery;

/// Probes one id at a time this often before doubling the step.
const LINEAR_PROBES: i64 = 64;

/// Copies one row (columns from 1, after the rowid); `Ok(false)`: damaged, not kept.
pub(super) type Copy<'a> = dyn FnMut(i64, &Row<'_>) -> rusqlite::Result<bool> + 'a;

/// Read every reachable row of `table` in rowid order into `copy`, stepping over damage.
pub(super) fn salvage(
    src: &Connection,
    table: &str,
    cols: &str,
    t: &mut TableRecovery,
    copy: &mut Copy<'_>,
) {
    let scan = format!("SELECT rowid, {cols} FROM {table} WHERE rowid >= ?1 ORDER BY rowid");
    let probe = format!("SELECT rowid FROM {table} WHERE rowid >= ?1 ORDER BY rowid LIMIT 1");
    let mut from = 1;
    loop {
        match scan_from(src, &scan, from, t, copy) {
            Ok(()) => return,
            Err(stuck) => {
                t.unreadable_regions += 1;
                match next_readable(src, &probe, stuck) {
                    Some(next) => from = next,
                    None => return,
                }
            }
        }
    }
}

/// `Err(id)`: SQLite failed before the row at or after `id` could be read.
fn scan_from(
    src: &Connection,
    sql: &str,
    from: i64,
    t: &mut TableRecovery,
    copy: &mut Copy<'_>,
) -> Result<(), i64> {
    let mut next = from;
    let mut stmt = src.prepare(sql).map_err(|_| next)?;
    let mut rows = stmt.query([from]).map_err(|_| next)?;
    loop {
        match rows.next() {
            Ok(Some(row)) => {
                let Ok(id) = row.get::<_, i64>(0) else {
                    return Err(next);
                };
                next = id.saturating_add(1);
                match copy(id, row) {
                    Ok(true) => t.recovered += 1,
                    Ok(false) | Err(_) => t.damaged += 1,
                }
            }
            Ok(None) => return Ok(()),
            Err(_) => return Err(next),
        }
    }
}

/// The first rowid after `stuck` that SQLite can reach, if any.
fn next_readable(src: &Connection, sql: &str, stuck: i64) -> Option<i64> {
    // Ok(Some(rowid)): readable from `p` on; Ok(None): nothing after `p`; Err: still damaged.
    let probe = |p: i64| -> Result<Option<i64>, ()> {
        src.query_row(sql, [p], |r| r.get::<_, i64>(0))
            .optional()
            .map_err(|_| ())
    };
    let (mut bad, mut step, mut tries) = (stuck, 1i64, 0i64);
    loop {
        let p = bad.checked_add(step)?;
        match probe(p) {
            Ok(found) if step == 1 => return found,
            Ok(mut found) => {
                // Doubling overshot: bisect back to the first readable position.
                let mut good = p;
                while good - bad > 1 {
                    let mid = bad + (good - bad) / 2;
                    match probe(mid) {
                        Ok(f) => (good, found) = (mid, f),
                        Err(()) => bad = mid,
                    }
                }
                return found;
            }
            Err(()) => {
                bad = p;
                tries += 1;
                if tries >= LINEAR_PROBES {
                    step = step.checked_mul(2)?;
                }
            }
        }
    }
}
