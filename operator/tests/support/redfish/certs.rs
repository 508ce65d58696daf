//! A CA and a server certificate for 127.0.0.1 signed by it (X.509 v3, as rustls requires),
//! made with openssl (Debian package openssl), for the emulator's HTTPS.

use std::path::{Path, PathBuf};
use std::process::Command;

const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

/// Writes ca.pem, bmc.pem and bmc.key into `dir` and returns their paths.
pub fn make(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let extensions =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/redfish/bmc-cert.ext");
    let steps = [
        format!(
            "req -x509 {EC} -days 2 -keyout ca.key -out ca.pem -subj /CN=PlasmaCloud-test-BMC-CA \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign"
        ),
        format!("req -new {EC} -keyout bmc.key -out bmc.csr -subj /CN=127.0.0.1"),
        "x509 -req -in bmc.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out bmc.pem \
         -extfile"
            .to_owned(),
    ];
    for (i, step) in steps.iter().enumerate() {
        let mut openssl = Command::new("openssl");
        openssl.args(step.split_whitespace()).current_dir(dir);
        if i == 2 {
            openssl.arg(&extensions);
        }
        let out = openssl
            .output()
            .expect("openssl (Debian package openssl) runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "openssl {step}: {stderr}");
    }
    (dir.join("ca.pem"), dir.join("bmc.pem"), dir.join("bmc.key"))
}
