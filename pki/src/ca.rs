//! The cluster CA and the leaf certificates it issues.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::{KeyAlgorithm, PkiError};

/// Certificates start this long before "now" so a node whose clock lags the provisioning
/// workstation's a little still accepts them.
const BACKDATE: Duration = Duration::hours(1);

/// The cluster CA: its certificate and private key (PEM) and a ready signer.
pub struct Ca {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Ca")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// New self-signed CA: CN = "<cluster_name> CA", basicConstraints CA pathlen 0,
    /// keyCertSign + cRLSign.
    pub fn generate(
        cluster_name: &str,
        validity_days: u32,
        alg: KeyAlgorithm,
    ) -> Result<Ca, PkiError> {
        Self::generate_at(cluster_name, validity_days, alg, OffsetDateTime::now_utc())
    }

    /// [`Ca::generate`] with an explicit "now" (tests, and the store, which takes `now`).
    pub fn generate_at(
        cluster_name: &str,
        validity_days: u32,
        alg: KeyAlgorithm,
        now: OffsetDateTime,
    ) -> Result<Ca, PkiError> {
        if cluster_name.trim().is_empty() {
            return Err(PkiError::InvalidInput("the cluster name is empty".into()));
        }
        if validity_days == 0 {
            return Err(PkiError::InvalidInput(
                "CA validity must be at least one day".into(),
            ));
        }
        let key = generate_key(alg)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{cluster_name} CA"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, cluster_name.to_string());
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(i64::from(validity_days));
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        let issuer = Issuer::new(params, key);
        Ok(Ca {
            cert_pem,
            key_pem,
            issuer,
        })
    }

    /// Load; a bad PEM / mismatched key is an error naming what is wrong (never silently
    /// replaced).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        const WHAT_CERT: &str = "CA certificate";
        const WHAT_KEY: &str = "CA private key";
        let der = crate::inspect::pem_to_der(cert_pem, WHAT_CERT)?;
        let x509 = crate::inspect::parse_der(&der, WHAT_CERT)?;
        if !crate::inspect::is_ca(&x509) {
            return Err(PkiError::NotCa { what: WHAT_CERT });
        }
        let key = parse_key(key_pem, WHAT_KEY)?;
        if key.der_bytes() != x509.public_key().subject_public_key.data.as_ref() {
            return Err(PkiError::KeyMismatch { what: "CA" });
        }
        let issuer =
            Issuer::from_ca_cert_der(&der.into(), key).map_err(|e| PkiError::InvalidCert {
                what: WHAT_CERT,
                reason: e.to_string(),
            })?;
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issue a leaf. `key_pem = None` generates a new key (ECDSA P-256); `Some` re-uses the
    /// given private key.
    pub fn issue(&self, spec: &LeafSpec, key_pem: Option<&str>) -> Result<Issued, PkiError> {
        self.issue_at(
            spec,
            key_pem,
            KeyAlgorithm::default(),
            OffsetDateTime::now_utc(),
        )
    }

    /// [`Ca::issue`] with the algorithm for a new key and an explicit "now".
    pub fn issue_at(
        &self,
        spec: &LeafSpec,
        key_pem: Option<&str>,
        alg: KeyAlgorithm,
        now: OffsetDateTime,
    ) -> Result<Issued, PkiError> {
        if spec.validity_days == 0 {
            return Err(PkiError::InvalidSpec(format!(
                "{}: validity must be at least one day",
                spec.common_name
            )));
        }
        let (key, key_pem) = match key_pem {
            Some(pem) => (parse_key(pem, "private key")?, pem.to_string()),
            None => {
                let key = generate_key(alg)?;
                let pem = key.serialize_pem();
                (key, pem)
            }
        };
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, spec.common_name.clone());
        for name in &spec.dns_names {
            let ia5 = name.clone().try_into().map_err(|_| {
                PkiError::InvalidSpec(format!(
                    "{name:?} is not a valid DNS name for a certificate"
                ))
            })?;
            params.subject_alt_names.push(SanType::DnsName(ia5));
        }
        for ip in &spec.ip_addresses {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match spec.usage {
            LeafUsage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            LeafUsage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            LeafUsage::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(i64::from(spec.validity_days));
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem,
        })
    }
}

/// What a leaf certificate may be used for (extendedKeyUsage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafUsage {
    Server,
    Client,
    ServerAndClient,
}

/// Everything that goes into a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSpec {
    pub common_name: String,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub usage: LeafUsage,
    pub validity_days: u32,
}

impl LeafSpec {
    /// Node certificate: CN = fqdn; SANs = fqdn, hostname, "localhost" + production IP,
    /// provisioning IP, 127.0.0.1, ::1; EKU serverAuth + clientAuth.
    ///
    /// `localhost` and the loopback addresses are there because the services on a node talk to
    /// each other through `https://localhost:<port>` (runbook 5.3).
    pub fn node(hostname: &str, fqdn: &str, ips: &[IpAddr], validity_days: u32) -> LeafSpec {
        let mut dns_names = Vec::new();
        for name in [fqdn, hostname, "localhost"] {
            push_unique(&mut dns_names, name.to_ascii_lowercase());
        }
        let mut ip_addresses = Vec::new();
        for ip in ips.iter().copied().chain([
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]) {
            push_unique(&mut ip_addresses, ip);
        }
        LeafSpec {
            common_name: fqdn.to_ascii_lowercase(),
            dns_names,
            ip_addresses,
            usage: LeafUsage::ServerAndClient,
            validity_days,
        }
    }

    /// Provisioning-server (collector / PXE HTTP) certificate: CN "pxe-server", SANs = its IP,
    /// "localhost", 127.0.0.1, ::1; EKU serverAuth.
    pub fn pxe_server(pxe_server_ip: IpAddr, validity_days: u32) -> LeafSpec {
        let mut ip_addresses = vec![pxe_server_ip];
        for ip in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ] {
            push_unique(&mut ip_addresses, ip);
        }
        LeafSpec {
            common_name: "pxe-server".into(),
            dns_names: vec!["localhost".into()],
            ip_addresses,
            usage: LeafUsage::Server,
            validity_days,
        }
    }

    /// Operator client certificate: CN "operator", no SANs, EKU clientAuth only.
    pub fn operator(validity_days: u32) -> LeafSpec {
        LeafSpec {
            common_name: "operator".into(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            usage: LeafUsage::Client,
            validity_days,
        }
    }

    /// Read-only viewer client certificate (the dashboard and fleet reads of the collector):
    /// CN "viewer", no SANs, EKU clientAuth only.
    pub fn viewer(validity_days: u32) -> LeafSpec {
        LeafSpec {
            common_name: "viewer".into(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            usage: LeafUsage::Client,
            validity_days,
        }
    }

    /// The SANs as strings (DNS names lower-cased, IPs in canonical form), sorted: what the
    /// store compares against an existing certificate.
    pub fn san_strings(&self) -> Vec<String> {
        crate::inspect::san_strings(&self.dns_names, &self.ip_addresses)
    }
}

/// A freshly issued certificate and its private key (PKCS#8 PEM).
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, item: T) {
    if !v.contains(&item) {
        v.push(item);
    }
}

/// Random positive 128-bit serial; rcgen's default derives it from the key, which would repeat
/// when a certificate is re-issued with the same key.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    // Positive and without a leading zero byte, so the DER INTEGER is exactly 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// A new key pair whose PKCS#8 encoding OpenSSL can read too.
fn generate_key(alg: KeyAlgorithm) -> Result<KeyPair, PkiError> {
    let key = KeyPair::generate_for(alg.rcgen())?;
    if alg != KeyAlgorithm::Ed25519 {
        return Ok(key);
    }
    // ring writes Ed25519 keys as PKCS#8 v2 (with the public key), which OpenSSL 3.0 refuses
    // ("unsupported"); re-encode as v1 (RFC 8410), which ring, rustls and OpenSSL all read.
    const V2_PREFIX: [u8; 16] = [
        0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    const V1_PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let der = key.serialized_der();
    if der.len() < 48 || der[..16] != V2_PREFIX {
        return Ok(key);
    }
    let mut v1 = V1_PREFIX.to_vec();
    v1.extend_from_slice(&der[16..48]);
    Ok(KeyPair::try_from(v1)?)
}

pub(crate) fn parse_key(key_pem: &str, what: &'static str) -> Result<KeyPair, PkiError> {
    if !key_pem.contains("-----BEGIN") {
        return Err(PkiError::InvalidKey {
            what,
            reason: "no PEM block found".into(),
        });
    }
    KeyPair::from_pem(key_pem).map_err(|e| PkiError::InvalidKey {
        what,
        reason: format!("not a PKCS#8 ECDSA P-256/P-384 or Ed25519 key ({e})"),
    })
}
