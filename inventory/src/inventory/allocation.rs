//! `[allocation]`: which host numbers of each network a newly enlisted node may get, per role
//! family. Defaults are the runbook's address plan (3.5): provisioning .50–.79 for the control
//! plane and .80–.99 for workers, production .10–.19 and .20–.99; as host numbers within each
//! network's subnet, so the plan follows the subnet.
//!
//! ```toml
//! [allocation]
//! control_plane_provisioning = "50-79"
//! worker_provisioning = "80-99"
//! control_plane_production = "10-19"
//! worker_production = "20-99"
//! ```

use std::ops::RangeInclusive;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub control_plane_provisioning: RangeInclusive<u32>,
    pub worker_provisioning: RangeInclusive<u32>,
    pub control_plane_production: RangeInclusive<u32>,
    pub worker_production: RangeInclusive<u32>,
}

impl Default for Allocation {
    fn default() -> Self {
        Allocation {
            control_plane_provisioning: 50..=79,
            worker_provisioning: 80..=99,
            control_plane_production: 10..=19,
            worker_production: 20..=99,
        }
    }
}

impl Allocation {
    pub const KEYS: [&'static str; 4] = [
        "control_plane_provisioning",
        "worker_provisioning",
        "control_plane_production",
        "worker_production",
    ];

    pub fn set(&mut self, key: &str, range: RangeInclusive<u32>) {
        match key {
            "control_plane_provisioning" => self.control_plane_provisioning = range,
            "worker_provisioning" => self.worker_provisioning = range,
            "control_plane_production" => self.control_plane_production = range,
            "worker_production" => self.worker_production = range,
            _ => {}
        }
    }
}

/// `"50-79"` (host numbers, first ≤ last, ≥ 1).
pub fn parse_range(text: &str) -> Result<RangeInclusive<u32>, String> {
    let (a, b) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?} is not a range like \"50-79\""))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| format!("{text:?}: {s:?} is not a host number"))
    };
    let (a, b) = (parse(a)?, parse(b)?);
    if a == 0 || a > b {
        return Err(format!(
            "{text:?}: the first host number must be at least 1 and not above the last"
        ));
    }
    Ok(a..=b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("50-79"), Ok(50..=79));
        assert_eq!(parse_range(" 5 - 5 "), Ok(5..=5));
        for bad in ["", "50", "79-50", "0-10", "a-b", "-5"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }
}
