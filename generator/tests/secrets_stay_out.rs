//! Secrets never reach the Nix store: the flake holds no PEM material, and no .nix file imports
//! a key or anything under a secrets directory as a Nix path (which would copy it into the
//! world-readable store). Key paths appear only as runtime strings.

mod common;

use std::fs;
use std::path::Path;

use common::{files_under, generate, repo_root};
use rnix::SyntaxKind;

#[test]
fn flake_has_no_pem_and_no_secret_nix_paths() {
    let out = tempfile::tempdir().unwrap();
    generate(&repo_root().join("examples/runbook.toml"), out.path());
    let flake = out.path().join("flake");
    let secrets = out.path().join("secrets");
    let keys: Vec<Vec<u8>> = files_under(&secrets)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("-key.pem"))
        .map(|p| fs::read(secrets.join(p)).unwrap())
        .collect();
    assert!(
        keys.len() >= 6,
        "certificates were generated ({} keys)",
        keys.len()
    );

    let mut string_mentions = 0;
    for rel in files_under(&flake) {
        let bytes = fs::read(flake.join(&rel)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        if rel == Path::new("pki/ca-cert.pem") {
            // The one PEM allowed: the public CA certificate, identical to the secrets' copy.
            assert_eq!(bytes, fs::read(secrets.join("ca/ca-cert.pem")).unwrap());
            assert!(text.starts_with("-----BEGIN CERTIFICATE-----"));
            continue;
        }
        assert!(
            !text.contains("-----BEGIN"),
            "{} contains PEM material",
            rel.display()
        );
        assert!(
            !text.contains("PRIVATE KEY"),
            "{} mentions a private key block",
            rel.display()
        );
        if rel.extension().is_some_and(|e| e == "nix") {
            let root = rnix::Root::parse(&text);
            for tok in root
                .syntax()
                .descendants_with_tokens()
                .filter_map(|e| e.into_token())
            {
                match tok.kind() {
                    SyntaxKind::TOKEN_PATH_ABS
                    | SyntaxKind::TOKEN_PATH_REL
                    | SyntaxKind::TOKEN_PATH_HOME
                    | SyntaxKind::TOKEN_PATH_SEARCH => {
                        let p = tok.text();
                        // The only PEM a Nix path may name: the flake's public CA certificate.
                        let public_ca = p == "./pki/ca-cert.pem";
                        assert!(
                            public_ca
                                || (!p.contains("secret")
                                    && !p.ends_with(".pem")
                                    && !p.starts_with('/')),
                            "{}: Nix path literal {p:?} would import private material into the store",
                            rel.display()
                        );
                    }
                    SyntaxKind::TOKEN_STRING_CONTENT
                        if tok.text().contains("/etc/nixos/secrets/") =>
                    {
                        string_mentions += 1
                    }
                    _ => {}
                }
            }
        }
    }
    // The TLS paths are there, as strings.
    assert!(
        string_mentions >= 5 * 3,
        "TLS key paths as runtime strings: {string_mentions}"
    );
    assert!(
        flake.join("pki/ca-cert.pem").exists(),
        "the flake carries the CA certificate"
    );
    for f in files_under(&flake) {
        let bytes = fs::read(flake.join(&f)).unwrap();
        for k in &keys {
            assert!(
                !bytes.windows(k.len()).any(|w| w == k.as_slice()),
                "{} holds a private key",
                f.display()
            );
        }
    }
}
