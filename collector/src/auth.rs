//! Who is calling. The TLS layer has already checked that a presented client certificate chains
//! to the cluster CA (rustls `WebPkiClientVerifier`); here we only read its names and decide
//! whether they may do what they ask.

use std::net::SocketAddr;

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use x509_parser::extensions::GeneralName;

use super::error::ApiError;

/// CN of the operator client certificate (see `plasma_pki::LeafSpec::operator`).
pub const OPERATOR_CN: &str = "operator";

/// CN of the read-only viewer client certificate (see `plasma_pki::LeafSpec::viewer`).
pub const VIEWER_CN: &str = "viewer";

/// Names of a verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    pub common_name: String,
    /// DNS subjectAltNames, lower-cased.
    pub dns_names: Vec<String>,
}

impl CertIdentity {
    /// Parse the leaf certificate (DER) rustls verified.
    pub fn from_der(der: &[u8]) -> Option<CertIdentity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let dns_names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(CertIdentity {
            common_name,
            dns_names,
        })
    }

    pub fn is_operator(&self) -> bool {
        self.common_name == OPERATOR_CN && self.dns_names.is_empty()
    }

    pub fn is_viewer(&self) -> bool {
        self.common_name == VIEWER_CN && self.dns_names.is_empty()
    }

    /// The certificate names node `hostname` (fqdn `fqdn`): CN = fqdn, CN's first label =
    /// hostname, or a DNS SAN equal to the hostname or fqdn. `localhost`, which every node
    /// certificate carries, never counts.
    pub fn names_node(&self, hostname: &str, fqdn: &str) -> bool {
        let hostname = hostname.to_ascii_lowercase();
        let fqdn = fqdn.to_ascii_lowercase();
        if hostname == "localhost" || self.is_operator() || self.is_viewer() {
            return false;
        }
        let first_label = self.common_name.split('.').next().unwrap_or_default();
        self.common_name == fqdn
            || first_label == hostname
            || self.dns_names.iter().any(|d| *d == hostname || *d == fqdn)
    }
}

/// Attached to every request by the listener (absent in `oneshot` tests that do not add it).
#[derive(Debug, Clone, Default)]
pub struct Peer {
    pub addr: Option<SocketAddr>,
    /// A client certificate that chained to the cluster CA.
    pub cert: Option<CertIdentity>,
    /// Plain-HTTP lab listener: nobody has a certificate, claims are trusted.
    pub lab: bool,
}

impl Peer {
    /// May report for `hostname`.
    pub fn check_node(&self, hostname: &str, fqdn: &str) -> Result<(), ApiError> {
        if self.lab {
            return Ok(());
        }
        let cert = self.cert.as_ref().ok_or_else(|| {
            ApiError::unauthenticated("a client certificate signed by the cluster CA is required")
        })?;
        if cert.names_node(hostname, fqdn) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "identity_mismatch",
                format!(
                    "the client certificate (CN {:?}) does not name node {hostname:?}",
                    cert.common_name
                ),
            ))
        }
    }

    /// Only needs to be authenticated at all (used before looking at the body).
    pub fn check_any(&self) -> Result<(), ApiError> {
        if self.lab || self.cert.is_some() {
            Ok(())
        } else {
            Err(ApiError::unauthenticated(
                "a client certificate signed by the cluster CA is required",
            ))
        }
    }

    /// Who performed an operator action, for the history: the certificate's CN, or `lab:ADDR`.
    pub fn actor(&self) -> String {
        match (&self.cert, self.addr) {
            (Some(c), _) => c.common_name.clone(),
            (None, Some(a)) => format!("lab:{a}"),
            (None, None) => "lab".into(),
        }
    }

    /// Reads that show the inventory: the viewer or the operator certificate. Node certificates
    /// are refused (a node has no business reading the fleet). `public`: `--public-dashboard`;
    /// the plain-HTTP lab listener has no certificates at all and is public too.
    pub fn check_viewer(&self, public: bool) -> Result<(), ApiError> {
        if public || self.lab {
            return Ok(());
        }
        match &self.cert {
            None => Err(ApiError::unauthenticated(
                "the viewer or operator client certificate is required to read the fleet \
                 (docs/collector.md, \"The dashboard in a browser\"); --public-dashboard lifts this",
            )),
            Some(c) if c.is_viewer() || c.is_operator() => Ok(()),
            Some(c) => Err(ApiError::forbidden(
                "not_viewer",
                format!(
                    "certificate CN {:?} may not read the fleet (viewer or operator only)",
                    c.common_name
                ),
            )),
        }
    }

    /// Operator actions: the operator certificate; on the lab listener, loopback callers only.
    pub fn check_operator(&self) -> Result<(), ApiError> {
        if self.lab {
            return match self.addr {
                Some(a) if a.ip().is_loopback() => Ok(()),
                _ => Err(ApiError::forbidden(
                    "not_operator",
                    "on the plain-HTTP lab listener operator actions are only accepted from loopback",
                )),
            };
        }
        match &self.cert {
            None => Err(ApiError::unauthenticated(
                "the operator client certificate is required",
            )),
            Some(c) if c.is_operator() => Ok(()),
            Some(c) => Err(ApiError::forbidden(
                "not_operator",
                format!(
                    "certificate CN {:?} may not perform operator actions",
                    c.common_name
                ),
            )),
        }
    }
}

/// Operator actions refuse what a browser marks as sent by another site: a browser holding the
/// operator certificate (for the dashboard) would present it to any page's cross-site form post
/// too. Clients that are not browsers (plasmagen) send neither header.
pub fn check_same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let refuse = |why: String| {
        Err(ApiError::forbidden(
            "cross_site",
            format!("operator actions are refused from another site's page ({why})"),
        ))
    };
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return refuse(format!("Sec-Fetch-Site: {site}"));
    }
    if let (Some(origin), Some(host)) = (text(ORIGIN.as_str()), text(HOST.as_str())) {
        let origin_host = origin.split_once("://").map(|(_, h)| h);
        if origin_host != Some(host) {
            return refuse(format!("Origin {origin} is not {host}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(cn: &str, dns: &[&str]) -> CertIdentity {
        CertIdentity {
            common_name: cn.into(),
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn node_names() {
        let c = id(
            "node01.example.com",
            &["node01.example.com", "node01", "localhost"],
        );
        assert!(c.names_node("node01", "node01.example.com"));
        assert!(!c.names_node("node02", "node02.example.com"));
        assert!(!c.names_node("localhost", "localhost.example.com"));
        assert!(!c.names_node("node0", "node0.example.com"));
        let op = id("operator", &[]);
        assert!(op.is_operator());
        assert!(!op.names_node("operator", "operator.example.com"));
        assert!(!c.is_operator());
    }

    #[test]
    fn operator_actions_only_from_the_same_origin() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        assert!(
            check_same_origin(&h(&[])).is_ok(),
            "plasmagen sends neither"
        );
        let dashboard = h(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://10.0.100.10:8443"),
            ("host", "10.0.100.10:8443"),
        ]);
        assert!(check_same_origin(&dashboard).is_ok());
        for bad in [
            h(&[("sec-fetch-site", "cross-site")]),
            h(&[("sec-fetch-site", "same-site")]),
            h(&[
                ("origin", "https://evil.example"),
                ("host", "10.0.100.10:8443"),
            ]),
            h(&[("origin", "null"), ("host", "10.0.100.10:8443")]),
        ] {
            assert_eq!(check_same_origin(&bad).unwrap_err().code, "cross_site");
        }
    }

    #[test]
    fn lab_operator_only_from_loopback() {
        let mut p = Peer {
            addr: Some("10.0.0.5:1234".parse().unwrap()),
            cert: None,
            lab: true,
        };
        assert_eq!(p.check_operator().unwrap_err().code, "not_operator");
        p.addr = Some("127.0.0.1:1234".parse().unwrap());
        assert!(p.check_operator().is_ok());
        let none = Peer::default();
        assert_eq!(
            none.check_node("a", "a.b").unwrap_err().code,
            "no_certificate"
        );
    }
}
