//! Test certificates from the project's PKI code (`plasma-pki`), written to a temp dir.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;

use plasma_pki::{Ca, KeyAlgorithm, LeafSpec};
use plasma_wire::TlsPaths;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub ca_path: PathBuf,
    server_cert: String,
    server_key: String,
}

impl TestPki {
    pub fn new(cluster: &str) -> TestPki {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = Ca::generate(cluster, 30, KeyAlgorithm::EcdsaP256).expect("CA");
        let ca_path = dir.path().join("ca-cert.pem");
        std::fs::write(&ca_path, ca.cert_pem()).expect("write CA");
        // Every simulated node listens on 127.0.0.1, so one server certificate fits all.
        let loopback = [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ];
        let server = ca
            .issue(
                &LeafSpec::node("sim", "sim.cluster.test", &loopback, 30),
                None,
            )
            .expect("issue");
        TestPki {
            dir,
            ca,
            ca_path,
            server_cert: server.cert_pem,
            server_key: server.key_pem,
        }
    }

    /// Client certificate for `node_id` (a node certificate, as the generator issues them),
    /// written as `<node_id>-cert.pem` / `<node_id>-key.pem`.
    pub fn node_tls(&self, node_id: &str) -> TlsPaths {
        let fqdn = format!("{node_id}.cluster.test");
        let issued = self
            .ca
            .issue(
                &LeafSpec::node(node_id, &fqdn, &[IpAddr::V4(Ipv4Addr::LOCALHOST)], 30),
                None,
            )
            .expect("issue node cert");
        let cert = self.dir.path().join(format!("{node_id}-cert.pem"));
        let key = self.dir.path().join(format!("{node_id}-key.pem"));
        std::fs::write(&cert, issued.cert_pem).expect("write cert");
        std::fs::write(&key, issued.key_pem).expect("write key");
        TlsPaths {
            ca: self.ca_path.display().to_string(),
            cert: cert.display().to_string(),
            key: key.display().to_string(),
        }
    }

    /// Server config for the simulator and the report sink: requires a client certificate
    /// signed by the CA, like the real services.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca.cert_pem().as_bytes()) {
            roots.add(c.expect("CA pem")).expect("add root");
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .expect("client verifier");
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.server_cert.as_bytes())
                .collect::<Result<_, _>>()
                .expect("server cert pem");
        let key =
            PrivateKeyDer::from_pem_slice(self.server_key.as_bytes()).expect("server key pem");
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .expect("server config");
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}
