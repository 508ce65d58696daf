//! The python of the BMC emulators' venv: `$PLASMA_BMC_PYTHON` (scripts/test.sh exports it),
//! else `target/bmc-venv/bin/python` of this workspace when scripts/test.sh made it earlier.

use std::path::PathBuf;

pub fn bmc_python() -> PathBuf {
    let hint = "the BMC emulators' venv is missing: run the tests through scripts/test.sh, \
                which installs sushy-tools and pyghmi into target/bmc-venv and exports \
                PLASMA_BMC_PYTHON";
    let python = match std::env::var_os("PLASMA_BMC_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bmc-venv/bin/python"),
    };
    assert!(python.is_file(), "{}: {hint}", python.display());
    python
}
