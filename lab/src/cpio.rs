//! A minimal `newc` cpio writer: the format the kernel unpacks an initramfs from.

use std::io::{self, Write};

/// Builds an archive in memory; entries are written in the order they are added, so parents
/// must come before their children.
#[derive(Default)]
pub struct Archive {
    out: Vec<u8>,
    ino: u32,
}

impl Archive {
    pub fn new() -> Archive {
        Archive::default()
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let name = name.trim_start_matches('/');
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0, // check
        );
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[]);
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, 0o100000 | (mode & 0o7777), data);
    }

    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, target.as_bytes());
    }

    /// Adds the trailer and writes the archive.
    pub fn finish(mut self, w: &mut impl Write) -> io::Result<()> {
        self.entry("TRAILER!!!", 0, &[]);
        w.write_all(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout() {
        let mut a = Archive::new();
        a.file("/init", 0o755, b"#!/bin/sh\n");
        let mut out = Vec::new();
        a.finish(&mut out).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("070701"));
        // mode 0o100755 = 0x81ed, size 10, name "init\0" = 5 bytes.
        assert_eq!(&text[14..22], "000081ed");
        assert_eq!(&text[54..62], "0000000a");
        assert_eq!(&text[94..102], "00000005");
        assert_eq!(&text[110..114], "init");
        assert!(out.len().is_multiple_of(4));
        assert!(text.contains("TRAILER!!!"));
    }
}
