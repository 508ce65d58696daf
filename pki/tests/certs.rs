//! Certificate contents: checked with the real openssl binary and by parsing with x509-parser.

mod common;

use std::path::Path;

use common::*;
use plasma_pki::store::apply;
use plasma_pki::{Ca, KeyAlgorithm, LeafSpec, LeafUsage, PkiError, inspect, verifies_against};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER;
use x509_parser::parse_x509_certificate;
use x509_parser::pem::parse_x509_pem;

fn pem_der(pem: &str) -> Vec<u8> {
    parse_x509_pem(pem.as_bytes()).unwrap().1.contents
}

#[test]
fn openssl_verifies_every_node_cert_against_the_ca_and_the_node_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let secrets = secrets_dir(&tmp);
    let input = input();
    apply(&secrets, &input, OffsetDateTime::now_utc()).unwrap();
    let ca = secrets.join("ca/ca-cert.pem");
    for n in &input.nodes {
        let h = &n.hostname;
        let cert = node_cert(&secrets, h);
        let copy = secrets.join(format!("nodes/{h}/etc/nixos/secrets/ca-cert.pem"));
        for cafile in [&ca, &copy] {
            let (ok, out) = openssl(&[
                "verify",
                "-CAfile",
                cafile.to_str().unwrap(),
                cert.to_str().unwrap(),
            ]);
            assert!(ok && out.contains(": OK"), "openssl verify {h}: {out}");
        }
        // EKU serverAuth + clientAuth, as openssl's purpose checks see them.
        for purpose in ["sslserver", "sslclient"] {
            let (ok, out) = openssl(&[
                "verify",
                "-purpose",
                purpose,
                "-CAfile",
                ca.to_str().unwrap(),
                cert.to_str().unwrap(),
            ]);
            assert!(ok, "{h} as {purpose}: {out}");
        }
        // The key on disk is the key of the certificate.
        let (_, cert_pub) = openssl(&["x509", "-noout", "-pubkey", "-in", cert.to_str().unwrap()]);
        let (ok, key_pub) = openssl(&[
            "pkey",
            "-pubout",
            "-in",
            node_key(&secrets, h).to_str().unwrap(),
        ]);
        assert!(ok, "{key_pub}");
        assert_eq!(cert_pub, key_pub, "{h}: key and certificate do not match");
    }
    // Operator: a client certificate only; the provisioning server: a server certificate only.
    let op = secrets.join("operator/operator-cert.pem");
    let pxe = secrets.join("pxe-server/pxe-server-cert.pem");
    let check = |cert: &Path, purpose: &str| {
        openssl(&[
            "verify",
            "-purpose",
            purpose,
            "-CAfile",
            ca.to_str().unwrap(),
            cert.to_str().unwrap(),
        ])
        .0
    };
    assert!(check(&op, "sslclient"));
    assert!(
        !check(&op, "sslserver"),
        "operator cert must not be usable as a server cert"
    );
    assert!(check(&pxe, "sslserver"));
    assert!(
        !check(&pxe, "sslclient"),
        "pxe-server cert must not be usable as a client cert"
    );
}

#[test]
fn openssl_rejects_a_node_cert_from_another_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let secrets = secrets_dir(&tmp);
    apply(&secrets, &input(), OffsetDateTime::now_utc()).unwrap();
    let other = Ca::generate("prod-cluster", 3650, KeyAlgorithm::EcdsaP256).unwrap();
    let other_ca = tmp.path().join("other-ca.pem");
    std::fs::write(&other_ca, other.cert_pem()).unwrap();
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        other_ca.to_str().unwrap(),
        node_cert(&secrets, "node01").to_str().unwrap(),
    ]);
    assert!(
        !ok,
        "a certificate must not verify against a CA with the same name but another key: {out}"
    );
}

#[test]
fn ca_has_ca_constraints_pathlen_zero_and_only_signing_usages() {
    let now = OffsetDateTime::now_utc();
    let ca = Ca::generate_at("prod-cluster", 3650, KeyAlgorithm::EcdsaP256, now).unwrap();
    let der = pem_der(ca.cert_pem());
    let (_, x) = parse_x509_certificate(&der).unwrap();
    assert_eq!(
        x.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "prod-cluster CA"
    );
    let bc = x.basic_constraints().unwrap().unwrap();
    assert!(bc.critical, "basicConstraints of a CA must be critical");
    assert!(bc.value.ca);
    assert_eq!(bc.value.path_len_constraint, Some(0));
    let ku = x.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    assert!(!ku.digital_signature() && !ku.key_encipherment());
    let days = (x.validity().not_after.timestamp() - now.unix_timestamp()) / 86_400;
    assert_eq!(days, 3650);
    // Self-signed: the CA verifies against itself, and openssl agrees.
    assert!(verifies_against(ca.cert_pem(), ca.cert_pem()).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("ca.pem");
    std::fs::write(&p, ca.cert_pem()).unwrap();
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        p.to_str().unwrap(),
        p.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
}

#[test]
fn node_cert_has_runbook_sans_eku_and_no_ca_flag() {
    let now = OffsetDateTime::now_utc();
    let ca = Ca::generate_at("prod-cluster", 3650, KeyAlgorithm::EcdsaP256, now).unwrap();
    let spec = LeafSpec::node(
        "node01",
        "node01.example.com",
        &[ip("10.0.200.10"), ip("10.0.100.50")],
        365,
    );
    let issued = ca
        .issue_at(&spec, None, KeyAlgorithm::EcdsaP256, now)
        .unwrap();
    let der = pem_der(&issued.cert_pem);
    let (_, x) = parse_x509_certificate(&der).unwrap();

    assert_eq!(
        x.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "node01.example.com"
    );
    let cder = pem_der(ca.cert_pem());
    let (_, c) = parse_x509_certificate(&cder).unwrap();
    assert_eq!(x.issuer(), c.subject());
    let san = x.subject_alternative_name().unwrap().unwrap().value;
    let mut dns: Vec<String> = Vec::new();
    let mut ips: Vec<Vec<u8>> = Vec::new();
    for n in &san.general_names {
        match n {
            GeneralName::DNSName(d) => dns.push(d.to_string()),
            GeneralName::IPAddress(b) => ips.push(b.to_vec()),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    dns.sort();
    assert_eq!(dns, ["localhost", "node01", "node01.example.com"]);
    let mut want_ips = vec![
        vec![10, 0, 200, 10],
        vec![10, 0, 100, 50],
        vec![127, 0, 0, 1],
        std::net::Ipv6Addr::LOCALHOST.octets().to_vec(),
    ];
    want_ips.sort();
    ips.sort();
    assert_eq!(ips, want_ips);

    let eku = x.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!eku.any && !eku.code_signing);
    let bc = x.basic_constraints().unwrap().unwrap().value;
    assert!(!bc.ca, "a node certificate must not be a CA");
    let ku = x.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    // authorityKeyIdentifier lets openssl and others pick the right CA.
    assert!(
        x.extensions()
            .iter()
            .any(|e| e.oid == OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
    );
    let days = (x.validity().not_after.timestamp() - now.unix_timestamp()) / 86_400;
    assert_eq!(days, 365);
    assert!(x.validity().not_before.timestamp() <= now.unix_timestamp());

    // inspect() sees the same thing.
    let info = inspect(&issued.cert_pem).unwrap();
    assert_eq!(info.subject_cn, "node01.example.com");
    assert!(!info.is_ca);
    assert_eq!(info.san_strings(), spec.san_strings());
    assert_eq!(info.not_after_unix, x.validity().not_after.timestamp());
    assert_eq!(
        info.serial_hex,
        x.raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
}

#[test]
fn usages_map_to_eku() {
    let ca = Ca::generate("c", 10, KeyAlgorithm::EcdsaP256).unwrap();
    for (usage, server, client) in [
        (LeafUsage::Server, true, false),
        (LeafUsage::Client, false, true),
        (LeafUsage::ServerAndClient, true, true),
    ] {
        let spec = LeafSpec {
            common_name: "x".into(),
            dns_names: vec!["x.example".into()],
            ip_addresses: vec![],
            usage,
            validity_days: 5,
        };
        let issued = ca.issue(&spec, None).unwrap();
        let der = pem_der(&issued.cert_pem);
        let (_, x) = parse_x509_certificate(&der).unwrap();
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert_eq!(
            (eku.server_auth, eku.client_auth),
            (server, client),
            "{usage:?}"
        );
    }
    let op = LeafSpec::operator(30);
    assert_eq!(op.common_name, "operator");
    assert_eq!(op.usage, LeafUsage::Client);
}

#[test]
fn reissue_with_given_key_keeps_the_key_and_changes_the_serial() {
    let ca = Ca::generate("c", 10, KeyAlgorithm::EcdsaP256).unwrap();
    let spec = LeafSpec::node("a", "a.example", &[ip("10.0.0.1")], 30);
    let first = ca.issue(&spec, None).unwrap();
    let second = ca.issue(&spec, Some(&first.key_pem)).unwrap();
    assert_eq!(first.key_pem, second.key_pem);
    let (i1, i2) = (
        inspect(&first.cert_pem).unwrap(),
        inspect(&second.cert_pem).unwrap(),
    );
    assert_ne!(
        i1.serial_hex, i2.serial_hex,
        "serials must be unique per certificate"
    );
    assert_eq!(i1.serial_hex.len(), 32, "16-byte positive serial");
    assert!(verifies_against(&second.cert_pem, ca.cert_pem()).unwrap());
}

#[test]
fn every_key_algorithm_produces_certs_openssl_accepts() {
    for alg in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Ed25519,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let secrets = secrets_dir(&tmp);
        let mut input = input();
        input.key_algorithm = alg;
        apply(&secrets, &input, OffsetDateTime::now_utc()).unwrap();
        let (ok, out) = openssl(&[
            "verify",
            "-CAfile",
            secrets.join("ca/ca-cert.pem").to_str().unwrap(),
            node_cert(&secrets, "node02").to_str().unwrap(),
        ]);
        assert!(ok, "{alg}: {out}");
        let (_, text) = openssl(&[
            "pkey",
            "-noout",
            "-text",
            "-in",
            secrets.join("ca/ca-key.pem").to_str().unwrap(),
        ]);
        let expect = match alg {
            KeyAlgorithm::EcdsaP256 => "prime256v1",
            KeyAlgorithm::EcdsaP384 => "secp384r1",
            KeyAlgorithm::Ed25519 => "ED25519",
        };
        assert!(text.contains(expect), "{alg}: {text}");
        // Loading back works for every algorithm (apply re-reads the CA).
        assert!(
            apply(&secrets, &input, OffsetDateTime::now_utc())
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn from_pem_round_trips_and_names_what_is_wrong() {
    let ca = Ca::generate("c", 10, KeyAlgorithm::EcdsaP256).unwrap();
    let loaded = Ca::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
    let leaf = loaded
        .issue(&LeafSpec::node("a", "a.example", &[], 3), None)
        .unwrap();
    assert!(verifies_against(&leaf.cert_pem, ca.cert_pem()).unwrap());

    let other = Ca::generate("c", 10, KeyAlgorithm::EcdsaP256).unwrap();
    let err = Ca::from_pem(ca.cert_pem(), other.key_pem()).unwrap_err();
    assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
    assert!(err.is_user_error());

    let err = Ca::from_pem("garbage", ca.key_pem()).unwrap_err();
    assert!(matches!(err, PkiError::InvalidCert { .. }), "{err}");
    assert!(err.to_string().contains("CA certificate"), "{err}");

    let err = Ca::from_pem(
        ca.cert_pem(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap_err();
    assert!(matches!(err, PkiError::InvalidKey { .. }), "{err}");
    assert_eq!(err.exit_code(), 2);

    let err = Ca::from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap_err();
    assert!(matches!(err, PkiError::NotCa { .. }), "{err}");

    // A key PEM where a certificate belongs.
    let err = Ca::from_pem(ca.key_pem(), ca.key_pem()).unwrap_err();
    assert!(err.to_string().contains("expected CERTIFICATE"), "{err}");
}

#[test]
fn verifies_against_rejects_other_cas_and_non_cas() {
    let ca = Ca::generate("c", 10, KeyAlgorithm::EcdsaP256).unwrap();
    let twin = Ca::generate("c", 10, KeyAlgorithm::EcdsaP256).unwrap(); // same subject, other key
    let leaf = ca
        .issue(&LeafSpec::node("a", "a.example", &[], 3), None)
        .unwrap();
    assert!(verifies_against(&leaf.cert_pem, ca.cert_pem()).unwrap());
    assert!(!verifies_against(&leaf.cert_pem, twin.cert_pem()).unwrap());
    // A leaf is not a CA, even for a certificate it "issued" (itself).
    assert!(!verifies_against(&leaf.cert_pem, &leaf.cert_pem).unwrap());
    assert!(verifies_against("nope", ca.cert_pem()).is_err());
}

#[test]
fn invalid_dns_name_is_a_spec_error_not_a_panic() {
    let ca = Ca::generate("c", 10, KeyAlgorithm::EcdsaP256).unwrap();
    let spec = LeafSpec {
        common_name: "x".into(),
        dns_names: vec!["bad name é".into()],
        ip_addresses: vec![],
        usage: LeafUsage::Server,
        validity_days: 1,
    };
    let err = ca.issue(&spec, None).unwrap_err();
    assert!(matches!(err, PkiError::InvalidSpec(_)), "{err}");
}
