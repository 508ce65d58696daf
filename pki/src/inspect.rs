//! Reading certificates back: for listing, re-issue decisions and verification.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::PkiError;

/// Parsed view of a certificate for listing and re-issue decisions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertInfo {
    pub subject_cn: String,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub not_after_unix: i64,
    pub is_ca: bool,
    pub serial_hex: String,
}

impl CertInfo {
    /// The SANs as sorted strings, comparable with [`crate::LeafSpec::san_strings`].
    pub fn san_strings(&self) -> Vec<String> {
        san_strings(&self.dns_names, &self.ip_addresses)
    }
}

/// DNS names lower-cased and IPs in canonical form, sorted and deduplicated: the one form in
/// which a certificate's SANs and a [`crate::LeafSpec`]'s are compared.
pub(crate) fn san_strings(dns_names: &[String], ip_addresses: &[IpAddr]) -> Vec<String> {
    let mut sans: Vec<String> = dns_names
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .chain(ip_addresses.iter().map(ToString::to_string))
        .collect();
    sans.sort();
    sans.dedup();
    sans
}

pub fn inspect(cert_pem: &str) -> Result<CertInfo, PkiError> {
    let der = pem_to_der(cert_pem, "certificate")?;
    let x509 = parse_der(&der, "certificate")?;
    Ok(info_of(&x509))
}

/// True when `cert_pem` carries a valid signature by `ca_cert_pem` (and the CA is a CA).
pub fn verifies_against(cert_pem: &str, ca_cert_pem: &str) -> Result<bool, PkiError> {
    let der = pem_to_der(cert_pem, "certificate")?;
    let cert = parse_der(&der, "certificate")?;
    let ca_der = pem_to_der(ca_cert_pem, "CA certificate")?;
    let ca = parse_der(&ca_der, "CA certificate")?;
    Ok(signed_by(&cert, &ca))
}

/// [`verifies_against`] on parsed certificates, so a caller checking many certificates parses
/// the CA once.
pub(crate) fn signed_by(cert: &X509Certificate<'_>, ca: &X509Certificate<'_>) -> bool {
    is_ca(ca)
        && cert.issuer() == ca.subject()
        && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// basicConstraints CA:TRUE.
pub(crate) fn is_ca(x509: &X509Certificate<'_>) -> bool {
    x509.basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca)
}

/// The DER of the first PEM block, which must be a CERTIFICATE.
pub(crate) fn pem_to_der(cert_pem: &str, what: &'static str) -> Result<Vec<u8>, PkiError> {
    let bad = |reason: String| PkiError::InvalidCert { what, reason };
    if !cert_pem.contains("-----BEGIN") {
        return Err(bad("no PEM block found".into()));
    }
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| bad(format!("PEM does not parse: {e}")))?;
    if pem.label != "CERTIFICATE" {
        return Err(bad(format!(
            "PEM block is {:?}, expected CERTIFICATE",
            pem.label
        )));
    }
    Ok(pem.contents)
}

pub(crate) fn parse_der<'a>(
    der: &'a [u8],
    what: &'static str,
) -> Result<X509Certificate<'a>, PkiError> {
    let (_, x509) =
        x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::InvalidCert {
            what,
            reason: format!("DER does not parse: {e}"),
        })?;
    Ok(x509)
}

pub(crate) fn info_of(x509: &X509Certificate<'_>) -> CertInfo {
    let subject_cn = x509
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns_names.push((*d).to_string()),
                GeneralName::IPAddress(b) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                        ip_addresses.push(IpAddr::V4(Ipv4Addr::from(v4)));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                        ip_addresses.push(IpAddr::V6(Ipv6Addr::from(v6)));
                    }
                }
                _ => {}
            }
        }
    }
    let serial_hex = x509
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    CertInfo {
        subject_cn,
        dns_names,
        ip_addresses,
        not_after_unix: x509.validity().not_after.timestamp(),
        is_ca: is_ca(x509),
        serial_hex,
    }
}
