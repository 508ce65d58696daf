//! Discovered machines as the fleet holds them, and the budget that bounds them.
//!
//! Anything on the provisioning network can post a discovery report, so the table is bounded
//! by rows and by stored bytes. When a new report would go over either, the unknown machines
//! seen least recently are evicted (never refused: the newest report is the one an operator is
//! waiting for). An inventory node's MAC is never evicted. The writer plans evictions with
//! [`DiscoveredSet::plan_evictions`] before a commit, deletes the rows in the same transaction
//! and applies them here afterwards, so the table and this set stay the same.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use plasma_wire::discover::DiscoverReport;

#[derive(Debug, Clone)]
pub struct Discovered {
    pub report: DiscoverReport,
    pub remote: Option<String>,
    pub first_ms: i64,
    pub last_ms: i64,
    pub count: u64,
    /// Bytes of the stored report (its JSON), what the byte budget counts.
    pub size: usize,
}

/// Limits of the discovered table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub rows: usize,
    pub bytes: usize,
}

impl Default for Budget {
    fn default() -> Self {
        // A real machine's facts are 1-4 KiB: 10,000 of them fit the bytes as well.
        Budget {
            rows: 10_000,
            bytes: 32 << 20,
        }
    }
}

/// Keyed by normalised MAC, with an index by last report for eviction.
#[derive(Debug, Default)]
pub struct DiscoveredSet {
    by_mac: BTreeMap<String, Discovered>,
    /// `(last_ms, mac)` of every entry: the first is the least recently seen.
    by_age: BTreeSet<(i64, String)>,
    bytes: usize,
    /// MACs of inventory nodes: never evicted.
    protected: HashSet<String>,
    /// Machines evicted since the collector started.
    evicted: u64,
}

impl DiscoveredSet {
    pub fn get(&self, mac: &str) -> Option<&Discovered> {
        self.by_mac.get(mac)
    }

    pub fn contains_key(&self, mac: &str) -> bool {
        self.by_mac.contains_key(mac)
    }

    pub fn len(&self) -> usize {
        self.by_mac.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }

    /// Stored bytes of every report held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// In MAC order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Discovered)> {
        self.by_mac.iter()
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.by_mac.keys()
    }

    /// The MACs of the inventory served now (replaces the earlier set).
    pub fn protect<'a>(&mut self, macs: impl IntoIterator<Item = &'a str>) {
        self.protected = macs.into_iter().map(str::to_string).collect();
    }

    pub fn is_protected(&self, mac: &str) -> bool {
        self.protected.contains(mac)
    }

    pub fn insert(&mut self, mac: String, d: Discovered) {
        self.remove(&mac);
        self.bytes += d.size;
        self.by_age.insert((d.last_ms, mac.clone()));
        self.by_mac.insert(mac, d);
    }

    pub fn remove(&mut self, mac: &str) -> Option<Discovered> {
        let d = self.by_mac.remove(mac)?;
        self.bytes -= d.size;
        self.by_age.remove(&(d.last_ms, mac.to_string()));
        Some(d)
    }

    /// Forget what [`DiscoveredSet::plan_evictions`] chose (committed by the writer).
    pub fn evict(&mut self, macs: &[String]) {
        for mac in macs {
            self.remove(mac);
        }
        self.evicted += macs.len() as u64;
    }

    /// Machines evicted since the collector started.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Most recently seen first.
    pub fn most_recent(&self) -> impl Iterator<Item = (&String, &Discovered)> {
        self.by_age
            .iter()
            .rev()
            .map(|(_, mac)| (mac, &self.by_mac[mac]))
    }

    /// A new report from `mac`: the entry is created or replaced, its count and first sight
    /// kept.
    pub fn record(
        &mut self,
        mac: &str,
        report: DiscoverReport,
        size: usize,
        remote: Option<String>,
        at_ms: i64,
    ) {
        let (first_ms, count) = self
            .remove(mac)
            .map_or((at_ms, 1), |d| (d.first_ms, d.count + 1));
        self.insert(
            mac.to_string(),
            Discovered {
                report,
                remote,
                first_ms,
                last_ms: at_ms,
                count,
                size,
            },
        );
    }

    /// Which entries to delete so that the set, with `incoming` reports (MAC, stored bytes;
    /// in order, a MAC may repeat) applied, fits `budget`: unknown machines, least recently
    /// seen first, never one of `incoming`. Fewer than needed when only inventory MACs and
    /// incoming ones are left (those are kept over budget rather than refused).
    pub fn plan_evictions(&self, incoming: &[(&str, usize)], budget: Budget) -> Vec<String> {
        let mut rows = self.by_mac.len();
        let mut bytes = self.bytes;
        let mut latest: HashMap<&str, usize> = HashMap::new();
        for &(mac, size) in incoming {
            let before = match latest.insert(mac, size) {
                Some(prev) => Some(prev),
                None => self.by_mac.get(mac).map(|d| d.size),
            };
            match before {
                Some(prev) => bytes = bytes - prev + size,
                None => {
                    rows += 1;
                    bytes += size;
                }
            }
        }
        let mut victims = Vec::new();
        for (_, mac) in &self.by_age {
            if rows <= budget.rows && bytes <= budget.bytes {
                break;
            }
            if self.protected.contains(mac) || latest.contains_key(mac.as_str()) {
                continue;
            }
            rows -= 1;
            bytes -= self.by_mac[mac].size;
            victims.push(mac.clone());
        }
        victims
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plasma_wire::discover::Cpu;

    fn report(mac: &str) -> DiscoverReport {
        DiscoverReport {
            primary_mac: mac.into(),
            nics: vec![],
            disks: vec![],
            memory_bytes: 1,
            cpu: Cpu {
                model: "x".into(),
                logical_cpus: 1,
            },
            hostname: None,
            firmware: None,
            bmc: None,
        }
    }

    fn mac(i: u8) -> String {
        format!("52:54:00:00:00:{i:02x}")
    }

    fn set(n: u8, size: usize) -> DiscoveredSet {
        let mut s = DiscoveredSet::default();
        for i in 0..n {
            s.record(&mac(i), report(&mac(i)), size, None, i64::from(i));
        }
        s
    }

    #[test]
    fn evicts_least_recently_seen_unknown_first() {
        let mut s = set(5, 100);
        s.protect([mac(0).as_str()]);
        // mac(1) reported again: now the most recent.
        s.record(&mac(1), report(&mac(1)), 100, None, 10);
        let budget = Budget {
            rows: 5,
            bytes: usize::MAX,
        };
        let new = mac(9);
        assert_eq!(
            s.plan_evictions(&[(&new, 100)], budget),
            vec![mac(2)],
            "mac(0) is an inventory MAC, mac(1) was seen again"
        );
        assert_eq!(s.get(&mac(1)).unwrap().count, 2);
        assert_eq!(s.get(&mac(1)).unwrap().first_ms, 1);
        // A known MAC reporting again needs no room.
        assert!(s.plan_evictions(&[(&mac(3), 100)], budget).is_empty());
    }

    #[test]
    fn bytes_budget_counts_replacements_and_repeats() {
        let s = set(4, 1_000);
        assert_eq!(s.bytes(), 4_000);
        let budget = Budget {
            rows: 100,
            bytes: 4_500,
        };
        // mac(3) grows by 2,000 bytes: 6,000 → two oldest go.
        assert_eq!(
            s.plan_evictions(&[(&mac(3), 2_000), (&mac(3), 3_000)], budget),
            vec![mac(0), mac(1)]
        );
        // Only incoming and protected entries left: kept over budget, not refused.
        let tiny = Budget { rows: 1, bytes: 1 };
        let all: Vec<(String, usize)> = (0..4).map(|i| (mac(i), 1_000)).collect();
        let incoming: Vec<(&str, usize)> = all.iter().map(|(m, n)| (m.as_str(), *n)).collect();
        assert!(s.plan_evictions(&incoming, tiny).is_empty());
    }

    #[test]
    fn remove_keeps_indexes_consistent() {
        let mut s = set(3, 10);
        assert!(s.remove(&mac(1)).is_some());
        assert!(s.remove(&mac(1)).is_none());
        assert_eq!((s.len(), s.bytes()), (2, 20));
        let budget = Budget {
            rows: 1,
            bytes: 100,
        };
        assert_eq!(s.plan_evictions(&[], budget), vec![mac(0)]);
    }
}
