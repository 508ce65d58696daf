//! Shared helpers for the plasma-pki integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use plasma_pki::store::{NodeIdentity, StoreInput};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Three nodes as in the runbook: production 10.0.200.1x, provisioning 10.0.100.5x.
pub fn input() -> StoreInput {
    let nodes = (1..=3)
        .map(|i| NodeIdentity {
            hostname: format!("node0{i}"),
            fqdn: format!("node0{i}.example.com"),
            ips: vec![ip(&format!("10.0.200.1{i}")), ip(&format!("10.0.100.5{i}"))],
        })
        .collect();
    StoreInput::new("prod-cluster", nodes, ip("10.0.100.1"))
}

pub fn input_with_nodes(n: usize) -> StoreInput {
    let nodes = (0..n)
        .map(|i| NodeIdentity {
            hostname: format!("n{i:03}"),
            fqdn: format!("n{i:03}.example.com"),
            ips: vec![ip(&format!("10.1.{}.{}", i / 200, i % 200 + 1))],
        })
        .collect();
    StoreInput::new("big", nodes, ip("10.0.100.1"))
}

/// `<tmp>/secrets`, not yet created.
pub fn secrets_dir(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("secrets")
}

pub fn read(p: impl AsRef<Path>) -> String {
    fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("read {}: {e}", p.as_ref().display()))
}

pub fn mode(p: impl AsRef<Path>) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub bytes: Option<Vec<u8>>,
    pub mode: u32,
    pub mtime: SystemTime,
}

/// Every file and directory below `root`: content, mode and mtime, keyed by relative path.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if md.is_dir() {
                out.insert(
                    rel,
                    Entry {
                        bytes: None,
                        mode: md.permissions().mode() & 0o7777,
                        mtime: md.modified().unwrap(),
                    },
                );
                walk(root, &p, out);
            } else {
                out.insert(
                    rel,
                    Entry {
                        bytes: Some(fs::read(&p).unwrap()),
                        mode: md.permissions().mode() & 0o7777,
                        mtime: md.modified().unwrap(),
                    },
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Run the real openssl binary; (success, stdout + stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl binary must be installed (Debian package openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn node_cert(secrets: &Path, h: &str) -> PathBuf {
    secrets.join(format!("nodes/{h}/etc/nixos/secrets/{h}-cert.pem"))
}

pub fn node_key(secrets: &Path, h: &str) -> PathBuf {
    secrets.join(format!("nodes/{h}/etc/nixos/secrets/{h}-key.pem"))
}
