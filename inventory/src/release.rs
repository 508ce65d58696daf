//! The NixOS releases the generated fleet supports: the one place that names them. The fleet
//! flake's default nixpkgs input, the example inventories' `state_version` and the
//! "outside the supported set" warnings all follow this table; docs/nix.md cites the nixpkgs
//! file each rustc version was read from.

/// A supported NixOS release and the default `rustc` of its package set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    pub version: &'static str,
    /// `rustc` of `pkgs.rustPlatform` in that release; must be at least the workspace's
    /// `rust-version`, or Nix cannot build plasmagen and plasma-agent.
    pub rustc: &'static str,
}

/// Newest first.
pub const SUPPORTED: [Release; 2] = [
    Release {
        version: "26.05",
        rustc: "1.95.0",
    },
    Release {
        version: "25.11",
        rustc: "1.91.1",
    },
];

/// The release a new fleet is generated for (the current stable).
pub const DEFAULT: &str = SUPPORTED[0].version;

pub fn is_supported(version: &str) -> bool {
    SUPPORTED.iter().any(|r| r.version == version)
}

/// `a, b` for messages.
pub fn supported_list() -> String {
    SUPPORTED
        .iter()
        .map(|r| r.version)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The nixpkgs flake reference of a release's channel branch.
pub fn nixpkgs_url(version: &str) -> String {
    format!("github:NixOS/nixpkgs/nixos-{version}")
}

/// The NixOS release a nixpkgs flake reference follows, when its branch names one
/// (`nixos-26.05`, `nixos-26.05-small`, `release-25.11`, `nixpkgs-25.11-darwin`); `None` for
/// a commit, `nixos-unstable` or anything else that names no release.
pub fn release_of_nixpkgs_url(url: &str) -> Option<String> {
    // The branch is the last path segment (github:o/r/<ref>) or a `ref=` query parameter.
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let query_ref = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("ref="))
        .map(|r| r.split('#').next().unwrap_or(r));
    let last = match query_ref {
        Some(r) => r.rsplit('/').next()?,
        None => path.split('#').next().unwrap_or(path).rsplit('/').next()?,
    };
    let rest = ["nixos-", "release-", "nixpkgs-"]
        .iter()
        .find_map(|p| last.strip_prefix(p))?;
    let version: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let (y, m) = version.split_once('.')?;
    (y.len() == 2 && m.len() == 2).then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_of_nixpkgs_url_reads_the_branch() {
        for (url, want) in [
            ("github:NixOS/nixpkgs/nixos-26.05", Some("26.05")),
            ("github:NixOS/nixpkgs/nixos-25.11-small", Some("25.11")),
            ("github:NixOS/nixpkgs/release-24.11", Some("24.11")),
            (
                "git+https://example.org/nixpkgs?ref=nixos-25.05",
                Some("25.05"),
            ),
            ("github:NixOS/nixpkgs/nixos-unstable", None),
            (
                "github:NixOS/nixpkgs/0123456789abcdef0123456789abcdef01234567",
                None,
            ),
        ] {
            assert_eq!(release_of_nixpkgs_url(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn the_default_is_the_newest_supported_release() {
        assert_eq!(DEFAULT, "26.05");
        assert!(is_supported("25.11"));
        assert!(!is_supported("24.11") && !is_supported("25.05"));
    }
}
