//! Prometheus text exposition, by hand: a few counters and one latency histogram.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub reports_accepted: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    discover: Mutex<BTreeMap<&'static str, u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    pub fn accepted(&self) {
        self.reports_accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejected(&self, reason: &'static str) {
        *self
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    pub fn rejected_count(&self, reason: &str) -> u64 {
        self.rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(reason)
            .copied()
            .unwrap_or(0)
    }

    pub fn discover(&self, result: &'static str) {
        *self
            .discover
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(result)
            .or_default() += 1;
    }

    pub fn observe(&self, route: &str, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut all = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = match all.get_mut(route) {
            Some(h) => h,
            None => all.entry(route.to_string()).or_default(),
        };
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The exposition; `gauges` are (metric, labels, value) computed by the caller at scrape
    /// time (nodes by state and by service phase).
    pub fn render(&self, gauges: &[(&str, String, u64)]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP plasma_collector_reports_accepted_total Reports committed and acknowledged.\n",
        );
        out.push_str("# TYPE plasma_collector_reports_accepted_total counter\n");
        let _ = writeln!(
            out,
            "plasma_collector_reports_accepted_total {}",
            self.reports_accepted.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP plasma_collector_reports_rejected_total Reports refused, by reason.\n",
        );
        out.push_str("# TYPE plasma_collector_reports_rejected_total counter\n");
        for (reason, n) in self
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "plasma_collector_reports_rejected_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP plasma_collector_discover_total Discovery reports, by result.\n");
        out.push_str("# TYPE plasma_collector_discover_total counter\n");
        for (result, n) in self
            .discover
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "plasma_collector_discover_total{{result=\"{result}\"}} {n}"
            );
        }
        let mut last_metric = "";
        for (metric, labels, value) in gauges {
            if *metric != last_metric {
                let _ = writeln!(out, "# TYPE {metric} gauge");
                last_metric = metric;
            }
            if labels.is_empty() {
                let _ = writeln!(out, "{metric} {value}");
            } else {
                let _ = writeln!(out, "{metric}{{{labels}}} {value}");
            }
        }
        out.push_str(
            "# HELP plasma_collector_request_duration_seconds Request latency by route.\n",
        );
        out.push_str("# TYPE plasma_collector_request_duration_seconds histogram\n");
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let route = route.replace('\\', "\\\\").replace('"', "\\\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "plasma_collector_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "plasma_collector_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "plasma_collector_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "plasma_collector_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        out
    }
}
