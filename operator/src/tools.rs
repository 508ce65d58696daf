//! The programs an operator command runs, found on PATH before anything is powered: a node
//! power-cycled into the installer and then left there because `nixos-anywhere` is missing is
//! the failure this prevents.

use std::env;
use std::path::{Path, PathBuf};

/// A program and where an operator gets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    pub program: &'static str,
    pub install_hint: &'static str,
}

pub const SSH: Tool = Tool {
    program: "ssh",
    install_hint: "Debian package openssh-client; NixOS: programs.ssh (on by default)",
};
pub const NIXOS_ANYWHERE: Tool = Tool {
    program: "nixos-anywhere",
    install_hint: "nix profile install github:nix-community/nixos-anywhere, or pkgs.nixos-anywhere",
};
pub const NIXOS_REBUILD: Tool = Tool {
    program: "nixos-rebuild",
    install_hint: "pkgs.nixos-rebuild (present on every NixOS host)",
};
pub const NIX: Tool = Tool {
    program: "nix",
    install_hint: "Nix with the flakes feature (nix.settings.experimental-features)",
};
pub const IPMITOOL: Tool = Tool {
    program: "ipmitool",
    install_hint: "Debian package ipmitool, or pkgs.ipmitool",
};

/// The first executable file named `program` in `$PATH`.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The tools of `needed` that are not on PATH, each with its hint, one line per tool.
pub fn missing(needed: &[Tool]) -> Vec<String> {
    let mut seen = Vec::new();
    needed
        .iter()
        .filter(|t| {
            let first = !seen.contains(&t.program);
            seen.push(t.program);
            first && find(t.program).is_none()
        })
        .map(|t| format!("{} is not on PATH ({})", t.program, t.install_hint))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_executables_and_names_what_is_missing() {
        assert!(find("sh").is_some());
        let absent = Tool {
            program: "plasma-no-such-tool",
            install_hint: "nowhere",
        };
        assert_eq!(
            missing(&[SSH, absent, absent]),
            ["plasma-no-such-tool is not on PATH (nowhere)"]
        );
    }
}
