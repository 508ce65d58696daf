//! Diagnostics for invalid input: each names the file, the position when the parser knows it,
//! the node and the field, so an operator can fix every problem in one pass.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Hostname of the node concerned, when the problem belongs to one.
    pub node: Option<String>,
    /// Dotted path of the field, e.g. `networks.provisioning.subnet` or `nodes[3].mac`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, ": {sev}: ")?;
        if let Some(node) = &self.node {
            write!(f, "node {node}: ")?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(src).line_col(src, offset)
}

/// The line index of one text, built the first time a diagnostic needs a position.
#[derive(Debug)]
pub struct Positions<'a> {
    src: &'a str,
    index: std::cell::OnceCell<LineIndex>,
}

impl<'a> Positions<'a> {
    pub fn new(src: &'a str) -> Positions<'a> {
        Positions {
            src,
            index: std::cell::OnceCell::new(),
        }
    }

    /// 1-based line and column of a span's start, or none without a span.
    pub fn of(&self, span: Option<&std::ops::Range<usize>>) -> (Option<usize>, Option<usize>) {
        match span {
            Some(s) => {
                let (l, c) = self
                    .index
                    .get_or_init(|| LineIndex::new(self.src))
                    .line_col(self.src, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        }
    }
}

/// Where each line of a text starts, so that many diagnostics (one per node of a large
/// fleet) each find their line by binary search instead of rescanning the text.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(src: &str) -> LineIndex {
        let starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    /// 1-based line and column (in characters) of byte `offset` of `src`, the text this
    /// index was built from.
    pub fn line_col(&self, src: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(src.len());
        while !src.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        (line, src[start..offset].chars().count() + 1)
    }
}

/// Levenshtein distance, for "did you mean" hints on misspelt keys.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate when it is plausibly a typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_agrees_with_a_plain_scan_also_across_multibyte_characters() {
        let src = "a = 1\nbé = \"ü\"\n\nlast";
        let index = LineIndex::new(src);
        for offset in 0..=src.len() + 3 {
            let o = offset.min(src.len());
            if !src.is_char_boundary(o) {
                continue;
            }
            let before = &src[..o];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            let col = before[start..].chars().count() + 1;
            assert_eq!(index.line_col(src, offset), (line, col), "offset {offset}");
        }
    }

    #[test]
    fn line_col_counts_from_one() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 9), (2, 4));
    }

    #[test]
    fn suggests_near_misses_only() {
        let keys = ["hostname", "mac", "provisioning_ip", "production_ip"];
        assert_eq!(did_you_mean("hostnme", &keys), Some("hostname"));
        assert_eq!(
            did_you_mean("provisioning_iq", &keys),
            Some("provisioning_ip")
        );
        assert_eq!(did_you_mean("colour", &keys), None);
    }
}
