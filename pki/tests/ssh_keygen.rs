//! The OpenSSH host keys plasma-pki writes, read back by the real `ssh-keygen`: it must derive
//! the same public key from the private file (so sshd and dropbear can load it) and see an
//! ed25519 key.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn ssh_keygen_reads_the_private_key_and_derives_the_same_public_key() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        let key = plasma_pki::ssh::generate_ed25519(&format!("node0{i}-initrd")).unwrap();
        let path = dir.path().join(format!("key{i}"));
        std::fs::write(&path, &key.private_openssh).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("ssh-keygen (Debian package openssh-client) must be installed");
        assert!(
            out.status.success(),
            "ssh-keygen -y rejected the key: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let derived = String::from_utf8(out.stdout).unwrap();
        assert_eq!(derived.trim_end(), key.public_line, "key {i}");
        let fp = Command::new("ssh-keygen")
            .arg("-l")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        let fp = String::from_utf8_lossy(&fp.stdout);
        assert!(fp.contains("(ED25519)"), "{fp}");
    }
}
