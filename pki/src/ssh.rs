//! OpenSSH ed25519 host keys, for SSH servers whose key must be known before the machine first
//! boots (the initrd SSH server that unlocks a LUKS root): generated here, kept in the secrets
//! directory, shipped with `nixos-anywhere --extra-files`, pinned by the client.
//!
//! The private key is written in OpenSSH's own format (PROTOCOL.key in the OpenSSH sources:
//! "openssh-key-v1", cipher and KDF "none"), which is what `hostKeys` of NixOS's initrd SSH
//! server (dropbear converts it, or OpenSSH reads it) and `ssh-keygen -y` accept.

use rand::RngCore;

use crate::PkiError;

/// A new host key: the private key file and the `ssh-ed25519 AAAA… comment` public line.
pub struct SshHostKey {
    pub private_openssh: String,
    pub public_line: String,
}

const KEY_TYPE: &str = "ssh-ed25519";
/// The PEM-style armor label of OpenSSH's private key format.
const ARMOR: &str = "OPENSSH PRIVATE KEY";

/// Generate an ed25519 host key with `comment`.
pub fn generate_ed25519(comment: &str) -> Result<SshHostKey, PkiError> {
    let pair =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| PkiError::InvalidKey {
            what: "ssh host key",
            reason: e.to_string(),
        })?;
    let public: [u8; 32] = pair
        .public_key_raw()
        .try_into()
        .map_err(|_| invalid("public key is not 32 bytes"))?;
    let seed = pkcs8_ed25519_seed(&pair.serialize_der())?;
    Ok(encode(&seed, &public, comment))
}

fn invalid(reason: &str) -> PkiError {
    PkiError::InvalidKey {
        what: "ssh host key",
        reason: reason.to_string(),
    }
}

/// The 32-byte seed inside an ed25519 PKCS#8 document (RFC 8410 section 7: the privateKey
/// OCTET STRING wraps a CurvePrivateKey OCTET STRING of 32 bytes: `04 22 04 20 <seed>`).
fn pkcs8_ed25519_seed(der: &[u8]) -> Result<[u8; 32], PkiError> {
    const MARK: [u8; 4] = [0x04, 0x22, 0x04, 0x20];
    let at = der
        .windows(MARK.len())
        .position(|w| w == MARK)
        .ok_or_else(|| invalid("no ed25519 private key in the PKCS#8 document"))?;
    der.get(at + 4..at + 36)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| invalid("truncated ed25519 private key"))
}

fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

fn public_blob(public: &[u8; 32]) -> Vec<u8> {
    let mut blob = Vec::new();
    put_string(&mut blob, KEY_TYPE.as_bytes());
    put_string(&mut blob, public);
    blob
}

fn encode(seed: &[u8; 32], public: &[u8; 32], comment: &str) -> SshHostKey {
    let blob = public_blob(public);
    let mut private = Vec::new();
    let check = rand::rng().next_u32();
    put_u32(&mut private, check);
    put_u32(&mut private, check);
    put_string(&mut private, KEY_TYPE.as_bytes());
    put_string(&mut private, public);
    let mut secret = seed.to_vec();
    secret.extend_from_slice(public);
    put_string(&mut private, &secret);
    put_string(&mut private, comment.as_bytes());
    // Pad to the cipher block size (8 for "none") with 1, 2, 3, ...
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut doc = b"openssh-key-v1\0".to_vec();
    put_string(&mut doc, b"none");
    put_string(&mut doc, b"none");
    put_string(&mut doc, b"");
    put_u32(&mut doc, 1);
    put_string(&mut doc, &blob);
    put_string(&mut doc, &private);

    let body = base64(&doc);
    let mut pem = format!("-----BEGIN {ARMOR}-----\n");
    for line in body.as_bytes().chunks(70) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {ARMOR}-----\n"));
    SshHostKey {
        private_openssh: pem,
        public_line: format!("{KEY_TYPE} {} {comment}", base64(&blob)),
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn keys_differ_and_carry_the_comment() {
        let a = generate_ed25519("node01-initrd").unwrap();
        let b = generate_ed25519("node01-initrd").unwrap();
        assert_ne!(a.public_line, b.public_line);
        assert!(
            a.public_line
                .starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5")
        );
        assert!(a.public_line.ends_with(" node01-initrd"));
        assert!(
            a.private_openssh
                .starts_with(&format!("-----BEGIN {ARMOR}-----\n"))
        );
    }
}
