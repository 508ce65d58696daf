//! Which installation of a node sends a report: after a reprovision the collector must tell
//! the new system's reports from the old one's, whose join unit keeps running until the machine
//! is reinstalled. `/etc/machine-id` is created at an installation's first boot and stays for
//! all later boots (machine-id(5)), so a reinstall gets a new one. machine-id(5) also says the id
//! must not be exposed on the network and that applications should use a keyed hash of it
//! instead, in the manner of `sd_id128_get_machine_app_specific()` (which keys with the 16
//! binary bytes): the agent sends HMAC-SHA256(key = the machine id's 32 hex digits, message =
//! this application's id), cut to 128 bits.

use std::path::Path;

use ring::hmac;

/// This application's id, the HMAC message (fixed: changing it changes every node's id).
const APP_ID: &[u8; 16] = b"plasmacloud-inst";

/// The installation id for the contents of `/etc/machine-id`; `None` when it is not a machine
/// id (missing, empty, "uninitialized" on a first boot in progress, all zeros).
pub fn from_machine_id(text: &str) -> Option<String> {
    let id = text.trim();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || id.bytes().all(|b| b == b'0')
    {
        return None;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, id.to_ascii_lowercase().as_bytes());
    let tag = hmac::sign(&key, APP_ID);
    Some(
        tag.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// The installation id of the running system, from `path` (normally `/etc/machine-id`).
pub fn read(path: &Path) -> Option<String> {
    from_machine_id(&std::fs::read_to_string(path).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyed_hash_never_the_id() {
        let m = "4c4c4544004a3510804bb4c04f4e3333";
        let a = from_machine_id(&format!("{m}\n")).unwrap();
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(!a.contains(&m[..8]), "the machine id leaks");
        assert_eq!(from_machine_id(&m.to_ascii_uppercase()), Some(a.clone()));
        // A reinstall (another machine id) is another installation.
        assert_ne!(from_machine_id("4c4c4544004a3510804bb4c04f4e3334"), Some(a));
        for bad in [
            "",
            "uninitialized\n",
            "00000000000000000000000000000000",
            "xyz",
        ] {
            assert_eq!(from_machine_id(bad), None, "{bad:?}");
        }
    }
}
